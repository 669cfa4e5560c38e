// The side-by-side performance suite (`npm run bench`): broker-ha against
// bare aedes of the same version and, when installed, mosquitto, in one run
// on this machine, with every figure next to its goal. Writes a markdown
// report and a JSON file to bench/results/.
//
// Each broker runs in its own child process; the load comes from the
// `broker-ha bench` generator (worker threads, raw sockets, pre-encoded
// PUBLISHes) in this process. Retained sync and failure detection reuse
// bench/cluster.ts and bench/detection.ts as child processes, durable storage
// bench/storage.ts.
//
//   npm run bench -- [--quick] [--rounds 3] [--out bench/results] [--no-mosquitto] [--connections 10000]
import { fork, spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir, cpus, totalmem, release, availableParallelism } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { runBench, type BenchOptions, type BenchResult } from '../src/bench/index.js'
import { rawConnect } from '../src/bench/raw-client.js'
import type { ProcessNode, startProcessNode as StartProcessNode } from '../test/helpers/node.js'
import { freeLoopbackAddress } from '../test/helpers/loopback.js'
import { clusterConfig } from '../test/helpers/dataplane-cluster.js'

const here = dirname(fileURLToPath(import.meta.url))
const ROOT = join(here, '..', '..')
// BENCH_BROKER_HA_ROOT: another built checkout whose broker-ha runs instead (a before/after comparison on one machine).
const { startProcessNode } = await import(join(process.env.BENCH_BROKER_HA_ROOT ?? ROOT, 'dist', 'test', 'helpers', 'node.js')) as { startProcessNode: typeof StartProcessNode }

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    'no-mosquitto': { type: 'boolean', default: false },
    connections: { type: 'string' }
  }
})
const quick = args.quick
const ROUNDS = Number(args.rounds ?? (quick ? 1 : 5))
const CONNECTIONS = Number(args.connections ?? (quick ? 2000 : 10_000))
const RETAINED = quick ? 20_000 : 100_000
const KILLS = quick ? 2 : 5
const LATENCY_SECONDS = quick ? 2 : 5
const IDLE_MANY = quick ? 5000 : 50_000
const STORM_CLIENTS = quick ? 2000 : 10_000
const STORM_PERSISTENT = quick ? 600 : 3000

interface StormFigures { clients: number, persistent: number, victimClients: number, victimPersistent: number, freshConnectMs: number, reconnectMs: number, resumedMs: number, reconnected: number, resumed: number, notResumed: number, sent: number, acked: number, lost: number, peakRssMiB: number[] }

type Target = 'broker-ha' | 'aedes' | 'mosquitto'
interface Broker { target: Target, url: string, pid: number, stop: () => Promise<void>, restart?: () => Promise<Broker> }

const log = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) }

// ---- brokers ---------------------------------------------------------------

async function startBrokerHa (): Promise<Broker> {
  // No connection cap (default 10,000): the memory figure opens that many plus warm-ups.
  // No bound on a client's buffer either, as mosquitto runs with no queue limits below: a generator
  // that falls behind for a second on these shared cores would otherwise see QoS 0 dropped (by design).
  // (A checkout from before that key, BENCH_BROKER_HA_ROOT, has no bound and does not know it.)
  const unbounded = process.env.BENCH_BROKER_HA_ROOT === undefined ? { max_client_buffer_bytes: 0 } : {}
  const n = await startProcessNode({ log: { level: 'info' }, mqtt: { max_connections: 0, ...unbounded } })
  return { target: 'broker-ha', url: n.mqttUrl, pid: n.child.pid!, stop: async () => { await n.stop('SIGKILL') }, restart: startBrokerHa }
}

/** Bare aedes (bench/bare-aedes.ts) in a child process. */
async function startAedes (): Promise<Broker> {
  const host = await freeLoopbackAddress()
  const child = fork(join(here, 'bare-aedes.js'), ['--host', host, '--port', '1883'], { stdio: 'inherit' })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`aedes exited with ${code}`)))
  })
  return { target: 'aedes', url: `mqtt://${host}:1883`, pid: child.pid!, stop: async () => { child.kill('SIGKILL') }, restart: startAedes }
}

function mosquittoPath (): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) {
    try {
      execFileSync(p, ['-h'], { stdio: 'ignore' })
      return p
    } catch (err) {
      // `mosquitto -h` prints its help and exits 3: it exists.
      if ((err as { code?: string }).code !== 'ENOENT') return p
    }
  }
  return undefined
}

