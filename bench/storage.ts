// Durable storage figures (docs/storage.md, docs/benchmarks.md), run alone
// (`node dist/bench/storage.js [--quick]`) or as a part of `npm run bench`:
//
// 1. QoS 1 throughput, one publisher to one subscriber, side by side on
//    three nodes: in memory, storage.sync batch, storage.sync always; a
//    clean subscriber (nothing to store) and a persistent one (every
//    message queued in its stored session, written, acknowledged, removed).
// 2. Start-up: a store holding 100,000 retained messages and 10,000
//    persistent sessions (one subscription and 10 queued messages each):
//    the time from spawning `broker-ha serve` to MQTT listening, and the
//    store's size on disk.
// 3. Churn: 1,000,000 retained updates (10% of them clears) over 10,000
//    topics through a node's own write path: the store's size after.
//
// The last line of stdout is the JSON of every figure.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, availableParallelism } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { runBench, type BenchOptions, type BenchResult } from '../src/bench/index.js'
import { startProcessNode, startNode, type ProcessNode } from '../test/helpers/node.js'
import { DurableStore } from '../src/server/storage/durable-store.js'
import { RETAINED, SESSION, queueKey, queueRecord, retainedRecord, sessionRecord } from '../src/server/storage/records.js'

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, rounds: { type: 'string' }, only: { type: 'string' } } })
const quick = args.quick
const ROUNDS = Number(args.rounds ?? (quick ? 1 : 3))
const COUNT = quick ? 10_000 : 50_000
const START_RETAINED = quick ? 20_000 : 100_000
const START_SESSIONS = quick ? 2_000 : 10_000
const CHURN = quick ? 200_000 : 1_000_000
const CHURN_TOPICS = 10_000
const only = new Set((args.only ?? 'throughput,startup,churn').split(','))

const log = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) }
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN }

type Mode = 'memory' | 'batch' | 'always'
const MODES: Mode[] = ['memory', 'batch', 'always']

const load = (url: string, persistent: boolean): Omit<BenchOptions, 'prefix'> => ({
  urls: [url], publishers: 1, subscribers: 1, qos: 1, size: 64, rate: 0, pattern: 'one-to-one', wildcard: false, protocolVersion: 4,
  count: COUNT, workers: Math.min(2, availableParallelism()), inflight: persistent ? 1000 : 5000, drainMs: 2000, connectConcurrency: 16, persistentSubscribers: persistent
})

