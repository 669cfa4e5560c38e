// Real network partitions for `broker-ha chaos --network netns` (issue 6):
// one Linux network namespace per node plus a "hub" namespace holding a
// bridge, each node joined to it by a veth pair. A partition is then what it
// is on a real network: blackhole routes in each node's namespace towards the
// other side's addresses, so the kernel drops the packets (TCP and UDP,
// gossip, data plane and API alike), not the broker's own code.
//
// Addresses: every namespace gets addresses from 127.213.0.0/24 on its veth
// (hub bridge .1, nodes .2, .3, ...), with net.ipv4.conf.all.route_localnet
// so the kernel routes 127/8 over the veths, and its own lo narrowed to
// 127.0.0.1/32 so the rest of 127/8 is not local. Loopback-range addresses,
// because the nodes still run with `--chaos-control` (the `links` fault needs
// the in-process hook) and that flag refuses any bind outside 127.0.0.0/8, on
// purpose: nothing here weakens that guard. The subnet exists only inside
// namespaces this module creates, so it cannot collide with the machine's
// networks or with another run (each run has its own namespaces).
//
// The layout and the command lists are pure (unit-tested); NetnsNetwork and
// NetnsRoutes run `ip` from iproute2.
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** Every namespace of a run is named `bhchaos-<pid of the outer runner>-...`. */
export const NETNS_PREFIX = 'bhchaos-'
export const NETNS_SUBNET = '127.213.0'
export const NETNS_PREFIX_LENGTH = 24
/** The hidden chaos flag that tells the re-executed command it already runs inside the hub namespace. */
export const INSIDE_NETNS_FLAG = '--inside-netns'
const BRIDGE = 'br0'
const NODE_IF = 'eth0'

export interface NetnsLayout {
  /** `bhchaos-<pid>`: the prefix of every namespace of this run. */
  runId: string
  hub: string
  hubAddress: string
  /** Per node index: its namespace, its address, and its veth end in the hub. */
  nodes: Array<{ namespace: string, address: string, hubIf: string }>
}

export function netnsRunId (pid: number): string {
  return `${NETNS_PREFIX}${pid}`
}

export function isNetnsRunId (text: string): boolean {
  return new RegExp(`^${NETNS_PREFIX}\\d+$`).test(text)
}

export function netnsLayout (runId: string, nodes: number): NetnsLayout {
  if (!isNetnsRunId(runId)) throw new Error(`not a chaos namespace run id: ${runId}`)
  // .0 is the network, .1 the hub, .255 broadcast: 253 nodes at most, far above MAX_NODES.
  if (nodes < 1 || nodes > 253) throw new Error(`netns layout: 1 to 253 nodes, got ${nodes}`)
  return {
    runId,
    hub: `${runId}-hub`,
    hubAddress: `${NETNS_SUBNET}.1`,
    nodes: Array.from({ length: nodes }, (_, i) => ({ namespace: `${runId}-n${i + 1}`, address: `${NETNS_SUBNET}.${i + 2}`, hubIf: `n${i + 1}` }))
  }
}

/** Every namespace name of the layout, nodes first, hub last (the order of removal). */
export function layoutNamespaces (layout: NetnsLayout): string[] {
  return [...layout.nodes.map((n) => n.namespace), layout.hub]
}