async function startMosquitto (bin: string): Promise<Broker> {
  const host = await freeLoopbackAddress()
  const dir = mkdtempSync(join(tmpdir(), 'bench-mosquitto-'))
  const conf = join(dir, 'mosquitto.conf')
  // No queue or in-flight limits: the other brokers have none either in this test.
  writeFileSync(conf, `listener 1883 ${host}\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nmax_connections -1\n`)
  const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: 'ignore' })
  const url = `mqtt://${host}:1883`
  for (let i = 0; i < 100; i++) {
    try {
      const c = await rawConnect(url, 'probe', 4, () => {}, 500)
      c.socket.destroy()
      return { target: 'mosquitto', url, pid: child.pid!, stop: async () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) } }
    } catch {
      await sleep(50)
    }
  }
  child.kill('SIGKILL')
  throw new Error('mosquitto did not start')
}

// ---- load ------------------------------------------------------------------

const base = (urls: string[]): Omit<BenchOptions, 'prefix'> => ({
  urls, publishers: 1, subscribers: 1, qos: 0, size: 64, rate: 0, pattern: 'one-to-one', wildcard: false, protocolVersion: 4,
  count: 1000, workers: Math.min(2, availableParallelism()), inflight: 1000, drainMs: 2000, connectConcurrency: 256
})

interface Scenario { key: string, title: string, options: (urls: string[]) => Omit<BenchOptions, 'prefix'> }

const SCENARIOS: Scenario[] = [
  { key: 'qos0', title: 'one-to-one QoS 0 (1 -> 1)', options: (u) => ({ ...base(u), qos: 0, count: quick ? 20_000 : 100_000 }) },
  // QoS 1 keeps 5,000 in flight: with 1,000 the run stalls on TCP delayed ACKs (see the report).
  { key: 'qos1', title: 'one-to-one QoS 1 (1 -> 1)', options: (u) => ({ ...base(u), qos: 1, inflight: 5000, count: quick ? 20_000 : 100_000 }) },
  { key: 'fanout', title: 'fan-out QoS 0 (1 -> 100)', options: (u) => ({ ...base(u), subscribers: 100, pattern: 'fan-out', count: quick ? 500 : 2000 }) },
  { key: 'fanin', title: 'fan-in QoS 0 (100 -> 1, wildcard)', options: (u) => ({ ...base(u), publishers: 100, pattern: 'fan-in', count: quick ? 200 : 1000 }) },
  // 100 in flight per publisher: 10,000 unacknowledged in all, what 100 devices with a modest window send.
  { key: 'fanin1', title: 'fan-in QoS 1 (100 -> 1, wildcard)', options: (u) => ({ ...base(u), publishers: 100, pattern: 'fan-in', qos: 1, inflight: 100, count: quick ? 200 : 1000 }) }
]

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

interface Cell { rate: number, p99: number, lost: number, duplicated: number, saturated: boolean, runs: number[], failed: number }

function cell (results: BenchResult[], failed = 0): Cell {
  const rates = results.map((r) => r.receiveRate)
  return {
    rate: median(rates),
    p99: median(results.map((r) => r.latency.p99)),
    lost: results.reduce((s, r) => s + r.lost, 0),
    duplicated: results.reduce((s, r) => s + r.duplicated, 0),
    saturated: results.some((r) => r.generator.saturated),
    runs: rates.map(Math.round),
    failed
  }
}

/** Runs that failed, per `scenario/target` (a crashed broker). */
const failures = new Map<string, number>()

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch { return false }
}

