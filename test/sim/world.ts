// The simulation world: several broker nodes in one process, each with its
// real aedes and its real data plane, over the in-memory network, on a fake
// clock, with every choice (latencies, failure-detection delays, fault
// schedule, client behaviour) drawn from one seeded random source. The same
// seed replays the same run, event for event.
//
// What it fakes: time (setTimeout, setInterval, setImmediate, Date: all
// virtual, advanced by the world), Math.random (seeded), the network
// (network.ts) and the membership (membership.ts: the world decides when
// each node learns of a death). What it does not fake: everything between
// a socket and the wire, in the broker: aedes, the persistence, the data
// plane, the peer links, their framing and encryption.
import * as FakeTimers from '@sinonjs/fake-timers'
import type { Socket } from 'node:net'
import { Registry } from 'prom-client'
import { pino, type Logger } from 'pino'
import { loadConfig, type Config } from '../../src/config/index.js'
import { Bus } from '../../src/server/bus.js'
import { MqttServer } from '../../src/server/mqtt/index.js'
import { DataPlane } from '../../src/server/cluster/dataplane/data-plane.js'
import { History } from '../../src/chaos/history.js'
import { seededRandom, randomInt, type Random } from '../../src/random.js'
import { SimNetwork, type Reachability, type SimSocket } from './network.js'
import { ScriptedMembership, member, CLUSTER_PORT } from './membership.js'
import { SimClient, type ClientOptions } from './client.js'

export const SIM_EPOCH = 1_800_000_000_000

/** Bounds of the failure-detection delay the world picks per observer (ms). */
export interface DetectionDelays { min: number, max: number }

export interface WorldOptions {
  seed: number
  nodes: number
  detection?: DetectionDelays
  /** Per-node config overrides. */
  config?: Record<string, unknown>
  /** Log level of the nodes' loggers (default: SIM_LOG from the environment, else silent). */
  logLevel?: string
}

export type NodeStatus = 'up' | 'dead' | 'paused' | 'stopping'

/** One broker process: what a restart throws away. */
export class SimNode {
  readonly name: string
  readonly host: string
  readonly incarnation: number
  readonly config: Config
  readonly membership: ScriptedMembership
  readonly mqtt: MqttServer
  readonly dataPlane: DataPlane
  readonly log: Logger
  status: NodeStatus = 'up'

  constructor (world: World, name: string, host: string, incarnation: number) {
    this.name = name
    this.host = host
    this.incarnation = incarnation
    this.config = loadConfig({ object: deepMerge({
      mqtt: { bind: host, shutdown_grace_period: 500 },
      cluster: { bind: host, name, config: { gossip_to_the_dead_time: 5000 } },
      log: { level: 'silent' }
    }, world.options.config ?? {}) }).config
    this.log = world.logger.child({ node: name, inc: incarnation })
    const registry = new Registry()
    const bus = new Bus()
    this.membership = new ScriptedMembership(name, host, incarnation)
    this.mqtt = new MqttServer({ config: this.config, log: this.log.child({ component: 'mqtt' }), bus, registry, listen: false })
    this.dataPlane = new DataPlane({
      config: this.config,
      log: this.log.child({ component: 'dataplane' }),
      registry,
      bus,
      membership: this.membership,
      mqtt: this.mqtt,
      // A process that was killed dials nobody: its sockets would belong to a dead process.
      dial: (peer) => world.network.dial(host, peer.addr, peer.port, world.nodes.get(name) === this ? world.reach(host, peer.addr) : 'refused', world.linkAcceptor(peer.addr)) as unknown as Socket
    })
  }

  async start (): Promise<void> {
    await this.dataPlane.start()
    await this.mqtt.start()
  }

  async stop (): Promise<void> {
    await this.mqtt.stop()
    await this.dataPlane.stop()
  }
}

