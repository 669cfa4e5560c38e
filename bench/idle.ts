// Memory per idle connection and many idle connections, side by side:
// broker-ha (`broker-ha serve`), bare aedes of the same version
// (bench/bare-aedes.ts), mosquitto when installed, and Node's floor (a
// plain net server answering CONNACK, bench/bare-socket.ts: what a socket
// costs any broker on Node), each in its own process, one after the other,
// the same generator against each.
//
// Each connection is a raw MQTT 3.1.1 CONNECT (keep alive 60 s, clean
// session) and nothing more. The figure is the broker's RSS once it stopped
// moving after the last CONNACK, less its RSS with ten warm-up connections,
// divided by the number of connections; the connect time runs from the
// first CONNECT to the last CONNACK, 200 in flight.
//
// A Node broker's RSS then still holds the garbage of the connects (V8
// collects the old generation when its heap grows, or after about a minute
// idle): half or more of that figure, in every Node broker. So each Node
// broker also runs with its inspector on a loopback port, and a second
// figure, "after GC", is the same difference with a full garbage
// collection (HeapProfiler.collectGarbage) before each reading: what the
// connections themselves keep. mosquitto has no collector: one figure.
//
// --memory-limit MiB: broker-ha runs in a memory cgroup of that size (Linux,
// root, cgroup v1 or v2), so that V8 sizes its heap as in a container with
// that limit (it reads the limit at start, and collects much earlier).
//
// Open files: each connection holds a descriptor here and one in the broker.
// When the open-file limit is too low and we are root, the limit of this
// process is raised with prlimit(1) before any broker starts (they inherit
// it); otherwise the run stops and says so. Ephemeral ports: connections come
// from several loopback source addresses (--sources), each good for about
// 28,000 connections to one ip:port.
//
//   node dist/bench/idle.js [--connections 10000] [--brokers broker-ha,aedes,mosquitto,node-socket]
//     [--sources 4] [--heap DIR] [--config JSON] [--nodes N] [--json]
// --nodes N (N > 1): broker-ha only, N `broker-ha serve` processes in one
// cluster, the connections round robin over them, the figure their summed
// RSS growth over the count. Each process here and each node then holds its
// share of descriptors: the way to measure more connections than one
// process's open-file limit allows (the generator is split over child
// processes of --per-generator connections each).
// --config: broker-ha config merged over the bench's (e.g. '{"log":{"clients":false}}').
// --heap DIR writes a heap snapshot of each Node broker (SIGUSR2) with the connections open.
// --node-options '--flag ...': V8/Node flags for every Node broker (broker-ha, aedes, node-socket).
// BENCH_BROKER_HA_ROOT: another built checkout whose broker-ha runs instead (before/after on one machine).
import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import WebSocket from 'ws'
import { existsSync, mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync, rmdirSync, renameSync, mkdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Socket } from 'node:net'
import { rawConnect } from '../src/bench/raw-client.js'
import type { startProcessNode as StartProcessNode } from '../test/helpers/node.js'
import { freeLoopbackAddress } from '../test/helpers/loopback.js'

const here = dirname(fileURLToPath(import.meta.url))
const ROOT = join(here, '..', '..')
const BROKER_HA_ROOT = process.env.BENCH_BROKER_HA_ROOT ?? ROOT
const { startProcessNode } = await import(join(BROKER_HA_ROOT, 'dist', 'test', 'helpers', 'node.js')) as { startProcessNode: typeof StartProcessNode }

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    brokers: { type: 'string', default: 'broker-ha,aedes,mosquitto,node-socket' },
    sources: { type: 'string' },
    heap: { type: 'string' },
    'node-options': { type: 'string' },
    'memory-limit': { type: 'string' },
    config: { type: 'string' },
    nodes: { type: 'string', default: '1' },
    'per-generator': { type: 'string', default: '15000' },
    generate: { type: 'string' },
    json: { type: 'boolean', default: false }
  }
})
const ASKED = Number(args.connections)
const CONCURRENCY = 200
/** About 28,000 ephemeral ports per source address and destination; keep well under. */
const PER_SOURCE = 10_000
const SOURCES = Number(args.sources ?? Math.max(1, Math.ceil(ASKED / PER_SOURCE)))