/** The pid a chaos namespace name belongs to, or undefined for names that are not ours. */
export function namespaceOwner (name: string): number | undefined {
  const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-`).exec(name)
  return m === null ? undefined : Number(m[1])
}

/**
 * Names left behind by earlier runs: ours by prefix, and either owned by a
 * process that is gone or by `selfPid` (pids are reused; this run has not
 * created anything yet when it sweeps).
 */
export function staleNamespaces (names: readonly string[], alive: (pid: number) => boolean, selfPid: number): string[] {
  return names.filter((name) => {
    const pid = namespaceOwner(name)
    return pid !== undefined && (pid === selfPid || !alive(pid))
  })
}

/** `ip netns list` prints "name" or "name (id: 3)" per line. */
export function parseNetnsList (text: string): string[] {
  return text.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n !== '')
}

/** A command of the setup: `ip` arguments, or a shell line run inside a namespace. */
export type SetupStep = { ip: string[] } | { inside: string, sh: string }

/**
 * The steps that build the layout, in order. Each namespace: lo up and
 * narrowed to 127.0.0.1/32, route_localnet on. Hub: a bridge with the hub
 * address. Each node: a veth pair, hub end enslaved to the bridge, node end
 * (eth0) with the node's address. Nothing is created in the caller's namespace.
 */
export function setupSteps (layout: NetnsLayout): SetupStep[] {
  const steps: SetupStep[] = []
  const cidr = (a: string): string => `${a}/${NETNS_PREFIX_LENGTH}`
  for (const ns of [layout.hub, ...layout.nodes.map((n) => n.namespace)]) {
    steps.push({ ip: ['netns', 'add', ns] })
    // Bringing lo up gives it 127.0.0.1/8, which would make every 127/8 address local; keep only 127.0.0.1.
    steps.push({ ip: ['-n', ns, 'link', 'set', 'lo', 'up'] })
    steps.push({ ip: ['-n', ns, 'addr', 'del', '127.0.0.1/8', 'dev', 'lo'] })
    steps.push({ ip: ['-n', ns, 'addr', 'add', '127.0.0.1/32', 'dev', 'lo'] })
    // Without route_localnet the kernel treats 127/8 on a non-loopback device as martian.
    steps.push({ inside: ns, sh: 'echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet' })
  }
  steps.push({ ip: ['-n', layout.hub, 'link', 'add', BRIDGE, 'type', 'bridge'] })
  steps.push({ ip: ['-n', layout.hub, 'addr', 'add', cidr(layout.hubAddress), 'dev', BRIDGE] })
  steps.push({ ip: ['-n', layout.hub, 'link', 'set', BRIDGE, 'up'] })
  for (const n of layout.nodes) {
    steps.push({ ip: ['-n', layout.hub, 'link', 'add', n.hubIf, 'type', 'veth', 'peer', 'name', NODE_IF, 'netns', n.namespace] })
    steps.push({ ip: ['-n', layout.hub, 'link', 'set', n.hubIf, 'master', BRIDGE, 'up'] })
    steps.push({ ip: ['-n', n.namespace, 'addr', 'add', cidr(n.address), 'dev', NODE_IF] })
    steps.push({ ip: ['-n', n.namespace, 'link', 'set', NODE_IF, 'up'] })
  }
  return steps
}

/** The command prefix that runs a program inside `namespace`. */
export function insideNamespace (namespace: string): string[] {
  return ['ip', 'netns', 'exec', namespace]
}

/**
 * Route changes that take each node's namespace from `current` to `wanted`
 * blackholed addresses: `ip -batch` lines per namespace. Both maps are node
 * index -> addresses.
 */
export function routeChanges (layout: NetnsLayout, current: ReadonlyMap<number, ReadonlySet<string>>, wanted: ReadonlyMap<number, ReadonlySet<string>>): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const [index, n] of layout.nodes.entries()) {
    const have = current.get(index) ?? new Set<string>()
    const want = wanted.get(index) ?? new Set<string>()
    const lines = [
      ...[...have].filter((a) => !want.has(a)).map((a) => `route del blackhole ${a}/32`),
      ...[...want].filter((a) => !have.has(a)).map((a) => `route replace blackhole ${a}/32`)
    ]
    if (lines.length > 0) out.set(n.namespace, lines)
  }
  return out
}

/** Whether this process can build namespaces: Linux, root, iproute2, and `ip netns add` allowed (containers may forbid it). */
export async function netnsSupport (pid = process.pid): Promise<{ ok: true } | { ok: false, reason: string }> {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux, this is ${process.platform}` }
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (ip netns add)' }
  try {
    await ip(['netns', 'list'])
  } catch (err) {
    return { ok: false, reason: `needs iproute2 (\`ip netns list\` failed: ${(err as Error).message.split('\n')[0]})` }
  }
  const probe = `${netnsRunId(pid)}-probe`
  try {
    await ip(['netns', 'add', probe])
  } catch (err) {
    return { ok: false, reason: `\`ip netns add\` is not allowed here: ${(err as Error).message.split('\n')[0]}` }
  }
  await ip(['netns', 'del', probe]).catch(() => {})
  return { ok: true }
}

export class NetnsError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'NetnsError'
  }
}

