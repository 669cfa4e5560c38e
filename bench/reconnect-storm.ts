// Reconnect storm (issue 18): what an HA broker is for. Three `broker-ha
// serve` processes; N clients spread over them round robin, P of them with
// persistent sessions (Clean Session 0, a QoS 1 subscription each). One node
// is SIGKILLed; its clients reconnect to the two survivors at once. While
// that happens a publisher on a survivor sends QoS 1 messages to the
// persistent sessions of the killed node. Prints one JSON line:
//  - freshConnectMs: a single fresh node accepting N new connections (the yardstick);
//  - reconnectMs: from the kill until every client of the killed node is connected again;
//  - resumedMs: until every persistent session of the killed node is back with session present;
//  - notResumed: persistent sessions that came back with session present 0;
//  - acked / lost: QoS 1 messages acknowledged to the publisher during the storm, and of those never delivered;
//  - lostNotBack: of the lost, those for sessions whose client never came back (the bench retries for --retry-for);
//  - notBack: clients of the killed node still not connected when the bench stopped retrying;
//  - backBy: how many clients of the killed node were connected again 10, 30, 60 and 120 s after the kill;
//  - publisherReconnects / refused / waitedTakeover: the publisher's connection closed by a refused publish
//    (it reconnects and sends the unacknowledged again), publishes refused, and publishes that waited
//    for the takeover of the killed node's sessions (cluster.dead_peer_buffer_bytes reached);
//  - peakRssMiB: the survivors' peak RSS (VmHWM).
//
//   node dist/bench/reconnect-storm.js [--clients 10000] [--persistent 3000] [--logs DIR] [--skip-fresh] [--payload 16] [--retry-for 180]
//
// Reconnecting clients behave as devices do: a CONNACK that does not come
// within 30 s (mqtt.js' connectTimeout) is given up and the CONNECT sent
// again after a backoff of up to 1 s, for --retry-for seconds after the kill.
// While clients are missing, a line every 5 s says how many are back, so a
// storm that stalls shows as one rather than as a slow one.
//
// --logs DIR writes each node's debug log there (node-0.log is the one killed).
// --skip-fresh leaves out the yardstick (freshConnectMs is then null): the
// integration test (test/integration/reconnect-storm.test.ts) only checks
// that nothing is lost.
import { createConnection, type Socket } from 'node:net'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { performance } from 'node:perf_hooks'
import { encode, framer, acks, PUBACK } from '../src/bench/raw-client.js'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ProcessNode, startProcessNode as StartProcessNode } from '../test/helpers/node.js'
import { freeLoopbackAddress } from '../test/helpers/loopback.js'
import { metricSum, metricByLabel } from '../test/helpers/metrics.js'
import { clusterConfig } from '../test/helpers/dataplane-cluster.js'

// BENCH_BROKER_HA_ROOT: another built checkout whose broker-ha runs instead (bench/suite.ts).
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { startProcessNode } = await import(join(process.env.BENCH_BROKER_HA_ROOT ?? ROOT, 'dist', 'test', 'helpers', 'node.js')) as { startProcessNode: typeof StartProcessNode }

const { values: args } = parseArgs({ options: { clients: { type: 'string', default: '10000' }, persistent: { type: 'string', default: '3000' }, logs: { type: 'string' }, 'skip-fresh': { type: 'boolean', default: false }, payload: { type: 'string', default: '16' }, 'retry-for': { type: 'string', default: '180' } } })
const CLIENTS = Number(args.clients)
const PERSISTENT = Number(args.persistent)
/** Bytes per QoS 1 message (at least 4: the sequence number). */
const PAYLOAD = Math.max(4, Number(args.payload))
const CONCURRENCY = 256
/** How long reconnecting clients keep trying after the kill (ms). */
const RETRY_FOR_MS = Number(args['retry-for']) * 1000
/** A CONNACK not received within this is given up and the CONNECT sent again (mqtt.js' default connectTimeout). */
const CONNACK_TIMEOUT_MS = 30_000