const log = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) }

type Target = 'broker-ha' | 'aedes' | 'mosquitto' | 'node-socket'
/** inspector: the ws:// address of a Node broker's inspector, from its output (undefined for mosquitto). */
interface Broker { target: Target, url: string, pid: number, inspector?: () => string | undefined, stop: () => Promise<void> }

// ---- open files --------------------------------------------------------------

function fdLimit (pid: number | 'self' = 'self'): { soft: number, hard: number } {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
  const n = (s: string | undefined): number => s === undefined || s === 'unlimited' ? Infinity : Number(s)
  return { soft: n(m?.[1]), hard: n(m?.[2]) }
}

/** Raises this process's open-file limit to `want` (children inherit it); false when it cannot. */
function raiseFdLimit (want: number): boolean {
  if (fdLimit().soft >= want) return true
  let nrOpen = Infinity
  try {
    nrOpen = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim())
  } catch {
    // Not Linux: no cap but the hard limit.
  }
  const target = Math.min(want, nrOpen)
  try {
    // Raising the hard limit needs root (CAP_SYS_RESOURCE); raising the soft one up to the hard does not.
    const limit = process.getuid?.() === 0 ? `${target}:${target}` : `${Math.min(target, fdLimit().hard)}:`
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${limit}`], { stdio: 'ignore' })
  } catch (err) {
    log(`prlimit failed: ${(err as Error).message}`)
  }
  return fdLimit().soft >= want
}

// ---- brokers -------------------------------------------------------------------

/** The inspector on an ephemeral loopback port: "after GC" readings (collectGarbage). */
const INSPECT = '--inspect=127.0.0.1:0'
const NODE_FLAGS = [
  INSPECT,
  ...(args.heap === undefined ? [] : ['--heapsnapshot-signal=SIGUSR2']),
  ...(args['node-options']?.split(' ').filter((f) => f !== '') ?? [])
]
const NODE_ENV: Record<string, string> = NODE_FLAGS.length === 0 ? {} : { NODE_OPTIONS: NODE_FLAGS.join(' ') }

async function startBrokerHa (): Promise<Broker> {
  const extra = args.config === undefined ? {} : JSON.parse(args.config) as Record<string, Record<string, unknown>>
  const cgroup = args['memory-limit'] === undefined ? undefined : memoryCgroup(Number(args['memory-limit']))
  const n = await startProcessNode({ ...extra, mqtt: { max_connections: 0, ...extra.mqtt } }, { env: NODE_ENV, ...(cgroup === undefined ? {} : { prefix: cgroup.prefix }) })
  return {
    target: 'broker-ha',
    url: n.mqttUrl,
    pid: n.child.pid!,
    inspector: () => inspectorUrl(n.output()),
    stop: async () => {
      await n.stop('SIGKILL')
      cgroup?.remove()
    }
  }
}

/**
 * A memory cgroup of `mib` MiB for one process, and the command prefix that
 * starts a process in it (a shell that enters it, then execs).
 */
function memoryCgroup (mib: number): { prefix: string[], remove: () => void } {
  if (!Number.isFinite(mib) || mib <= 0) throw new RangeError(`--memory-limit: a size in MiB, got ${args['memory-limit']}`)
  const name = `broker-ha-bench-${process.pid}`
  const bytes = String(Math.round(mib * 2 ** 20))
  let dir: string
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    // cgroup v2 mounted at the root: memory must be enabled for children.
    dir = join('/sys/fs/cgroup', name)
    writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+memory')
    mkdirSync(dir)
    writeFileSync(join(dir, 'memory.max'), bytes)
  } else if (existsSync('/sys/fs/cgroup/memory')) {
    dir = join('/sys/fs/cgroup/memory', name)
    mkdirSync(dir)
    writeFileSync(join(dir, 'memory.limit_in_bytes'), bytes)
  } else {
    throw new Error('--memory-limit: no cgroup memory controller at /sys/fs/cgroup (Linux only)')
  }
  log(`broker-ha in memory cgroup ${dir} (${mib} MiB)`)
  return {
    prefix: ['sh', '-c', `echo $$ > ${dir}/cgroup.procs && exec "$0" "$@"`],
    remove: () => { try { rmdirSync(dir) } catch (err) { log(`cgroup ${dir} not removed: ${(err as Error).message}`) } }
  }
}

/** The inspector's address in a Node process's output ("Debugger listening on ws://..."). */
function inspectorUrl (output: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1]
}

/** A Node child process running `script` (bench/bare-aedes.ts, bench/bare-socket.ts) on a free loopback address. */
async function startNodeServer (target: Target, script: string): Promise<Broker> {
  const host = await freeLoopbackAddress()
  const child = fork(join(here, script), ['--host', host, '--port', '1883'], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], execArgv: NODE_FLAGS })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
    // The inspector's lines are ours to read, not the operator's.
    const rest = d.toString().split('\n').filter((l) => !/^(Debugger (listening|attached|ending)|For help, see)/.test(l)).join('\n')
    if (rest.trim() !== '') process.stderr.write(rest)
  })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`${target} exited with ${code}: ${stderr}`)))
  })
  return { target, url: `mqtt://${host}:1883`, pid: child.pid!, inspector: () => inspectorUrl(stderr), stop: async () => { child.kill('SIGKILL') } }
}