async function sideBySide (brokers: Broker[]): Promise<Record<string, Record<string, Cell>>> {
  const out: Record<string, Record<string, Cell>> = {}
  // Warm-up of JIT and connection paths, not measured.
  for (const b of brokers) await runBench({ ...base([b.url]), count: 5000 })
  for (const s of SCENARIOS) {
    const runs = new Map<Target, BenchResult[]>()
    for (let r = 0; r < ROUNDS; r++) {
      // Rotate the order each round so no broker always runs first.
      for (const k of brokers.map((_, i) => (i + r) % brokers.length)) {
        const b = brokers[k]!
        let res: BenchResult
        try {
          res = await runBench(s.options([b.url]))
        } catch (err) {
          // A broker that crashed (bare aedes did, in fan-in) is counted and restarted; the suite goes on.
          log(`${s.title} ${b.target}: run failed (${(err as Error).message})`)
          failures.set(`${s.key}/${b.target}`, (failures.get(`${s.key}/${b.target}`) ?? 0) + 1)
          if (!alive(b.pid) && b.restart !== undefined) {
            log(`${b.target} exited: restarting it`)
            brokers[k] = await b.restart()
          }
          continue
        }
        runs.set(b.target, [...(runs.get(b.target) ?? []), res])
        log(`${s.title} ${b.target}: ${Math.round(res.receiveRate)} msg/s, p99 ${res.latency.p99.toFixed(1)} ms, lost ${res.lost}`)
      }
    }
    out[s.key] = Object.fromEntries(brokers.map((b) => [b.target, cell(runs.get(b.target) ?? [], failures.get(`${s.key}/${b.target}`) ?? 0)]))
  }
  return out
}

// ---- memory per idle connection -------------------------------------------

interface MemoryFigure { connections: number, beforeKiB: number, afterKiB: number, perConnectionKiB: number, afterGc: { perConnectionKiB: number }, connectSeconds: number }

/** Idle connections on fresh brokers, measured by bench/idle.ts (which raises the open-file limit where it may). */
async function idleFigures (connections: number, brokers: string[], nodes = 1, memoryLimitMiB?: number): Promise<{ connections: number, figures: Record<string, MemoryFigure> }> {
  const limit = memoryLimitMiB === undefined ? [] : ['--memory-limit', String(memoryLimitMiB)]
  const out = JSON.parse((await runNode('idle.js', ['--connections', String(connections), '--brokers', brokers.join(','), '--nodes', String(nodes), ...limit, '--json'])).trim().split('\n').at(-1)!) as { connections: number, figures: Array<MemoryFigure & { target: string }> }
  const name = (target: string): string => nodes > 1 ? `${target}, ${nodes} nodes` : memoryLimitMiB !== undefined ? `${target}, ${memoryLimitMiB} MiB memory cgroup` : target
  return { connections: out.connections, figures: Object.fromEntries(out.figures.map(({ target, ...f }) => [name(target), f])) }
}

/** The homelab overlay's memory limit: broker-ha's idle figure under it (as root, where a memory cgroup can be made). */
const CGROUP_MIB = 256

/** File descriptors this process may open: each idle connection holds one here and one in the broker. */
function fdLimit (): number {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))
    return m === null ? Infinity : Number(m[1])
  } catch { return Infinity }
}

// ---- cluster ---------------------------------------------------------------

async function startClusterProcesses (count: number, ackAfter: AckAfter): Promise<ProcessNode[]> {
  const hosts: string[] = []
  for (let i = 0; i < count; i++) hosts.push(await freeLoopbackAddress())
  return await Promise.all(hosts.map(async (h) => await startProcessNode(clusterConfig(h, hosts, { cluster: { ack_after: ackAfter } }), { host: h })))
}

type AckAfter = 'replicated' | 'local'

interface ClusterFigures { single: Cell, cross: Cell, latency: { p50: number, p99: number, max: number, rate: number, lost: number, saturated: boolean, ack: { p50: number, p99: number, max: number } } }

