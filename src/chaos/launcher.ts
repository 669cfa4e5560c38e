// The launcher: real `broker-ha serve` processes of this very package, one per
// node, each with a generated config in the run folder and its log next to
// it. It owns the processes: start, signals, restarts, and a stop() that
// leaves nothing behind, also when the run is interrupted.
//
// Every node runs with the hidden `--chaos-control` flag: fault injection in
// its cluster transport, /chaos/faults on its (loopback) API, and an exit
// when its stdin pipe closes, so even a runner killed with -9 takes its
// nodes with it.
//
// With a netns layout (`--network netns`), each node runs inside its own
// network namespace on its namespace address, and partitions are blackhole
// routes there (netns.ts); link cuts still use the in-process hook, which
// cannot tell the data plane from gossip by address alone.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify } from 'yaml'
import { ApiClient } from '../client/index.js'
import { nodeConfig, type MergeTiming, type NodeEndpoint } from './cluster-config.js'
import { allocateEndpoints, type AllocateOptions } from './addresses.js'
import { insideNamespace, NetnsRoutes, type NetnsLayout } from './netns.js'
import type { NodeState } from './history.js'

/** bin/broker-ha.js of the package this module belongs to (dist/src/chaos/ -> ../../../bin). */
export const BROKER_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'broker-ha.js')

export interface ChaosNode extends NodeEndpoint {
  index: number
  mqttUrl: string
  apiUrl: string
  api: ApiClient
  state: NodeState
  pid: number | undefined
  starts: number
  configPath: string
  logPath: string
}

export interface LauncherOptions extends AllocateOptions {
  nodes: number
  runDir: string
  bin?: string
  /** How long a node may take from spawn to answering its API. */
  startTimeoutMs?: number
  /** Told about every state change (history, live view). */
  onState?: (node: ChaosNode, state: NodeState) => void
  /** Told when a node exits without being asked to. */
  onUnexpectedExit?: (node: ChaosNode, code: number | null, signal: string | null) => void
  /** Run each node in its namespace of this layout (already built; see NetnsNetwork). */
  netns?: NetnsLayout
  /** Give every node a store in the run directory (`<name>-data`), so a restart of every node loses nothing (fault restart-all). */
  storage?: boolean
  /** Discovery re-resolution and push/pull of the nodes (see MERGE_TIMINGS). */
  mergeTiming?: MergeTiming
}

/** How a run splits the cluster: for the report and --json. */
export type PartitionMechanism = 'fault-hook' | 'netns-routes'

/** Per node index, the peer indices it cuts, by what it cuts (see setFaults). */
export interface ClusterFaults {
  blocked?: ReadonlyMap<number, number[]>
  links?: ReadonlyMap<number, number[]>
  gossip?: ReadonlyMap<number, number[]>
  udp?: ReadonlyMap<number, number[]>
}

export class LaunchError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'LaunchError'
  }
}

export class ChaosCluster {
  readonly nodes: ChaosNode[] = []
  /** Every process id ever spawned, restarts included (tests check none is left). */
  readonly spawned: number[] = []
  private readonly options: LauncherOptions
  private readonly children = new Map<number, { child: ChildProcess, exited: Promise<void>, expected: boolean }>()
  private stopped = false
  private readonly routes: NetnsRoutes | undefined

  constructor (options: LauncherOptions) {
    this.options = options
    if (options.netns !== undefined && options.netns.nodes.length !== options.nodes) throw new LaunchError(`the netns layout has ${options.netns.nodes.length} nodes, not ${options.nodes}`)
    this.routes = options.netns === undefined ? undefined : new NetnsRoutes(options.netns)
  }

  get partitionMechanism (): PartitionMechanism {
    return this.routes === undefined ? 'fault-hook' : 'netns-routes'
  }

  /** Picks free addresses, writes configs, starts every node and waits until each API answers. */
  async start (): Promise<void> {
    mkdirSync(this.options.runDir, { recursive: true })
    // A namespace's address is its own: nothing else can hold it, so there is nothing to probe.
    const endpoints: NodeEndpoint[] = this.options.netns === undefined
      ? await allocateEndpoints(this.options.nodes, this.options)
      : this.options.netns.nodes.map((n, i) => ({ name: `chaos-${i + 1}`, host: n.address, mqttPort: 1883, apiPort: 8080, clusterPort: 7946 }))
    // In namespaces the runner calls from the host side of a veth, not from the
    // node's host: it authenticates, with a password made for this run.
    const apiUser = this.options.netns === undefined ? undefined : { name: 'chaos', password: randomBytes(18).toString('base64url') }
    for (const [index, e] of endpoints.entries()) {
      const configPath = join(this.options.runDir, `${e.name}.yaml`)
      const storageDir = this.options.storage === true ? join(this.options.runDir, `${e.name}-data`) : undefined
      writeFileSync(configPath, stringify(nodeConfig(e, endpoints, { apiUser, storageDir, ...(this.options.mergeTiming === undefined ? {} : { mergeTiming: this.options.mergeTiming }) })), { mode: 0o600 })
      const apiUrl = `http://${e.host}:${e.apiPort}`
      this.nodes.push({
        ...e,
        index,
        mqttUrl: `mqtt://${e.host}:${e.mqttPort}`,
        apiUrl,
        api: new ApiClient({ baseUrl: apiUrl, timeoutMs: 1000, ...(apiUser === undefined ? {} : { username: apiUser.name, password: apiUser.password }) }),
        state: 'stopped',
        pid: undefined,
        starts: 0,
        configPath,
        logPath: join(this.options.runDir, `${e.name}.log`)
      })
    }
    await Promise.all(this.nodes.map((n) => this.startNode(n.index)))
  }