async function throughput (): Promise<Record<string, Record<Mode, { rate: number, runs: number[], lost: number }>>> {
  const dirs: string[] = []
  const nodes = new Map<Mode, ProcessNode>()
  try {
    for (const mode of MODES) {
      const dir = mkdtempSync(join(tmpdir(), 'bench-storage-'))
      dirs.push(dir)
      nodes.set(mode, await startProcessNode({ log: { level: 'info' }, ...(mode === 'memory' ? {} : { storage: { dir, sync: mode } }) }))
    }
    for (const n of nodes.values()) await runBench({ ...load(n.mqttUrl, false), count: 5000 })
    const out: Record<string, Record<Mode, { rate: number, runs: number[], lost: number }>> = {}
    for (const [key, persistent] of [['qos1', false], ['persistent', true]] as const) {
      const runs = new Map<Mode, BenchResult[]>()
      for (let r = 0; r < ROUNDS; r++) {
        for (const mode of MODES.map((_, i) => MODES[(i + r) % MODES.length]!)) {
          const res = await runBench(load(nodes.get(mode)!.mqttUrl, persistent))
          runs.set(mode, [...(runs.get(mode) ?? []), res])
          log(`${key} ${mode}: ${Math.round(res.receiveRate)} msg/s, lost ${res.lost}`)
        }
      }
      out[key] = Object.fromEntries([...runs].map(([m, rs]) => [m, { rate: median(rs.map((x) => x.receiveRate)), runs: rs.map((x) => Math.round(x.receiveRate)), lost: rs.reduce((s, x) => s + x.lost, 0) }])) as Record<Mode, { rate: number, runs: number[], lost: number }>
    }
    return out
  } finally {
    await Promise.all([...nodes.values()].map(async (n) => await n.stop('SIGKILL')))
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}

/** Writes a store as a node would have: retained entries and sessions with queues. */
async function writeStore (dir: string, node: string): Promise<void> {
  const { store } = DurableStore.open({ dir, sync: 'off', batchIntervalMs: 0, node, cluster: [''], verify: false })
  const payload = Buffer.alloc(100, 7)
  const wall = Date.now()
  for (let i = 0; i < START_RETAINED; i++) {
    void store.put(RETAINED + `home/device/${i}/state`, retainedRecord({ topic: '', stamp: { wall, logical: i, node }, payload, qos: 1 }))
    if (i % 10_000 === 0) await store.whenWritten()
  }
  for (let i = 0; i < START_SESSIONS; i++) {
    const queue = Array.from({ length: 10 }, (_, j) => ({ cmd: 'publish', topic: `jobs/${i}`, payload, qos: 1, retain: false, brokerId: `${node}@old`, brokerCounter: i * 10 + j }))
    void store.put(SESSION + `client-${i}`, sessionRecord({ subscriptions: [{ topic: `jobs/${i}`, qos: 1 }], ledger: queue.map((q) => `${q.brokerId}\u0000${q.brokerCounter}`), incoming: [], expiry: undefined, disconnectedAt: wall }))
    queue.forEach((q, j) => { void store.put(queueKey(`client-${i}`, i * 10 + j + 1), queueRecord(j + 1, q)) })
    if (i % 1000 === 0) await store.whenWritten()
  }
  await store.whenWritten()
  await store.close()
}

async function startup (): Promise<{ retained: number, sessions: number, readyMs: number, loadMs: number, fileBytes: number, dataBytes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-storage-start-'))
  try {
    // The node's name must match the store's for nothing to be said about it; the host picks it.
    const probe = await startProcessNode({ storage: { dir } })
    await probe.stop('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    await writeStore(dir, `node-${probe.host}`)
    const { store } = DurableStore.open({ dir, sync: 'off', batchIntervalMs: 0, node: `node-${probe.host}`, cluster: [''], verify: false })
    const fileBytes = store.fileBytes()
    const dataBytes = store.usedBytes()
    await store.close()
    const t0 = performance.now()
    const node = await startProcessNode({ storage: { dir }, mqtt: { max_retained_messages: 0 } }, { host: probe.host })
    const readyMs = performance.now() - t0
    const line = node.output().split('\n').find((l) => l.includes('storage loaded')) ?? '{}'
    const loaded = JSON.parse(line) as { retained?: number, sessions?: number, ms?: number }
    await node.stop('SIGKILL')
    return { retained: loaded.retained ?? NaN, sessions: loaded.sessions ?? NaN, readyMs, loadMs: loaded.ms ?? NaN, fileBytes, dataBytes }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function churn (): Promise<{ updates: number, topics: number, fileBytes: number, dataBytes: number, seconds: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-storage-churn-'))
  const node = await startNode({ storage: { dir, sync: 'batch' }, mqtt: { max_retained_messages: 0 } })
  try {
    const persistence = node.node.mqtt.persistence
    const payload = Buffer.alloc(100, 3)
    const empty = Buffer.alloc(0)
    const t0 = performance.now()
    for (let i = 0; i < CHURN; i++) {
      const topic = `churn/${i % CHURN_TOPICS}`
      const clear = i % 10 === 9
      void persistence.storeRetained({ cmd: 'publish', topic, payload: clear ? empty : payload, qos: 1, retain: true })
      // Let the store commit now and then, as live traffic would.
      if (i % 5000 === 4999) await new Promise((resolve) => setImmediate(resolve))
    }
    await new Promise((resolve) => setImmediate(resolve))
    const store = node.node.storage.durable!
    await store.whenWritten()
    return { updates: CHURN, topics: CHURN_TOPICS, fileBytes: store.fileBytes(), dataBytes: store.usedBytes(), seconds: (performance.now() - t0) / 1000 }
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

const result: Record<string, unknown> = { quick, rounds: ROUNDS }
if (only.has('throughput')) {
  const t = await throughput()
  result.throughput = t
  for (const [k, row] of Object.entries(t)) log(`${k}: batch ${(row.batch.rate / row.memory.rate).toFixed(2)}x, always ${(row.always.rate / row.memory.rate).toFixed(2)}x of in-memory`)
}
if (only.has('startup')) {
  const s = await startup()
  result.startup = s
  log(`start with ${s.retained} retained and ${s.sessions} sessions on disk: ready in ${Math.round(s.readyMs)} ms (load ${s.loadMs} ms); store ${(s.fileBytes / 2 ** 20).toFixed(1)} MiB on disk, ${(s.dataBytes / 2 ** 20).toFixed(1)} MiB of data`)
}
if (only.has('churn')) {
  const c = await churn()
  result.churn = c
  log(`${c.updates} retained updates over ${c.topics} topics in ${c.seconds.toFixed(1)} s: store ${(c.fileBytes / 2 ** 20).toFixed(1)} MiB on disk, ${(c.dataBytes / 2 ** 20).toFixed(1)} MiB of data`)
}
process.stdout.write(JSON.stringify(result) + '\n')