const log = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} storm: ${line}\n`) }
const now = (): number => performance.now()

interface Conn { socket: Socket, sessionPresent: boolean, subscribed: Promise<void> }

/** CONNECT (MQTT 3.1.1) and wait for CONNACK; PUBLISHes after it go to onPublish (and are acknowledged). */
async function connect (url: string, clientId: string, clean: boolean, onPublish: (payload: Buffer) => void = () => {}, timeoutMs = 60_000): Promise<Conn> {
  const { hostname, port } = new URL(url)
  const socket = createConnection({ host: hostname, port: Number(port) })
  socket.on('error', () => {})
  return await new Promise<Conn>((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`${clientId}: no CONNACK from ${url}`)) }, timeoutMs)
    let ids: number[] = []
    let onSuback: () => void = () => {}
    const subscribed = new Promise<void>((resolve) => { onSuback = resolve })
    socket.on('data', framer((header, body) => {
      const type = header & 0xF0
      if (type === 0x20) {
        clearTimeout(timer)
        if (body[1] !== 0) { socket.destroy(); reject(new Error(`${clientId}: CONNACK ${body[1]}`)); return }
        resolve({ socket, sessionPresent: (body[0]! & 1) === 1, subscribed })
      } else if (type === 0x90) {
        onSuback()
      } else if (type === 0x30) {
        const topicLength = body.readUInt16BE(0)
        let at = 2 + topicLength
        if ((header & 0x06) !== 0) { ids.push(body.readUInt16BE(at)); at += 2 }
        onPublish(body.subarray(at))
      }
    }, () => { if (ids.length > 0) { socket.write(acks(PUBACK, ids)); ids = [] } }))
    socket.once('close', () => { clearTimeout(timer); reject(new Error(`${clientId}: closed before CONNACK`)) })
    socket.write(encode({ cmd: 'connect', protocolId: 'MQTT', clientId, clean, keepalive: 300 }, 4))
  })
}

async function inParallel (count: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, async () => {
    while (next < count) await fn(next++)
  }))
}

async function metricTotal (nodes: ProcessNode[], name: string): Promise<number> {
  let sum = 0
  for (const n of nodes) sum += await metricSum(n.apiUrl, name)
  return sum
}

async function unreplicated (nodes: ProcessNode[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const n of nodes) {
    for (const [reason, v] of Object.entries(await metricByLabel(n.apiUrl, 'broker_cluster_acks_unreplicated_total', 'reason'))) out[reason] = (out[reason] ?? 0) + v
  }
  return out
}

/** Polls `check` until it holds, or fails after `timeoutMs` saying what it waited for. */
async function until (what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = now() + timeoutMs
  while (!await check()) {
    if (now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

const peakRss = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024

async function freshConnect (): Promise<number> {
  const node = await startProcessNode({ mqtt: { max_connections: 0 } })
  const sockets: Socket[] = []
  try {
    const t0 = now()
    await inParallel(CLIENTS, async (i) => { sockets.push((await connect(node.mqttUrl, `fresh-${i}`, true)).socket) })
    return now() - t0
  } finally {
    for (const s of sockets) s.destroy()
    await node.stop('SIGKILL')
  }
}

async function main (): Promise<void> {
  const freshConnectMs = args['skip-fresh'] ? null : await freshConnect()
  if (freshConnectMs !== null) log(`a fresh node accepted ${CLIENTS} connections in ${Math.round(freshConnectMs)} ms`)

  const hosts: string[] = []
  for (let i = 0; i < 3; i++) hosts.push(await freeLoopbackAddress())
  const nodes: ProcessNode[] = await Promise.all(hosts.map(async (h) => await startProcessNode(clusterConfig(h, hosts, { mqtt: { max_connections: 0 }, ...(args.logs !== undefined ? { log: { level: 'debug' } } : {}) }), { host: h })))
  const sockets = new Set<Socket>()
  try {
    await until('a full mesh of peer links', async () => (await Promise.all(nodes.map(async (n) => await metricSum(n.apiUrl, 'broker_cluster_link_up')))).every((up) => up === 2))
    const [victim, ...survivors] = nodes as [ProcessNode, ProcessNode, ProcessNode]
    // Persistent sessions: every third client lands on the victim; each counts what it receives.
    const received = new Set<number>()
    const onPublish = (payload: Buffer): void => { if (payload.length >= 4) received.add(payload.readUInt32BE(0)) }
    const victims: number[] = []
    /** Persistent sessions whose client came back with session present. */
    const back = new Set<number>()
    let reconnected = 0
    let resumed = 0
    let notResumed = 0
    let lastReconnect = 0
    let lastResumed = 0
    let killedAt = Infinity
    /** When each client of the killed node got its CONNACK again (ms from the kill). */
    const backAt: number[] = []
    const reconnect = async (i: number, persistent: boolean): Promise<void> => {
      const url = survivors[i % 2]!.mqttUrl
      for (let attempt = 0; ; attempt++) {
        try {
          const c = await connect(url, `storm-${i}`, !persistent, onPublish, CONNACK_TIMEOUT_MS)
          sockets.add(c.socket)
          reconnected++
          backAt.push(now() - killedAt)
          lastReconnect = now()
          if (persistent) {
            if (c.sessionPresent) { resumed++; lastResumed = now(); back.add(i) } else notResumed++
          }
          return
        } catch {
          // Devices retry for as long as it takes; the bench for --retry-for.
          if (now() - killedAt > RETRY_FOR_MS) return
          await sleep(Math.min(50 * 2 ** attempt, 1000))
        }
      }
    }
    await inParallel(CLIENTS, async (i) => {
      const node = nodes[i % 3]!
      const persistent = i < PERSISTENT
      const c = await connect(node.mqttUrl, `storm-${i}`, !persistent, onPublish)
      sockets.add(c.socket)
      if (persistent) {
        c.socket.write(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `storm/${i}`, qos: 1 }] }, 4))
        await c.subscribed
      }
      if (node === victim) {
        victims.push(i)
        c.socket.once('close', () => { sockets.delete(c.socket); if (now() >= killedAt) void reconnect(i, persistent) })
      }
    })
    const victimPersistent = victims.filter((i) => i < PERSISTENT)
    log(`${CLIENTS} clients connected (${victims.length} on the node to be killed, ${victimPersistent.length} of them persistent); waiting for every session's replica`)
    await until('a replica of every persistent session', async () => (await Promise.all(nodes.map(async (n) => await metricSum(n.apiUrl, 'broker_cluster_session_replicas')))).reduce((a, b) => a + b, 0) >= PERSISTENT)

    // QoS 1 to the victim's persistent sessions from a survivor, before, during and after the kill.
    let acked = 0
    const ackedSeqs: number[] = []
    const pending = new Map<number, number>()
    let seq = 0
    const sentAt = new Map<number, number>()
    let publishing = true
    // A publish the broker refuses (it could not keep a copy) closes an MQTT
    // 3.1.1 connection unacknowledged: like a device, the publisher connects
    // again and sends what was not acknowledged again.
    let publisherReconnects = 0
    let finished = false
    const payloadOf = (n: number): Buffer => { const p = Buffer.alloc(PAYLOAD); p.writeUInt32BE(n, 0); return p }
    const connectPublisher = async (): Promise<Conn> => {
      const c = await connect(survivors[0]!.mqttUrl, 'storm-publisher', true)
      c.socket.on('data', framer((header, body) => {
        if ((header & 0xF0) === PUBACK) {
          const s = pending.get(body.readUInt16BE(0))
          if (s !== undefined) { acked++; ackedSeqs.push(s); pending.delete(body.readUInt16BE(0)) }
        }
      }))
      c.socket.once('close', () => {
        if (finished || (!publishing && pending.size === 0)) return
        publisherReconnects++
        void (async () => {
          for (;;) {
            try { pub = await connectPublisher(); break } catch { await sleep(100) }
          }
          for (const [id, s] of pending) pub.socket.write(encode({ cmd: 'publish', topic: `storm/${victimPersistent[s % victimPersistent.length]!}`, payload: payloadOf(s), qos: 1, messageId: id, dup: true }, 4))
        })()
      })
      return c
    }
    let pub = await connectPublisher()
    const publisher = (async () => {
      while (publishing) {
        for (let k = 0; k < 20 && victimPersistent.length > 0; k++) {
          const target = victimPersistent[seq % victimPersistent.length]!
          const id = (seq % 60000) + 1
          const payload = payloadOf(seq)
          pending.set(id, seq)
          sentAt.set(seq, now())
          pub.socket.write(encode({ cmd: 'publish', topic: `storm/${target}`, payload, qos: 1, messageId: id }, 4))
          seq++
        }
        await sleep(10)
      }
    })()
    await sleep(1000)
    killedAt = now()
    await victim.stop('SIGKILL')
    log('killed one node')
    const deadline = now() + RETRY_FOR_MS + CONNACK_TIMEOUT_MS
    let reportAt = now() + 5000
    while (reconnected < victims.length && now() < deadline) {
      await sleep(20)
      if (now() >= reportAt) {
        reportAt += 5000
        log(`${Math.round((now() - killedAt) / 1000)} s after the kill: ${reconnected}/${victims.length} back, ${resumed} resumed, ${notResumed} without their session`)
      }
    }
    const reconnectMs = lastReconnect - killedAt
    log(`${reconnected}/${victims.length} reconnected in ${Math.round(reconnectMs)} ms; ${resumed} resumed, ${notResumed} without their session`)
    await sleep(2000)
    publishing = false
    await publisher
    // The last acknowledgements, then the stragglers: deliveries of everything
    // acknowledged, for as long as they keep coming (large payloads take a
    // while), up to two minutes; a message still missing after 10 s without
    // progress is lost.
    await until('the publisher\'s last acknowledgements', async () => pending.size === 0, 60_000).catch(() => {})
    const drainUntil = now() + 120_000
    let progressAt = now()
    let seen = received.size
    while (ackedSeqs.some((s) => !received.has(s)) && now() < drainUntil && now() - progressAt < 10_000) {
      await sleep(100)
      if (received.size !== seen) { seen = received.size; progressAt = now() }
    }
    const lostSeqs = ackedSeqs.filter((s) => !received.has(s))
    const lost = lostSeqs.length
    // Of those, the ones for sessions whose client never came back (within
    // the minute the bench retries): still queued for it, not delivered.
    const lostNotBack = lostSeqs.filter((s) => !back.has(victimPersistent[s % victimPersistent.length]!)).length
    if (lost > 0) {
      // Where to look: when the lost messages were sent, and for which sessions.
      const byTime = new Map<number, number>()
      const byTarget = new Map<number, number>()
      for (const s of lostSeqs) {
        const b = Math.floor((sentAt.get(s)! - killedAt) / 250) * 250
        byTime.set(b, (byTime.get(b) ?? 0) + 1)
        const t = victimPersistent[s % victimPersistent.length]!
        byTarget.set(t, (byTarget.get(t) ?? 0) + 1)
      }
      log(`lost by send time (ms from kill): ${JSON.stringify([...byTime].sort((a, b) => a[0] - b[0]))}`)
      log(`lost targets: ${byTarget.size}: ${JSON.stringify([...byTarget].slice(0, 40))}`)
      // A few to trace through the nodes' logs (--logs): client id, sequence number, ms from the kill.
      const sample = lostSeqs.filter((s) => back.has(victimPersistent[s % victimPersistent.length]!)).slice(0, 20).map((s) => [`storm-${victimPersistent[s % victimPersistent.length]!}`, s, Math.round(sentAt.get(s)! - killedAt)])
      log(`lost for sessions that came back, first ${sample.length} (client, seq, sent ms from kill): ${JSON.stringify(sample)}`)
    }
    const result = {
      clients: CLIENTS,
      persistent: PERSISTENT,
      victimClients: victims.length,
      victimPersistent: victimPersistent.length,
      freshConnectMs: freshConnectMs === null ? null : Math.round(freshConnectMs),
      reconnectMs: Math.round(reconnectMs),
      resumedMs: Math.round(lastResumed - killedAt),
      reconnected,
      resumed,
      notResumed,
      sent: seq,
      acked,
      lost,
      lostNotBack,
      notBack: victims.length - reconnected,
      backBy: Object.fromEntries([10, 30, 60, 120].map((sec) => [`${sec}s`, backAt.filter((t) => t <= sec * 1000).length])),
      publisherReconnects,
      refused: await metricTotal(survivors, 'broker_cluster_publishes_refused_total'),
      waitedTakeover: await metricTotal(survivors, 'broker_cluster_publishes_waited_takeover_total'),
      peakRssMiB: survivors.map((n) => Math.round(peakRss(n.child.pid!))),
      // Acknowledgements the survivors gave without a second copy, by reason (a message 'dropped' was kept nowhere).
      acksUnreplicated: await unreplicated(survivors)
    }
    log(JSON.stringify(result))
    process.stdout.write(JSON.stringify(result) + '\n')
    finished = true
    pub.socket.destroy()
  } finally {
    for (const s of sockets) s.destroy()
    await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
    if (args.logs !== undefined) {
      mkdirSync(args.logs, { recursive: true })
      nodes.forEach((n, i) => writeFileSync(join(args.logs!, `node-${i}.log`), n.output()))
    }
  }
}

await main()
process.exit(0)