  node (index: number): ChaosNode {
    const n = this.nodes[index]
    if (n === undefined) throw new Error(`no node #${index}`)
    return n
  }

  /** Spawns the node's process (again) and waits until its API answers. */
  async startNode (index: number): Promise<void> {
    if (this.stopped) throw new LaunchError('cluster is stopped')
    const node = this.node(index)
    if (this.children.has(index)) throw new LaunchError(`${node.name} is already running`)
    this.setState(node, 'starting')
    const log = openSync(node.logPath, 'a')
    let child: ChildProcess
    try {
      const command = [process.execPath, this.options.bin ?? BROKER_BIN, 'serve', '--config', node.configPath, '--chaos-control']
      // `ip netns exec` execs the node in place: the child's pid is the node's, so signals reach it directly.
      if (this.options.netns !== undefined) command.unshift(...insideNamespace(this.options.netns.nodes[index]!.namespace))
      child = spawn(command[0]!, command.slice(1), {
        // stdin stays an open pipe: the node exits when it closes (runner gone).
        stdio: ['pipe', log, log],
        env: { PATH: process.env.PATH ?? '' }
      })
    } finally {
      closeSync(log)
    }
    node.starts++
    node.pid = child.pid
    if (child.pid !== undefined) this.spawned.push(child.pid)
    const entry = { child, expected: false, exited: Promise.resolve() }
    entry.exited = once(child, 'exit').then(([code, signal]) => {
      this.children.delete(index)
      node.pid = undefined
      if (!entry.expected && !this.stopped) {
        this.setState(node, 'stopped')
        this.options.onUnexpectedExit?.(node, code as number | null, signal as string | null)
      }
    })
    // A write to the pipe of a node that died must not crash the runner.
    child.stdin?.on('error', () => {})
    this.children.set(index, entry)
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000)
    for (;;) {
      if (!this.children.has(index) || child.exitCode !== null) throw new LaunchError(`${node.name} exited during start (see ${node.logPath})`)
      try {
        await node.api.members()
        break
      } catch (err) {
        if (Date.now() > deadline) {
          await this.signal(index, 'SIGKILL', 'killed')
          throw new LaunchError(`${node.name} did not answer on ${node.apiUrl} within ${this.options.startTimeoutMs ?? 20_000} ms (see ${node.logPath})`, { cause: err })
        }
        await sleep(100)
      }
    }
    this.setState(node, 'up')
  }

  /**
   * Sends `signal` and waits for the exit. SIGTERM is a graceful stop (the
   * node leaves the cluster and closes its clients); after `graceMs` the node
   * is killed.
   */
  async signal (index: number, signal: 'SIGKILL' | 'SIGTERM', state: 'killed' | 'stopped', graceMs = 10_000): Promise<void> {
    const entry = this.children.get(index)
    const node = this.node(index)
    if (entry === undefined) return
    entry.expected = true
    if (node.state === 'paused') entry.child.kill('SIGCONT')
    entry.child.kill(signal)
    // The node stops serving from the signal on (a graceful stop closes its clients at once), so that is the state change.
    this.setState(node, state)
    const timer = setTimeout(() => entry.child.kill('SIGKILL'), graceMs)
    await entry.exited
    clearTimeout(timer)
  }

  pause (index: number): void {
    const entry = this.children.get(index)
    if (entry === undefined) return
    entry.child.kill('SIGSTOP')
    this.setState(this.node(index), 'paused')
  }

  resume (index: number): void {
    const entry = this.children.get(index)
    if (entry === undefined) return
    entry.child.kill('SIGCONT')
    this.setState(this.node(index), 'up')
  }

  /**
   * Sets which peers each node drops all cluster traffic to and from
   * (`blocked`: a partition), and which it only cuts the data-plane links to
   * (`links`), only the membership traffic (`gossip`), or only the UDP
   * (`udp`). Both ways must be set for a symmetric fault; no maps heal.
   * In netns mode `blocked` becomes blackhole routes (they hold whatever
   * state the node is in, restarts included); the others always go to the hook.
   */
  async setFaults (faults: ClusterFaults = {}): Promise<void> {
    let blocked = faults.blocked ?? new Map()
    if (this.routes !== undefined) {
      await this.routes.set(blocked)
      blocked = new Map()
    }
    // Per-host addresses block the peer's whole address; shared 127.0.0.1 blocks by host:port.
    const key = (n: ChaosNode): string => this.nodes.filter((m) => m.host === n.host).length > 1 ? `${n.host}:${n.clusterPort}` : n.host
    const peers = (map: ReadonlyMap<number, number[]> | undefined, n: ChaosNode): string[] => (map?.get(n.index) ?? []).map((i) => key(this.node(i)))
    await Promise.all(this.nodes.map(async (n) => {
      if (n.state !== 'up') return
      await n.api.request('POST', '/chaos/faults', { blocked: peers(blocked, n), links: peers(faults.links, n), gossip: peers(faults.gossip, n), udp: peers(faults.udp, n) })
    }))
  }

  /** Kills every process (resuming paused ones first), waits for the exits. Safe to call twice. */
  async stop (): Promise<void> {
    this.stopped = true
    const entries = [...this.children.values()]
    for (const e of entries) {
      e.expected = true
      e.child.kill('SIGCONT')
      e.child.kill('SIGKILL')
    }
    await Promise.all(entries.map((e) => e.exited))
    await Promise.all(this.nodes.map((n) => n.api.close()))
  }

  /** Process ids still running (for tests and the report). */
  livePids (): number[] {
    return [...this.children.values()].map((e) => e.child.pid).filter((p): p is number => p !== undefined)
  }

  private setState (node: ChaosNode, state: NodeState): void {
    if (node.state === state) return
    node.state = state
    this.options.onState?.(node, state)
  }
}