function mosquittoPath (): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) {
    try {
      statSync(p)
      return p
    } catch {
      // Not there: the next place.
    }
  }
  return undefined
}

async function startMosquitto (bin: string): Promise<Broker> {
  const host = await freeLoopbackAddress()
  const dir = mkdtempSync(join(tmpdir(), 'bench-mosquitto-'))
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, `listener 1883 ${host}\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nmax_connections -1\n`)
  const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: 'ignore' })
  const url = `mqtt://${host}:1883`
  const stop = async (): Promise<void> => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) }
  for (let i = 0; i < 100; i++) {
    try {
      const c = await rawConnect(url, 'probe', 4, () => {}, 500)
      c.socket.destroy()
      return { target: 'mosquitto', url, pid: child.pid!, stop }
    } catch {
      await sleep(50)
    }
  }
  await stop()
  throw new Error('mosquitto did not start')
}

// ---- measurement ----------------------------------------------------------------

function rssKiB (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1])
}

/** RSS once it stopped moving (within 1% over 1 s), or after 10 s. */
async function settledRss (pid: number): Promise<number> {
  let last = rssKiB(pid)
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    await sleep(1000)
    const now = rssKiB(pid)
    if (Math.abs(now - last) <= last * 0.01) return now
    last = now
  }
  return last
}

/**
 * RSS after full garbage collections, asked of the process's inspector: what
 * the live objects keep, without the garbage a burst of connects left.
 */
async function rssAfterGc (inspector: string, pid: number): Promise<number> {
  const ws = new WebSocket(inspector)
  await once(ws, 'open')
  try {
    let id = 0
    const call = async (method: string): Promise<void> => {
      const mine = ++id
      const answered = new Promise<void>((resolve, reject) => {
        const onMessage = (m: Buffer): void => {
          const reply = JSON.parse(m.toString()) as { id?: number, error?: { message: string } }
          if (reply.id !== mine) return
          ws.off('message', onMessage)
          if (reply.error !== undefined) reject(new Error(`${method}: ${reply.error.message}`))
          else resolve()
        }
        ws.on('message', onMessage)
      })
      ws.send(JSON.stringify({ id: mine, method }))
      await answered
    }
    // Weak references and finalizers need more than one pass.
    for (let i = 0; i < 3; i++) await call('HeapProfiler.collectGarbage')
  } finally {
    ws.close()
  }
  return await settledRss(pid)
}