/** Three nodes with `cluster.ack_after` = ackAfter against one standalone node, the same load on both. */
async function clusterFigures (ackAfter: AckAfter): Promise<ClusterFigures> {
  const cluster = await startClusterProcesses(3, ackAfter)
  const standalone = await startBrokerHa()
  try {
    const [a, b, c] = cluster as [ProcessNode, ProcessNode, ProcessNode]
    await waitForCrossNode(a.mqttUrl, b.mqttUrl)
    await waitForCrossNode(a.mqttUrl, c.mqttUrl)
    const load = (o: Partial<BenchOptions>): Omit<BenchOptions, 'prefix'> => ({ ...base([]), qos: 1, publishers: 4, subscribers: 4, count: quick ? 5000 : 40_000, inflight: 2000, settleMs: 500, ...o })
    const singleRuns: BenchResult[] = []
    const crossRuns: BenchResult[] = []
    for (let r = 0; r < ROUNDS; r++) {
      singleRuns.push(await runBench(load({ urls: [standalone.url] })))
      crossRuns.push(await runBench(load({ publisherUrls: [a.mqttUrl], subscriberUrls: [b.mqttUrl, c.mqttUrl] })))
      log(`cluster (ack_after ${ackAfter}) round ${r + 1}: single ${Math.round(singleRuns.at(-1)!.receiveRate)} msg/s, cross-node ${Math.round(crossRuns.at(-1)!.receiveRate)} msg/s (lost ${crossRuns.at(-1)!.lost})`)
    }
    const latency = await runBench({ ...base([]), publisherUrls: [a.mqttUrl], subscriberUrls: [b.mqttUrl], qos: 1, count: undefined, durationMs: LATENCY_SECONDS * 1000, rate: 5000, settleMs: 500, workers: 2 })
    log(`cross-node latency (ack_after ${ackAfter}) at 5000 msg/s: p50 ${latency.latency.p50.toFixed(2)} ms, p99 ${latency.latency.p99.toFixed(2)} ms; PUBACK p50 ${latency.ackLatency.p50.toFixed(2)} ms, p99 ${latency.ackLatency.p99.toFixed(2)} ms`)
    return { single: cell(singleRuns), cross: cell(crossRuns), latency: { rate: latency.receiveRate, ...latency.latency, lost: latency.lost, saturated: latency.generator.saturated, ack: latency.ackLatency } }
  } finally {
    await Promise.all([...cluster.map(async (n) => { await n.stop('SIGKILL') }), standalone.stop()])
  }
}

/** The cluster routes a message published on `from` to a subscriber on `to`. */
async function waitForCrossNode (from: string, to: string): Promise<void> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const r = await runBench({ ...base([]), publisherUrls: [from], subscriberUrls: [to], count: 20, rate: 100, drainMs: 500, settleMs: 300 })
    if (r.lost === 0) return
    if (Date.now() > deadline) throw new Error(`no route from ${from} to ${to}`)
  }
}

// ---- child benchmarks -------------------------------------------------------

async function runNode (script: string, argv: string[], env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(here, script), ...argv], { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 })
  return stdout
}

// ---- report ----------------------------------------------------------------

const int = (n: number): string => Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'
const kilo = (n: number): string => `${Math.round(n / 1000)}k`
const verdict = (ok: boolean): string => ok ? 'met' : '**not met**'

