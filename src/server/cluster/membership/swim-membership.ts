// The node's membership: the SWIM state machine on a real UDP/TCP transport,
// with discovery (join at start, formation wait, periodic re-resolution),
// logs and metrics around it. This is the I/O edge; the protocol itself is in
// state.ts (with member-table.ts and push-pull.ts).
import { EventEmitter } from 'node:events'
import { networkInterfaces } from 'node:os'
import { isIP } from 'node:net'
import type { Registry } from 'prom-client'
import type { Config } from '../../../config/index.js'
import { rateLimited, type Logger } from '../../../log.js'
import { BrokerHaError } from '../../../errors.js'
import type { Member, MemberMeta, Membership, MembershipEvents } from './membership.js'
import { profileFromConfig, type ClusterProfile } from './config-profile.js'
import { systemClock, type Clock, type Random, type TimerHandle } from './clock.js'
import { Keyring } from '../keyring.js'
import { NetTransport, type LinkStreamHandler } from './net-transport.js'
import { FaultInjectingTransport } from '../fault-injection.js'
import { SwimState } from './state.js'
import { formationWait, hasDiscovery, resolvePeers, type DiscoverySource, type Resolution } from './discovery.js'
import { Admission, RESOLVE_ON_DEMAND_MS } from './admission.js'
import { registerClusterMetrics } from './metrics.js'
import type { Address, Transport } from './transport.js'
import type { UserStateDelegate } from './push-pull.js'

export interface SwimMembershipOptions {
  config: Config
  log: Logger
  registry: Registry
  meta: MemberMeta
  /** For tests; default: UDP+TCP on cluster.bind:cluster.port. */
  transport?: Transport
  /**
   * Wraps the transport in a FaultInjectingTransport (exposed as `faults`) so
   * the chaos launcher can cut links without root. Only the chaos launcher
   * sets this (there is deliberately no config key for it), and it refuses
   * any non-loopback bind address.
   */
  faultInjection?: boolean
  clock?: Clock
  random?: Random
}

/** How long stop() spends telling the others we leave. */
const LEAVE_TIMEOUT_MS = 2000

/** Probes of a member answered over TCP only, in a row, before the node warns that UDP is blocked. */
const TCP_ONLY_WARN_AFTER = 3

export class SwimMembership extends EventEmitter<MembershipEvents> implements Membership {
  private readonly state: SwimState
  private readonly transport: Transport
  /** The TCP/UDP transport when it is the real one: the data plane shares its TCP listener. */
  private readonly net: NetTransport | undefined
  /** The chaos hook, when the node was started for chaos (see SwimMembershipOptions.faultInjection). */
  readonly faults: FaultInjectingTransport | undefined
  private readonly log: Logger
  private readonly config: Config
  private readonly profile: ClusterProfile
  private readonly clock: Clock
  private readonly random: Random
  private readonly discovery: DiscoverySource
  private resolveTimer: TimerHandle | undefined
  private running = false
  /** Addresses discovery found at the last resolution that no live member is at and that did not answer a join. */
  private unjoined = 0
  /** Without a key: who may reach the cluster port (admission.ts); undefined with a key. */
  readonly admission: Admission | undefined
  private lastOnDemand = -Infinity
  private resolving = false