/** Waits for a heap snapshot the process writes on SIGUSR2 into its cwd, and moves it to dir. */
async function heapSnapshot (b: Broker, cwd: string, dir: string): Promise<string | undefined> {
  const before = new Set(readdirSync(cwd))
  process.kill(b.pid, 'SIGUSR2')
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline) {
    await sleep(1000)
    const file = readdirSync(cwd).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
    if (file === undefined) continue
    // Complete once the JSON is closed.
    while (!readFileSync(join(cwd, file)).subarray(-2).equals(Buffer.from(']}'))) {
      if (Date.now() > deadline) return undefined
      await sleep(1000)
    }
    mkdirSync(dir, { recursive: true })
    const to = join(dir, `${b.target}-${COUNT}.heapsnapshot`)
    renameSync(join(cwd, file), to)
    return to
  }
  return undefined
}

/**
 * afterGc: the same difference with a full GC before each reading (Node
 * brokers; see the top of this file); for mosquitto the figure itself.
 */
export interface IdleFigure { target: Target, connections: number, beforeKiB: number, afterKiB: number, perConnectionKiB: number, afterGc: { beforeKiB: number, afterKiB: number, perConnectionKiB: number }, connectSeconds: number, nodes?: number, memoryLimitMiB?: number }

/** RSS after a full GC in each process (Node brokers), else RSS as it is. */
async function gcRss (pids: number[], inspectors: Array<(() => string | undefined) | undefined>): Promise<number> {
  const each = await Promise.all(pids.map(async (pid, i) => {
    const find = inspectors[i]
    if (find === undefined) return await settledRss(pid)
    const url = find()
    if (url === undefined) throw new Error(`pid ${pid}: no inspector address in its output (${INSPECT})`)
    return await rssAfterGc(url, pid)
  }))
  return each.reduce((a, b) => a + b, 0)
}

async function measure (b: Broker, sources: string[], sockets: Socket[]): Promise<IdleFigure> {
  for (let i = 0; i < 10; i++) sockets.push((await rawConnect(b.url, `warm-${i}`, 4, () => {})).socket)
  const before = await settledRss(b.pid)
  const gcBefore = await gcRss([b.pid], [b.inspector])
  const t0 = Date.now()
  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < COUNT) {
      const i = next++
      const c = await rawConnect(b.url, `idle-${i}`, 4, () => {}, 60_000, undefined, {}, { localAddress: sources[i % sources.length] })
      c.socket.on('error', () => {})
      sockets.push(c.socket)
    }
  }))
  const connectSeconds = (Date.now() - t0) / 1000
  const after = await settledRss(b.pid)
  const gcAfter = await gcRss([b.pid], [b.inspector])
  if (args.heap !== undefined && b.target !== 'mosquitto' && b.target !== 'node-socket') {
    const file = await heapSnapshot(b, process.cwd(), args.heap)
    log(`heap snapshot ${b.target}: ${file ?? 'not written'}`)
  }
  const limited = b.target === 'broker-ha' && args['memory-limit'] !== undefined ? { memoryLimitMiB: Number(args['memory-limit']) } : {}
  return { target: b.target, connections: COUNT, beforeKiB: before, afterKiB: after, perConnectionKiB: (after - before) / COUNT, afterGc: { beforeKiB: gcBefore, afterKiB: gcAfter, perConnectionKiB: (gcAfter - gcBefore) / COUNT }, connectSeconds, ...limited }
}

// ---- a cluster, and generators in child processes ---------------------------------

interface GeneratorJob { urls: string[], from: number, count: number, sources: string[] }