async function ip (args: readonly string[], input?: string): Promise<string> {
  if (input === undefined) {
    try {
      const { stdout } = await execFileAsync('ip', args, { encoding: 'utf8', timeout: 10_000 })
      return stdout
    } catch (err) {
      const e = err as { stderr?: string, message: string }
      throw new NetnsError(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err })
    }
  }
  // `ip -batch -` reads its commands from stdin.
  return await new Promise((resolve, reject) => {
    const child = spawn('ip', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.once('error', (err) => reject(new NetnsError(`ip ${args.join(' ')}: ${err.message}`, { cause: err })))
    child.once('close', (code) => {
      if (code === 0) resolve(stdout)
      else reject(new NetnsError(`ip ${args.join(' ')}: ${stderr.trim() || `exit ${code}`}`))
    })
    child.stdin.end(input)
  })
}

async function runStep (step: SetupStep): Promise<void> {
  if ('ip' in step) await ip(step.ip)
  else await ip(['netns', 'exec', step.inside, 'sh', '-c', step.sh])
}

export async function listNamespaces (): Promise<string[]> {
  return parseNetnsList(await ip(['netns', 'list']))
}

function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes namespaces (nodes first, then the hub). Processes still inside one
 * are chaos nodes of that run (nothing else is ever started there): they are
 * killed first, so the kernel frees the namespace with its veth and bridge
 * at once instead of when they exit.
 */
export async function removeNamespaces (names: readonly string[]): Promise<string[]> {
  const failures: string[] = []
  for (const name of names) {
    try {
      const pids = (await ip(['netns', 'pids', name]).catch(() => '')).split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 0)
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
      await ip(['netns', 'del', name])
    } catch (err) {
      if (!/No such file|Cannot remove namespace file.*No such/i.test((err as Error).message)) failures.push((err as Error).message)
    }
  }
  return failures
}

/**
 * The namespaces, bridge and veths of one run: start() builds them (after
 * sweeping namespaces of runs that died without cleaning up), stop() removes
 * them. stop() is safe to call twice and after a failed start().
 */
export class NetnsNetwork {
  readonly layout: NetnsLayout
  /** Stale namespaces removed by start(). */
  swept: string[] = []
  private started = false

  constructor (layout: NetnsLayout) {
    this.layout = layout
  }

  async start (): Promise<void> {
    const selfPid = namespaceOwner(`${this.layout.runId}-`) ?? -1
    this.swept = staleNamespaces(await listNamespaces(), processAlive, selfPid)
    const failures = await removeNamespaces(this.swept)
    if (failures.length > 0) throw new NetnsError(`could not remove stale namespaces: ${failures.join('; ')}`)
    this.started = true
    for (const step of setupSteps(this.layout)) await runStep(step)
  }

  /** Removes what start() built; resolves false when there was nothing to remove. */
  async stop (): Promise<boolean> {
    if (!this.started) return false
    this.started = false
    const failures = await removeNamespaces(layoutNamespaces(this.layout))
    if (failures.length > 0) throw new NetnsError(`could not remove namespaces: ${failures.join('; ')}`)
    return true
  }
}

/**
 * Partitions as blackhole routes inside each node's namespace. `set` takes
 * the whole wanted state (node index -> indices of peers it must not reach),
 * so a heal is `set(new Map())` and a repeated call changes nothing.
 */
export class NetnsRoutes {
  private readonly layout: NetnsLayout
  private current = new Map<number, ReadonlySet<string>>()

  constructor (layout: NetnsLayout) {
    this.layout = layout
  }

  async set (blocked: ReadonlyMap<number, readonly number[]>): Promise<void> {
    const wanted = new Map<number, ReadonlySet<string>>()
    for (const [index, peers] of blocked) wanted.set(index, new Set(peers.map((p) => this.address(p))))
    const changes = routeChanges(this.layout, this.current, wanted)
    // -force: a route already gone (or present) does not stop the rest of the batch.
    await Promise.all([...changes].map(async ([ns, lines]) => await ip(['-force', '-n', ns, '-batch', '-'], lines.join('\n') + '\n')))
    this.current = wanted
  }

  /** The blackholed addresses per namespace, as `ip route` shows them (tests). */
  async show (): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    for (const n of this.layout.nodes) {
      const text = await ip(['-n', n.namespace, 'route', 'show', 'type', 'blackhole'])
      out.set(n.namespace, text.split('\n').map((l) => /^blackhole\s+(\S+)/.exec(l.trim())?.[1]).filter((a): a is string => a !== undefined))
    }
    return out
  }

  private address (index: number): string {
    const n = this.layout.nodes[index]
    if (n === undefined) throw new Error(`no node #${index} in the netns layout`)
    return n.address
  }
}