  constructor (opts: SwimMembershipOptions) {
    super()
    const { config } = opts
    this.config = config
    this.log = opts.log
    this.clock = opts.clock ?? systemClock
    this.random = opts.random ?? Math.random
    this.profile = profileFromConfig(config.cluster.config)
    const cc = config.cluster.config
    const keyring = new Keyring([cc.secret_key, ...cc.secondary_keys], { label: config.cluster.label })
    const advertise = { host: advertiseAddress(config.cluster.bind, config.cluster.advertise), port: config.cluster.port }
    this.admission = keyring.encrypted
      ? undefined
      : new Admission({
        self: [advertise.host, config.cluster.bind],
        liveHosts: () => this.state.list().filter((m) => m.state === 'alive' || m.state === 'suspect').map((m) => m.addr)
      })
    const badLog = rateLimited(this.log, 10_000)
    const refusedLog = rateLimited(this.log, 10_000)
    const conflictLog = rateLimited(this.log, 10_000)
    const udpLog = rateLimited(this.log, 60_000)
    /** Probes of a member answered over TCP only since its last UDP answer. */
    const tcpOnly = new Map<string, number>()
    // Read at scrape time, so they may refer to parts built just below.
    const metrics = registerClusterMetrics(opts.registry, {
      members: () => this.state.list(),
      healthScore: () => this.state.awareness.getHealthScore(),
      stats: () => this.transport.stats
    })
    const base = opts.transport ?? new NetTransport({
      bind: config.cluster.bind,
      port: config.cluster.port,
      streamTimeoutMs: cc.tcp_timeout,
      maxPending: config.cluster.max_pending_connections,
      ...(this.admission === undefined ? {} : { admit: (host: string) => this.admission!.admits(host) }),
      onBadStream: (from, reason) => {
        metrics.badPacket(reason)
        badLog('warn', { from: `${from.host}:${from.port}`, reason }, 'dropped malformed cluster stream')
      },
      onRefused: (from, kind, reason) => {
        metrics.refused(kind, reason)
        refusedLog('warn', { from: `${from.host}:${from.port}`, kind, reason }, reason === 'address'
          ? 'refused cluster traffic from an address discovery did not yield (no cluster key: members are admitted by address)'
          : 'refused a cluster connection: too many not yet authenticated (cluster.max_pending_connections)')
        // A member that just started may be in DNS already and not in our last answers.
        if (reason === 'address') this.resolveOnDemand()
      }
    })
    this.net = base instanceof NetTransport ? base : undefined
    this.faults = opts.faultInjection === true ? new FaultInjectingTransport(base) : undefined
    this.transport = this.faults ?? base
    this.state = new SwimState({
      name: config.cluster.name,
      advertise,
      meta: opts.meta,
      profile: this.profile,
      transport: this.transport,
      keyring,
      clock: this.clock,
      random: this.random,
      observer: {
        probe: (target, result) => {
          metrics.probe(result)
          if (result === 'ack' || result === 'indirect-ack') tcpOnly.delete(target)
          if (result !== 'tcp-ack') return
          // One TCP-only answer can be a stall (both answers queued, TCP's
          // read first); several in a row with no UDP answer between are a
          // network that drops UDP.
          const inARow = (tcpOnly.get(target) ?? 0) + 1
          tcpOnly.set(target, inARow)
          if (inARow < TCP_ONLY_WARN_AFTER) return
          const m = this.state.member(target)
          udpLog('warn', { member: target, addr: m === undefined ? undefined : `${m.addr}:${m.port}` },
            'cluster member answered a probe over TCP only: UDP on the cluster port is blocked between us (open it for UDP as well as TCP; gossip reaches it only on these probes and through push/pull)')
        },
        suspect: (m, from) => {
          metrics.suspicion()
          this.log.info({ member: m.name, addr: m.addr, incarnation: m.incarnation, from }, 'cluster member suspected')
        },
        refute: (incarnation, by) => {
          metrics.refutation()
          this.log.info({ member: config.cluster.name, incarnation, accuser: by }, 'refuted suspicion about this node')
        },
        badPacket: (reason, from, detail) => {
          metrics.badPacket(reason)
          badLog('warn', { from: `${from.host}:${from.port}`, reason, detail }, 'dropped cluster packet')
        },
        nameConflict: (name, existing, claimed) => {
          conflictLog('error', { member: name, existing: `${existing.host}:${existing.port}`, claimed: `${claimed.host}:${claimed.port}` }, 'two cluster members use the same name (cluster.name must be unique)')
        }
      }
    })
    this.state.on('join', (m) => {
      this.log.info({ member: m.name, addr: m.addr, port: m.port, incarnation: m.incarnation }, 'cluster member joined')
      this.emit('join', m)
    })
    this.state.on('update', (m) => {
      if (m.state === 'alive') this.log.info({ member: m.name, addr: m.addr, incarnation: m.incarnation }, 'cluster member alive again')
      this.emit('update', m)
    })
    this.state.on('leave', (m) => {
      tcpOnly.delete(m.name)
      if (m.state === 'left') metrics.left()
      else metrics.dead()
      this.log.info({ member: m.name, addr: m.addr, incarnation: m.incarnation, state: m.state }, m.state === 'left' ? 'cluster member left' : 'cluster member dead')
      this.emit('leave', m)
    })
    this.discovery = {
      domain: config.discovery.domain,
      seeds: config.discovery.seeds,
      dnsServer: config.discovery.dns_server,
      defaultPort: config.cluster.port
    }
    if (!keyring.encrypted) {
      this.log.warn('cluster.config.secret_key is not set: cluster traffic is neither encrypted nor authenticated; only addresses discovery yields are admitted')
    }
  }

  get self (): Member { return this.state.local }
  members (): Member[] { return this.state.list() }
  healthScore (): number { return this.state.awareness.getHealthScore() }
  unjoinedPeers (): number { return this.unjoined }

  /**
   * A member listed dead (or reaped since) whose data-plane link came back as the same process,
   * or stayed up (LinkSet asks every second while it is so):
   * the partition healed, but no side probes a member it declared dead, so
   * when both sides declared each other dead the views merged only at the
   * next re-resolution (discovery.resolve_interval: 28 s after a 8 s
   * partition, in which a client resuming on this side was not fetched its
   * session from there). A push-pull with it merges them now; it refutes
   * its death with a new incarnation.
   */
  rejoin (name: string, address: { host: string, port: number }): void {
    if (!this.running) return
    const m = this.state.member(name)
    if (m !== undefined && m.state !== 'dead') return
    this.state.join([address]).then((r) => {
      if (r.joined > 0) this.log.info({ member: name }, 'merged with a member listed dead whose peer link answered again')
    }, (err: Error) => this.log.debug({ member: name, err: err.message }, 'rejoin of a member listed dead failed'))
  }
  setDelegate (delegate: UserStateDelegate | undefined): void { this.state.setDelegate(delegate) }
  /** Routes data-plane connections on the cluster port to `handler`; false when the transport has no TCP listener of ours. */
  setLinkHandler (handler: LinkStreamHandler | undefined): boolean {
    if (this.net === undefined) return false
    this.net.linkHandler = handler
    return true
  }