/** A child process's share of the connections: connects them, reports, and holds them until its parent goes. */
async function generate (job: GeneratorJob): Promise<void> {
  raiseFdLimit(job.count + 200)
  const sockets: Socket[] = []
  const t0 = Date.now()
  let next = 0
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, job.count) }, async () => {
    while (next < job.count) {
      const n = job.from + next++
      const c = await rawConnect(job.urls[n % job.urls.length]!, `idle-${n}`, 4, () => {}, 60_000, undefined, {}, { localAddress: job.sources[n % job.sources.length] })
      c.socket.on('error', () => {})
      sockets.push(c.socket)
    }
  }))
  process.send?.({ connected: sockets.length, seconds: (Date.now() - t0) / 1000 })
  process.on('disconnect', () => process.exit(0))
}

/** COUNT connections over a cluster of `n` broker-ha processes, from child generators. */
async function measureCluster (n: number, sources: string[]): Promise<IdleFigure> {
  const { startProcessCluster } = await import(join(BROKER_HA_ROOT, 'dist', 'test', 'helpers', 'cluster.js')) as { startProcessCluster: (n: number, overrides: object, options: { env: Record<string, string> }) => Promise<Array<{ mqttUrl: string, child: ChildProcess, output: () => string, stop: (signal?: NodeJS.Signals) => Promise<unknown> }>> }
  const extra = args.config === undefined ? {} : JSON.parse(args.config) as Record<string, Record<string, unknown>>
  const nodes = await startProcessCluster(n, { ...extra, mqtt: { max_connections: 0, ...extra.mqtt } }, { env: NODE_ENV })
  const generators: ChildProcess[] = []
  const warm: Socket[] = []
  try {
    const urls = nodes.map((node) => node.mqttUrl)
    const pids = nodes.map((node) => node.child.pid!)
    for (const url of urls) for (let i = 0; i < 10; i++) warm.push((await rawConnect(url, `warm-${url}-${i}`, 4, () => {})).socket)
    const rss = async (): Promise<number> => (await Promise.all(pids.map(settledRss))).reduce((a, b) => a + b, 0)
    const inspectors = nodes.map((node) => () => inspectorUrl(node.output()))
    const before = await rss()
    const gcBefore = await gcRss(pids, inspectors)
    const per = Number(args['per-generator'])
    const t0 = Date.now()
    const reports: Array<Promise<{ connected: number }>> = []
    for (let from = 0; from < COUNT; from += per) {
      const job: GeneratorJob = { urls, from, count: Math.min(per, COUNT - from), sources }
      const child = fork(fileURLToPath(import.meta.url), ['--generate', JSON.stringify(job)], { stdio: 'inherit' })
      generators.push(child)
      reports.push(new Promise((resolve, reject) => {
        child.once('message', (m) => resolve(m as { connected: number }))
        child.once('exit', (code) => reject(new Error(`a generator exited with ${code}`)))
      }))
    }
    const connected = (await Promise.all(reports)).reduce((a, r) => a + r.connected, 0)
    const connectSeconds = (Date.now() - t0) / 1000
    const after = await rss()
    const gcAfter = await gcRss(pids, inspectors)
    return { target: 'broker-ha', nodes: n, connections: connected, beforeKiB: before, afterKiB: after, perConnectionKiB: (after - before) / connected, afterGc: { beforeKiB: gcBefore, afterKiB: gcAfter, perConnectionKiB: (gcAfter - gcBefore) / connected }, connectSeconds }
  } finally {
    // The nodes close first: the TIME_WAITs stay on their side.
    await Promise.all(nodes.map(async (node) => await node.stop('SIGKILL')))
    for (const g of generators) g.kill('SIGKILL')
    for (const s of warm) s.destroy()
  }
}

// ---- run -------------------------------------------------------------------------

// 127.77.0.1, 127.77.0.2 ...: every 127/8 address is the loopback; these are
// clear of 127.0.0.1 and of the test nodes' 127.100-199 (test/helpers/loopback.ts).
const sources = Array.from({ length: SOURCES }, (_, i) => `127.77.${Math.floor(i / 250)}.${(i % 250) + 1}`)
const NODES = Number(args.nodes)
let COUNT = ASKED