async function main (): Promise<void> {
  const started = Date.now()
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    fdLimit: fdLimit()
  }
  const mosq = args['no-mosquitto'] ? undefined : mosquittoPath()
  log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}; ${quick ? 'quick' : 'full'} mode, ${ROUNDS} rounds`)
  const result: Record<string, unknown> = { machine, quick, rounds: ROUNDS, startedAt: new Date(started).toISOString(), mosquitto: mosq !== undefined }

  // 1. Side by side, single node.
  const brokers: Broker[] = []
  let single: Record<string, Record<string, Cell>>
  try {
    brokers.push(await startBrokerHa(), await startAedes())
    if (mosq !== undefined) brokers.push(await startMosquitto(mosq))
    else log('mosquitto not installed (or --no-mosquitto): no mosquitto column')
    single = await sideBySide(brokers)
    result.singleNode = single
  } finally {
    await Promise.all(brokers.map(async (b) => await b.stop()))
  }

  // 2. Memory per idle connection, on fresh brokers (bench/idle.ts).
  const withMosquitto = mosq !== undefined ? ['mosquitto'] : []
  const idle = await idleFigures(CONNECTIONS, ['broker-ha', 'aedes', ...withMosquitto, 'node-socket'])
  if (idle.connections < CONNECTIONS) log(`open-file limit: measured ${idle.connections} connections instead of ${CONNECTIONS}`)
  // 2a. The same in a memory cgroup: V8 sizes its heap from the limit, as in a container.
  if (process.getuid?.() === 0) {
    try {
      Object.assign(idle.figures, (await idleFigures(CONNECTIONS, ['broker-ha'], 1, CGROUP_MIB)).figures)
    } catch (err) {
      log(`no memory cgroup row: ${(err as Error).message.split('\n')[0]}`)
    }
  } else {
    log('no memory cgroup row: not root')
  }
  for (const [t, m] of Object.entries(idle.figures)) log(`memory ${t}: ${m.perConnectionKiB.toFixed(1)} KiB RSS per idle connection over ${m.connections}, ${m.afterGc.perConnectionKiB.toFixed(1)} KiB after GC`)
  result.memory = idle.figures

  // 2b. Many idle connections (50,000 asked), as far as the open-file limit lets the generator and the broker go.
  const many = await idleFigures(IDLE_MANY, ['broker-ha', ...withMosquitto])
  if (many.connections < IDLE_MANY) log(`open-file limit: ${many.connections} idle connections instead of ${IDLE_MANY}`)
  // The same count over a 3-node cluster: each node and each generator process holds a third.
  const manyCluster = await idleFigures(IDLE_MANY, ['broker-ha'], 3)
  for (const [t, m] of Object.entries({ ...many.figures, ...manyCluster.figures })) log(`${m.connections} idle ${t}: ${m.perConnectionKiB.toFixed(1)} KiB per connection (${m.afterGc.perConnectionKiB.toFixed(1)} KiB after GC), connected in ${m.connectSeconds.toFixed(1)} s`)
  result.manyIdle = { asked: IDLE_MANY, ...many.figures, ...manyCluster.figures }

  // 2c. Reconnect storm (bench/reconnect-storm.ts, three node processes).
  log(`reconnect storm: ${STORM_CLIENTS} clients, ${STORM_PERSISTENT} persistent (bench/reconnect-storm.js)...`)
  const stormOut = await runNode('reconnect-storm.js', ['--clients', String(STORM_CLIENTS), '--persistent', String(STORM_PERSISTENT)])
  result.storm = JSON.parse(stormOut.trim().split('\n').at(-1)!) as StormFigures

  // 3. Cluster of three vs one node, with each kind of acknowledgement.
  const clusterResult: Record<AckAfter, ClusterFigures> = { replicated: await clusterFigures('replicated'), local: await clusterFigures('local') }
  result.cluster = clusterResult

  // 4. Retained sync to a joining node (bench/cluster.ts, in-process nodes).
  log(`retained sync of ${RETAINED} messages (bench/cluster.ts)...`)
  const clusterOut = await runNode('cluster.js', [], { BENCH_MESSAGES: '2000', BENCH_RATE_SECONDS: '1', BENCH_RETAINED: String(RETAINED) })
  const sync = /new node received (\d+) retained x 100 B in ([\d.]+) s/.exec(clusterOut)
  result.retainedSync = { messages: RETAINED, seconds: sync === null ? NaN : Number(sync[2]), output: clusterOut.trim().split('\n') }
  log(`retained sync: ${sync?.[2] ?? '?'} s`)

  // 5. Failure detection (bench/detection.ts, 3 members as child processes).
  log(`failure detection, ${KILLS} kills of a member of 3 (bench/detection.js)...`)
  const detOut = await runNode('detection.js', ['--sizes', '3', '--kills', String(KILLS), '--steady', quick ? '2' : '5'])
  const det = JSON.parse(detOut.trim().split('\n').at(-1)!) as { detection_median_ms: number, detection_max_ms: number, detections_ms: number[] }
  result.detection = det
  log(`failure detection: median ${det.detection_median_ms} ms`)

  // 6. TLS and WebSocket against plain TCP on one node (bench/transports.ts).
  log('TLS and WebSocket throughput (bench/transports.js)...')
  const transportsOut = await runNode('transports.js', ['--rounds', String(ROUNDS), '--count', quick ? '20000' : '100000'])
  const transportLines = transportsOut.trim().split('\n')
  result.transports = JSON.parse(transportLines.at(-1)!) as unknown

  // 7. Durable storage (bench/storage.ts: throughput per storage.sync, start-up from a full store, size under churn).
  log('durable storage (bench/storage.js)...')
  const storageOut = await runNode('storage.js', quick ? ['--quick'] : [])
  result.storage = JSON.parse(storageOut.trim().split('\n').at(-1)!)

  result.wallSeconds = Math.round((Date.now() - started) / 1000)
  const md = `${markdown(result, single, idle.figures, clusterResult)}\n${transportLines.slice(0, -1).join('\n')}\n`
  mkdirSync(args.out, { recursive: true })
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-')
  writeFileSync(join(args.out, `suite-${stamp}.json`), JSON.stringify(result, null, 2) + '\n')
  writeFileSync(join(args.out, `suite-${stamp}.md`), md)
  writeFileSync(join(args.out, 'latest.json'), JSON.stringify(result, null, 2) + '\n')
  writeFileSync(join(args.out, 'latest.md'), md)
  process.stdout.write(md)
  log(`wrote ${join(args.out, `suite-${stamp}.md`)} and .json (${result.wallSeconds} s)`)
}

function markdown (r: Record<string, unknown>, single: Record<string, Record<string, Cell>>, memory: Record<string, unknown>, cluster: Record<string, unknown>): string {
  const m = r.machine as { cpu: string, cores: number, memoryGiB: number, kernel: string, node: string }
  const targets = (['broker-ha', 'aedes', 'mosquitto'] as const).filter((t) => single.qos0?.[t] !== undefined)
  const lines: string[] = []
  lines.push(`# broker-ha benchmark suite`, '')
  lines.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}. Loopback only; ${r.quick === true ? 'quick mode' : 'full mode'}, ${String(r.rounds)} round(s) per figure (median), broker order rotated per round; total ${String(r.wallSeconds)} s.`, '')
  lines.push('## Single node, side by side', '')
  lines.push('Each broker in its own process; load from `broker-ha bench` (2 worker threads, raw sockets, pre-encoded 64-byte PUBLISHes, MQTT 3.1.1) in the suite process. Figure: deliveries per second received by all subscribers together, from the start signal to the last delivery (median of rounds, range in brackets), and the p99 latency of the same runs (unthrottled, so it is mostly queueing). The generator shares the cores with the broker under test, as every loopback benchmark does. Goal: broker-ha >= 0.9x bare aedes.', '')
  const withMosquitto = targets.includes('mosquitto')
  lines.push(`| load | ${targets.map((t) => t === 'aedes' ? 'bare aedes' : t).join(' | ')} | broker-ha / aedes |${withMosquitto ? ' broker-ha / mosquitto |' : ''} goal |`)
  lines.push(`| --- | ${targets.map(() => '---').join(' | ')} | --- |${withMosquitto ? ' --- |' : ''} --- |`)
  for (const s of SCENARIOS) {
    const row = single[s.key]!
    const ratio = row['broker-ha']!.rate / row.aedes!.rate
    const vsMosquitto = withMosquitto ? ` ${(row['broker-ha']!.rate / row.mosquitto!.rate).toFixed(2)}x |` : ''
    const fmt = (c: Cell): string => `${int(c.rate)} msg/s${c.runs.length > 1 ? ` (${kilo(Math.min(...c.runs))}-${kilo(Math.max(...c.runs))})` : ''}, p99 ${c.p99.toFixed(1)} ms${c.lost > 0 ? `, lost ${int(c.lost)}` : ''}${c.saturated ? ' (generator saturated)' : ''}${c.failed > 0 ? `, ${c.failed} run(s) failed: broker crashed or cut the clients` : ''}`
    lines.push(`| ${s.title} | ${targets.map((t) => fmt(row[t]!)).join(' | ')} | ${ratio.toFixed(2)}x |${vsMosquitto} >= 0.9x: ${verdict(ratio >= 0.9)} |`)
  }
  lines.push('', '## Memory per idle connection', '')
  lines.push('A fresh broker process; 10 warm-up connections, RSS (VmRSS of /proc/<pid>/status, once steady), then N raw-socket MQTT 3.1.1 clients connected (CONNECT/CONNACK, keep alive 60 s, no subscription) 200 at a time, RSS again once steady. Figure: RSS growth / N, right after the connects, and after a full garbage collection before each reading (asked of the Node brokers\' inspector): what the connections keep, without the garbage of their connects, which V8 collects when the heap grows or after about a minute idle. mosquitto has no collector: one figure. Goal (issue 18): <= 6 KiB. node-socket is Node\'s floor: a plain net server answering CONNACK (bench/bare-socket.ts), no MQTT at all.', '')
  lines.push('| broker | connections | RSS before | RSS after | per connection | after GC | goal (after GC / right after) |', '| --- | --- | --- | --- | --- | --- | --- |')
  for (const [t, v] of Object.entries(memory)) {
    const x = v as MemoryFigure
    const gc = x.afterGc.perConnectionKiB
    lines.push(`| ${t} | ${int(x.connections)} | ${int(x.beforeKiB / 1024)} MiB | ${int(x.afterKiB / 1024)} MiB | ${x.perConnectionKiB.toFixed(1)} KiB | ${gc.toFixed(1)} KiB | ${t === 'broker-ha' ? `<= 6 KiB: ${verdict(gc <= 6)} / ${verdict(x.perConnectionKiB <= 6)}` : '-'} |`)
  }
  const { asked, ...manyIdle } = r.manyIdle as Record<string, MemoryFigure> & { asked: number }
  lines.push('', `**${int(asked)} idle connections asked** (same method; on one node capped by the open-file limit of this process and the broker's; over a 3-node cluster, each node and each generator process holds its share; RSS after: all nodes):`, '')
  lines.push('| broker | connections | connect time | RSS after | per connection | after GC |', '| --- | --- | --- | --- | --- | --- |')
  for (const [t, x] of Object.entries(manyIdle as Record<string, MemoryFigure>)) {
    lines.push(`| ${t} | ${int(x.connections)} | ${x.connectSeconds.toFixed(1)} s | ${int(x.afterKiB / 1024)} MiB | ${x.perConnectionKiB.toFixed(1)} KiB | ${x.afterGc.perConnectionKiB.toFixed(1)} KiB |`)
  }
  const st = r.storm as StormFigures
  lines.push('', '## Reconnect storm', '')
  lines.push(`Three \`broker-ha serve\` processes, ${int(st.clients)} raw MQTT 3.1.1 clients round robin over them, ${int(st.persistent)} with persistent sessions (a QoS 1 subscription each). SIGKILL one node; its ${int(st.victimClients)} clients (${int(st.victimPersistent)} persistent) reconnect to the two survivors at once, while a publisher on a survivor sends QoS 1 to those persistent sessions (bench/reconnect-storm.ts). Yardstick: a fresh single node accepting ${int(st.clients)} connections, 256 at a time.`, '')
  lines.push('| figure | value | goal |', '| --- | --- | --- |')
  lines.push(`| a fresh node accepts ${int(st.clients)} connections | ${(st.freshConnectMs / 1000).toFixed(1)} s | - |`)
  lines.push(`| kill to every client reconnected | ${(st.reconnectMs / 1000).toFixed(1)} s (${int(st.reconnected)}/${int(st.victimClients)}) | <= 2x fresh: ${verdict(st.reconnected === st.victimClients && st.reconnectMs <= 2 * st.freshConnectMs)} |`)
  lines.push(`| kill to every persistent session resumed (session present) | ${(st.resumedMs / 1000).toFixed(1)} s (${int(st.resumed)} resumed, ${int(st.notResumed)} without their session) | all resumed: ${verdict(st.notResumed === 0 && st.resumed === st.victimPersistent)} |`)
  lines.push(`| QoS 1 acknowledged during the storm, never delivered | ${int(st.lost)} of ${int(st.acked)} | 0: ${verdict(st.lost === 0)} |`)
  lines.push(`| peak RSS of the survivors | ${st.peakRssMiB.map((m) => `${int(m)} MiB`).join(', ')} | - |`)
  const modes = cluster as Record<AckAfter, ClusterFigures>
  lines.push('', '## Cluster', '')
  lines.push('Three `broker-ha serve` processes forming one cluster (encrypted peer links), and one standalone `broker-ha serve`, once with `cluster.ack_after: replicated` (the default: a PUBACK waits until the subscribers\' node has settled the message) and once with `local`. Same load on both: 4 QoS 1 publishers -> 4 subscribers one-to-one, in-flight window 2,000 per publisher; in the cluster all publishers on node A and subscribers on nodes B and C, so every message crosses a peer link. Latency: 1 QoS 1 publisher on A at 5,000 msg/s, subscriber on B, timestamp in the payload.', '')
  lines.push('| figure | ack_after: replicated | ack_after: local | goal |', '| --- | --- | --- | --- |')
  const range = (x: Cell): string => x.runs.length > 1 ? ` (${kilo(Math.min(...x.runs))}-${kilo(Math.max(...x.runs))})` : ''
  const both = (f: (c: ClusterFigures) => string): string => `${f(modes.replicated)} | ${f(modes.local)}`
  const ratioOf = (c: ClusterFigures): number => c.cross.rate / c.single.rate
  lines.push(`| single node | ${both((c) => `${int(c.single.rate)} msg/s${range(c.single)}`)} | - |`)
  lines.push(`| cross-node (A -> B, C) | ${both((c) => `${int(c.cross.rate)} msg/s${range(c.cross)}${c.cross.lost > 0 ? `, lost ${int(c.cross.lost)}` : ''}`)} | - |`)
  lines.push(`| cross-node / single node | ${both((c) => `${ratioOf(c).toFixed(2)}x`)} | >= 0.6x (replicated): ${verdict(ratioOf(modes.replicated) >= 0.6)} |`)
  lines.push(`| cross-node latency at 5,000 msg/s, publish to delivery | ${both((c) => `p50 ${c.latency.p50.toFixed(2)} ms, p99 ${c.latency.p99.toFixed(2)} ms, max ${c.latency.max.toFixed(2)} ms${c.latency.lost > 0 ? `, lost ${c.latency.lost}` : ''}`)} | p99 <= 10 ms (replicated): ${verdict(modes.replicated.latency.p99 <= 10)} |`)
  lines.push(`| same, publish to PUBACK | ${both((c) => `p50 ${c.latency.ack.p50.toFixed(2)} ms, p99 ${c.latency.ack.p99.toFixed(2)} ms, max ${c.latency.ack.max.toFixed(2)} ms`)} | - |`)
  const sync = r.retainedSync as { messages: number, seconds: number }
  const det = r.detection as { detection_median_ms: number, detection_max_ms: number, detections_ms: number[] }
  lines.push(`| ${int(sync.messages)} retained x 100 B synced to a joining node (bench/cluster.ts: in-process nodes; from the new node's start, join included, to holding all) | ${sync.seconds.toFixed(2)} s | <= 5 s: ${verdict(sync.seconds <= 5)} |`)
  lines.push(`| failure detection, 3 members, SIGKILL to dead on every survivor (bench/detection.ts, ${det.detections_ms.length} kills) | median ${(det.detection_median_ms / 1000).toFixed(1)} s, max ${(det.detection_max_ms / 1000).toFixed(1)} s | median <= 5 s: ${verdict(det.detection_median_ms <= 5000)} |`)
  lines.push(...storageMarkdown(r.storage as StorageFigures))
  lines.push('')
  return lines.join('\n') + '\n'
}