export class World {
  readonly options: WorldOptions
  readonly random: Random
  readonly clock: FakeTimers.Clock
  readonly network: SimNetwork
  readonly history: History
  readonly logger: Logger
  readonly names: string[]
  /** The current process of each node (undefined while dead). */
  readonly nodes = new Map<string, SimNode>()
  private readonly hosts = new Map<string, string>()
  private readonly incarnations = new Map<string, number>()
  /** Each node's membership incarnation: a restart or a refutation (back from a pause or a partition) raises it. */
  private readonly swimIncarnations = new Map<string, number>()
  /** Groups that cannot reach each other (partition), by host. */
  private partition: Array<Set<string>> | undefined
  /** Host pairs whose peer links are cut (links fault): dials refused. */
  private cut: Array<[Set<string>, Set<string>]> = []
  readonly clients: SimClient[] = []
  private clientHosts = 0
  private readonly realRandom = Math.random
  readonly detection: DetectionDelays
  private readonly background: Array<Promise<unknown>> = []

  constructor (options: WorldOptions) {
    this.options = options
    this.random = seededRandom(options.seed)
    this.detection = options.detection ?? { min: 300, max: 1500 }
    this.clock = FakeTimers.install({
      now: SIM_EPOCH,
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date'],
      loopLimit: 10_000_000
    })
    // aedes picks packet identifiers with Math.random; everything random must come from the seed.
    const mathRandom = seededRandom(options.seed ^ 0x5eed)
    Math.random = mathRandom
    this.history = new History(() => Date.now() - SIM_EPOCH)
    const level = options.logLevel ?? process.env.SIM_LOG ?? 'silent'
    this.logger = pino({ level, base: undefined, timestamp: () => `,"t":${Date.now() - SIM_EPOCH}` }, pino.destination({ dest: 2, sync: true }))
    this.network = new SimNetwork({ random: this.random, policy: { flows: (a, b) => this.flows(a, b) } })
    this.names = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`)
    this.names.forEach((n, i) => this.hosts.set(n, `10.0.0.${i + 1}`))
  }

  hostOf (name: string): string { return this.hosts.get(name)! }
  nameOf (host: string): string | undefined { return [...this.hosts].find(([, h]) => h === host)?.[0] }
  node (name: string): SimNode | undefined { return this.nodes.get(name) }
  upNodes (): SimNode[] { return [...this.nodes.values()].filter((n) => n.status === 'up') }

  // ---- time -----------------------------------------------------------------------------

  get now (): number { return Date.now() - SIM_EPOCH }

  /** Advances virtual time by `ms`, running every timer and promise due. */
  async run (ms: number): Promise<void> {
    await this.clock.tickAsync(ms)
  }

  /** Advances time until `cond` holds (checked every `stepMs`) or `maxMs` passed; returns whether it held. */
  async until (cond: () => boolean, maxMs: number, stepMs = 10): Promise<boolean> {
    const end = this.now + maxMs
    while (!cond()) {
      if (this.now >= end) return false
      await this.run(stepMs)
    }
    return true
  }

  /** Waits for `work` while virtual time runs (node code waits on timers: nothing else advances the clock). */
  async drive<T> (work: Promise<T>, maxMs = 60_000): Promise<T> {
    let done = false
    const tracked = work.finally(() => { done = true })
    tracked.catch(() => {})
    const end = this.now + maxMs
    while (!done && this.now < end) await this.run(5)
    if (!done) throw new Error(`simulated work did not finish within ${maxMs} virtual ms`)
    return await tracked
  }

  /** Runs `work` in the background (a node stopping); the world waits for it at the end. */
  spawn (work: Promise<unknown>): void {
    this.background.push(work.catch(() => {}))
  }

  // ---- the network's rules ------------------------------------------------------------------

  private flows (from: string, to: string): boolean {
    const a = this.nodeAt(from)
    const b = this.nodeAt(to)
    if (a?.status === 'paused' || b?.status === 'paused') return false
    if (this.partition !== undefined) {
      const side = (h: string): number => this.partition!.findIndex((s) => s.has(h))
      const sa = side(from)
      const sb = side(to)
      if (sa >= 0 && sb >= 0 && sa !== sb) return false
    }
    return true
  }

  private nodeAt (host: string): SimNode | undefined {
    const name = this.nameOf(host)
    return name === undefined ? undefined : this.nodes.get(name)
  }

  /** How a dial from `from` to a node's host fares now. */
  reach (from: string, to: string): Reachability {
    const target = this.nodeAt(to)
    if (target === undefined || target.status === 'dead') return 'refused'
    if (this.cut.some(([a, b]) => (a.has(from) && b.has(to)) || (b.has(from) && a.has(to)))) return 'refused'
    if (!this.flows(from, to)) return 'hang'
    return 'ok'
  }

  /** The data-plane acceptor of whatever process listens on `host` at connect time. */
  linkAcceptor (host: string): ((socket: SimSocket) => void) | undefined {
    return (socket) => {
      const handler = this.nodeAt(host)?.membership.linkHandler
      if (handler === undefined) socket.destroy()
      else handler(socket as never, Buffer.alloc(0))
    }
  }

  // ---- nodes ------------------------------------------------------------------------------

  /** Starts every node and lets them all see each other alive. */
  async start (): Promise<void> {
    for (const name of this.names) await this.startNode(name, true)
    for (const a of this.nodes.values()) {
      for (const b of this.nodes.values()) a.membership.learn(member(b.name, b.host, 'alive', this.swimInc(b.name)))
    }
    this.history.record({ type: 'run-start', seed: this.options.seed, nodes: this.names, faults: [], durationMs: 0 })
    await this.run(200)
  }

  private refute (name: string): number {
    const inc = (this.swimIncarnations.get(name) ?? 0) + 1
    this.swimIncarnations.set(name, inc)
    return inc
  }

  private swimInc (name: string): number { return this.swimIncarnations.get(name) ?? 1 }

  private async startNode (name: string, quiet = false): Promise<SimNode> {
    const inc = (this.incarnations.get(name) ?? 0) + 1
    this.incarnations.set(name, inc)
    const swim = this.refute(name)
    const node = new SimNode(this, name, this.hostOf(name), inc)
    this.nodes.set(name, node)
    await this.drive(node.start())
    this.history.record({ type: 'node', node: name, state: 'up' })
    if (!quiet) {
      // Every live node learns of it, each after its own delay; it learns of them at once (its join).
      for (const other of this.upNodes()) {
        if (other === node) continue
        node.membership.learn(member(other.name, other.host, 'alive', this.swimInc(other.name)))
        this.tell(other, member(name, node.host, 'alive', swim), 20, 300)
      }
    }
    return node
  }

  /** `observer` learns `m` after a delay in [min, max] ms (if it is still the same process then). */
  private tell (observer: SimNode, m: ReturnType<typeof member>, min = this.detection.min, max = this.detection.max): void {
    setTimeout(() => {
      if (this.nodes.get(observer.name) !== observer || observer.status === 'dead') return
      observer.membership.learn(m)
    }, randomInt(this.random, min, max))
  }

  /** Tells every other live node, each after its own delay, that `name` is in `state`. */
  private announce (name: string, state: 'dead' | 'left' | 'alive', min?: number, max?: number): void {
    const inc = state === 'alive' ? this.refute(name) : this.swimInc(name)
    for (const other of this.upNodes()) if (other.name !== name) this.tell(other, member(name, this.hostOf(name), state, inc), min, max)
  }

  /** SIGKILL: every connection of the process resets, its memory is gone; peers declare it dead after their detection delay. */
  kill (name: string): void {
    const node = this.nodes.get(name)
    if (node === undefined || node.status === 'dead') return
    node.status = 'dead'
    this.nodes.delete(name)
    this.history.record({ type: 'node', node: name, state: 'killed' })
    this.network.resetHost(node.host)
    this.announce(name, 'dead')
    // The process is gone: its timers must not act either. Its stop() cannot reach anyone now.
    this.spawn(node.stop())
  }

  /** SIGTERM: a graceful stop (clients told, sessions handed off); peers see it leave. */
  async stopNode (name: string): Promise<void> {
    const node = this.nodes.get(name)
    if (node === undefined || node.status !== 'up') return
    node.status = 'stopping'
    this.history.record({ type: 'node', node: name, state: 'stopped' })
    await this.drive(node.stop())
    node.status = 'dead'
    this.nodes.delete(name)
    this.network.resetHost(node.host)
    this.announce(name, 'left', 10, 100)
  }

  async restart (name: string): Promise<SimNode> {
    return await this.startNode(name)
  }

  /** SIGSTOP: nothing reaches or leaves the node; peers declare it dead after their detection delay. */
  pause (name: string): void {
    const node = this.nodes.get(name)
    if (node === undefined || node.status !== 'up') return
    node.status = 'paused'
    this.history.record({ type: 'node', node: name, state: 'paused' })
    this.announce(name, 'dead')
  }

  /** SIGCONT: what waited flows; peers see it alive again (it refutes). */
  resume (name: string): void {
    const node = this.nodes.get(name)
    if (node === undefined || node.status !== 'paused') return
    node.status = 'up'
    this.history.record({ type: 'node', node: name, state: 'up' })
    this.network.thaw()
    this.announce(name, 'alive', 20, 300)
  }

  /** Splits the nodes into two sides: traffic between them waits, each side declares the other dead. */
  split (side: string[]): void {
    const a = new Set(side.map((n) => this.hostOf(n)))
    const b = new Set(this.names.filter((n) => !side.includes(n)).map((n) => this.hostOf(n)))
    this.partition = [a, b]
    for (const x of this.upNodes()) {
      for (const y of this.upNodes()) {
        if (x === y || a.has(x.host) === a.has(y.host)) continue
        this.tell(x, member(y.name, y.host, 'dead', this.swimInc(y.name)))
      }
    }
  }

  heal (): void {
    this.partition = undefined
    this.network.thaw()
    const refuted = new Map(this.upNodes().map((y) => [y.name, this.refute(y.name)]))
    for (const x of this.upNodes()) {
      for (const y of this.upNodes()) if (x !== y) this.tell(x, member(y.name, y.host, 'alive', refuted.get(y.name)!), 20, 300)
    }
  }

  /** Cuts the peer links between `side` and the rest (membership untouched). */
  cutLinks (side: string[]): void {
    const a = new Set(side.map((n) => this.hostOf(n)))
    const b = new Set(this.names.filter((n) => !side.includes(n)).map((n) => this.hostOf(n)))
    this.cut.push([a, b])
    this.network.resetBetween(a, b)
  }

  restoreLinks (): void {
    this.cut = []
  }

  // ---- clients ------------------------------------------------------------------------------

  client (opts: ClientOptions): SimClient {
    const c = new SimClient(opts, this.history)
    ;(c as SimClient & { host: string }).host = `10.1.${Math.floor(this.clientHosts / 250)}.${(this.clientHosts++ % 250) + 1}`
    this.clients.push(c)
    return c
  }

  /** Connects a client to a node; resolves with session present, rejects when the connection fails. */
  connect (c: SimClient, nodeName: string): Promise<boolean> {
    const host = (c as SimClient & { host: string }).host
    const target = this.hostOf(nodeName)
    const socket = this.network.dial(host, target, 1883, this.reachMqtt(host, target), (server) => {
      const node = this.nodeAt(target)
      if (node === undefined || node.status === 'dead') server.destroy()
      else node.mqtt.accept(server as never)
    })
    return c.connect(socket, nodeName)
  }

  private reachMqtt (from: string, to: string): Reachability {
    const target = this.nodeAt(to)
    if (target === undefined || target.status !== 'up') return target?.status === 'paused' ? 'hang' : 'refused'
    return this.flows(from, to) ? 'ok' : 'hang'
  }

  // ---- the end --------------------------------------------------------------------------------

  /** Stops every node and client, waits for what runs in the background, uninstalls the fake clock. */
  async close (): Promise<void> {
    try {
      for (const c of this.clients) c.drop()
      for (const node of [...this.nodes.values()]) {
        if (node.status === 'paused') node.status = 'up'
        this.spawn(node.stop())
      }
      this.nodes.clear()
      let settled = false
      void Promise.all(this.background).then(() => { settled = true })
      for (let i = 0; i < 200 && !settled; i++) await this.run(100)
    } finally {
      this.clock.uninstall()
      Math.random = this.realRandom
    }
  }
}

function deepMerge (base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = out[k]
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof b === 'object' && b !== null && !Array.isArray(b)
      ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
      : v
  }
  return out
}

export { CLUSTER_PORT }