if (args['memory-limit'] !== undefined && NODES > 1) {
  log('--memory-limit is for one broker-ha node, not --nodes')
  process.exit(2)
}
if (args.generate !== undefined) await generate(JSON.parse(args.generate) as GeneratorJob)
else if (NODES > 1) await cluster()
else await single()

/** --nodes N: one cluster of broker-ha processes, the generators in child processes. */
async function cluster (): Promise<void> {
  // Each node holds its share of descriptors, each generator up to --per-generator.
  const share = Math.ceil(ASKED / NODES) + 1000
  if (!raiseFdLimit(Math.max(share, Number(args['per-generator']) + 1000))) {
    const { soft, hard } = fdLimit()
    COUNT = Math.max(100, (soft - 1000) * NODES)
    log(`open-file limit ${soft} (hard ${hard}) is below the ${share} that each node needs for ${ASKED} connections: ${COUNT} connections instead`)
  }
  log(`${COUNT} idle connections over ${NODES} broker-ha nodes from ${sources.length} source address(es), open-file limit ${fdLimit().soft}`)
  const f = await measureCluster(NODES, sources)
  log(`broker-ha x${NODES}: ${f.perConnectionKiB.toFixed(2)} KiB RSS per idle connection over ${f.connections}, ${f.afterGc.perConnectionKiB.toFixed(2)} KiB after GC (RSS ${Math.round(f.beforeKiB / 1024)} -> ${Math.round(f.afterKiB / 1024)} MiB, all nodes), connected in ${f.connectSeconds.toFixed(1)} s`)
  if (args.json) process.stdout.write(`${JSON.stringify({ asked: ASKED, connections: f.connections, sources: sources.length, figures: [f] })}\n`)
  process.exit(0)
}

async function single (): Promise<void> {
  // Each process holds one side of each connection: this one and the broker need COUNT descriptors each.
  const need = ASKED + 1000
  if (!raiseFdLimit(need)) {
    const { soft, hard } = fdLimit()
    COUNT = Math.max(100, soft - 1000)
    log(`open-file limit ${soft} (hard ${hard}) is below the ${need} that ${ASKED} connections need in this process and in the broker, and it cannot be raised here (root without CAP_SYS_RESOURCE, or not root): ${COUNT} connections instead`)
  }
  const wanted = args.brokers.split(',')
  const mosq = mosquittoPath()
  const starts: Array<[Target, () => Promise<Broker>]> = [['broker-ha', startBrokerHa], ['aedes', async () => await startNodeServer('aedes', 'bare-aedes.js')]]
  if (mosq !== undefined) starts.push(['mosquitto', async () => await startMosquitto(mosq)])
  else if (wanted.includes('mosquitto')) log('mosquitto not installed: no mosquitto row')
  starts.push(['node-socket', async () => await startNodeServer('node-socket', 'bare-socket.js')])
  log(`${COUNT} idle connections from ${sources.length} source address(es), open-file limit ${fdLimit().soft}`)
  const figures: IdleFigure[] = []
  for (const [target, start] of starts) {
    if (!wanted.includes(target)) continue
    const b = await start()
    const sockets: Socket[] = []
    try {
      const f = await measure(b, sources, sockets)
      figures.push(f)
      log(`${target}${f.memoryLimitMiB === undefined ? '' : ` (${f.memoryLimitMiB} MiB memory cgroup)`}: ${f.perConnectionKiB.toFixed(2)} KiB RSS per idle connection over ${f.connections}, ${f.afterGc.perConnectionKiB.toFixed(2)} KiB after GC (RSS ${Math.round(f.beforeKiB / 1024)} -> ${Math.round(f.afterKiB / 1024)} MiB), connected in ${f.connectSeconds.toFixed(1)} s`)
    } finally {
      // The broker closes first: the TIME_WAIT of every connection stays on its
      // side, not on our source ports (a second run right after would find them taken).
      await b.stop()
      for (const s of sockets) s.destroy()
    }
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ asked: ASKED, connections: COUNT, sources: sources.length, figures })}\n`)
}