interface StorageFigures {
  throughput: Record<'qos1' | 'persistent', Record<'memory' | 'batch' | 'always', { rate: number, runs: number[], lost: number }>>
  startup: { retained: number, sessions: number, readyMs: number, loadMs: number, fileBytes: number, dataBytes: number }
  churn: { updates: number, topics: number, fileBytes: number, dataBytes: number }
}

function storageMarkdown (s: StorageFigures): string[] {
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`
  const lines = ['', '## Durable storage', '']
  lines.push('QoS 1, 1 publisher -> 1 subscriber, 64 B, three `broker-ha serve` side by side: in memory, `storage.sync: batch`, `storage.sync: always` (bench/storage.ts). A clean subscriber needs nothing stored; a persistent one (clean: false) has every message queued, written, sent and removed. Goal: batch >= 0.7x in memory.', '')
  lines.push('| load | in memory | batch | always | batch / memory | always / memory | goal |', '| --- | --- | --- | --- | --- | --- | --- |')
  for (const [key, title] of [['qos1', 'QoS 1 one-to-one, clean subscriber'], ['persistent', 'QoS 1 one-to-one, persistent session']] as const) {
    const row = s.throughput[key]
    const b = row.batch.rate / row.memory.rate
    lines.push(`| ${title} | ${int(row.memory.rate)} msg/s | ${int(row.batch.rate)} | ${int(row.always.rate)} | ${b.toFixed(2)}x | ${(row.always.rate / row.memory.rate).toFixed(2)}x | >= 0.7x: ${verdict(b >= 0.7)} |`)
  }
  const st = s.startup
  lines.push('', '| figure | value |', '| --- | --- |')
  lines.push(`| start with ${int(st.retained)} retained and ${int(st.sessions)} sessions (10 queued messages each) on disk: spawn to MQTT listening | ${(st.readyMs / 1000).toFixed(1)} s (reading the store ${(st.loadMs / 1000).toFixed(1)} s) |`)
  lines.push(`| that store on disk | ${mib(st.fileBytes)} (${mib(st.dataBytes)} of data) |`)
  lines.push(`| store after ${int(s.churn.updates)} retained updates (10% clears) over ${int(s.churn.topics)} topics | ${mib(s.churn.fileBytes)} on disk (${mib(s.churn.dataBytes)} of data) |`)
  return lines
}

await main()