  /**
   * Listens, then joins what discovery finds. If nobody answers within the
   * randomised formation wait, the node forms a cluster on its own (and keeps
   * re-resolving, so it merges with the others later).
   */
  async start (): Promise<void> {
    // Admission needs the addresses before the first packet arrives.
    const first = hasDiscovery(this.discovery) ? await this.resolve() : undefined
    await this.state.start()
    this.running = true
    const self = this.state.local
    this.log.info({ name: self.name, addr: self.addr, port: self.port, bind: this.config.cluster.bind }, 'cluster membership listening')
    if (first === undefined) return
    try {
      await this.formCluster(first)
    } catch (err) {
      await this.state.stop()
      this.running = false
      throw err
    }
    this.scheduleResolve()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.clock.clearTimeout(this.resolveTimer)
    await this.state.leave(LEAVE_TIMEOUT_MS)
    await this.state.stop()
  }

  /** Resolves discovery, and admits what it yields (without a key). */
  private async resolve (): Promise<Resolution> {
    const resolution = await resolvePeers(this.discovery, this.excluded())
    this.admission?.update(resolution.addresses.map((a) => a.host), resolution.errors.length === 0)
    return resolution
  }

  /** An unknown address knocked: resolve now (at most every RESOLVE_ON_DEMAND_MS), in case discovery yields it by now. */
  private resolveOnDemand (): void {
    if (!this.running || this.resolving || !hasDiscovery(this.discovery)) return
    const now = this.clock.now()
    if (now - this.lastOnDemand < RESOLVE_ON_DEMAND_MS) return
    this.lastOnDemand = now
    this.resolving = true
    this.resolve().catch(() => {}).finally(() => { this.resolving = false })
  }

  private async formCluster (first: Resolution): Promise<void> {
    const d = this.config.discovery
    const wait = formationWait(d.formation_wait_min, d.formation_wait_max, this.random)
    const deadline = this.clock.now() + wait
    for (let attempt = 1; ; attempt++) {
      const { addresses, errors } = attempt === 1 ? first : await this.resolve()
      if (addresses.length > 0) {
        const result = await this.state.join(addresses)
        if (result.joined > 0) {
          this.log.info({ joined: result.joined, tried: addresses.length, members: this.state.numLive() }, 'joined cluster')
          return
        }
        if (attempt === 1) this.log.info({ tried: addresses.map((a) => `${a.host}:${a.port}`), errors: result.errors.map((e) => e.error.message).slice(0, 5) }, 'no peer answered yet')
      } else if (attempt === 1) {
        this.log.info({ errors }, 'discovery found no peers yet')
      }
      // Somebody may have joined us meanwhile: then we are part of a cluster already.
      if (this.state.numLive() > 1) {
        this.log.info({ members: this.state.numLive() }, 'joined by peers during formation wait')
        return
      }
      const left = deadline - this.clock.now()
      this.unjoined = addresses.length
      if (left <= 0) {
        this.log.info({ waitedMs: wait }, 'no peers answered: forming a cluster alone')
        return
      }
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, Math.min(left, 250 * attempt, 1000)))
      if (!this.running) return
    }
  }

  private excluded (): Address[] {
    const self = this.state.local
    return [{ host: self.addr, port: self.port }, { host: this.config.cluster.bind, port: this.config.cluster.port }]
  }

  /** Re-resolution: join any discovered address no live member is at (a separately formed cluster). */
  private scheduleResolve (): void {
    this.resolveTimer = this.clock.setTimeout(() => {
      this.resolveOnce().catch((err: unknown) => {
        if (err instanceof BrokerHaError && err.code === 'CLUSTER_NAME_CONFLICT') this.log.error({ err: err.message }, 'cannot merge with discovered peer')
      }).finally(() => { if (this.running) this.scheduleResolve() })
    }, this.config.discovery.resolve_interval)
  }

  private async resolveOnce (): Promise<void> {
    if (!this.running) return
    const { addresses } = await this.resolve()
    const known = new Set(this.state.list().filter((m) => m.state === 'alive' || m.state === 'suspect').map((m) => `${m.addr}:${m.port}`))
    const unknown = addresses.filter((a) => !known.has(`${a.host}:${a.port}`))
    this.unjoined = unknown.length
    if (unknown.length === 0 || !this.running) return
    const result = await this.state.join(unknown)
    this.unjoined = unknown.length - result.joined
    if (result.joined > 0) this.log.info({ joined: result.joined, addresses: unknown.map((a) => `${a.host}:${a.port}`) }, 'merged with peers found by re-resolution')
  }
}

/** cluster.advertise, else the bind address, else (bound to all interfaces) the first non-loopback IPv4. */
export function advertiseAddress (bind: string, advertise: string): string {
  if (advertise !== '') return advertise
  if (bind !== '0.0.0.0' && bind !== '::') return bind === 'localhost' ? '127.0.0.1' : bind
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal && isIP(a.address) === 4) return a.address
    }
  }
  return '127.0.0.1'
}
