// The set of peer links: one per live member, following the membership.
//
// - A member that joins (or comes back alive) gets a link; the lower name
//   dials (peer-link.ts), the acceptor hands the other side its sockets.
// - A member the membership declares dead while its link is up (hearing
//   from it within the link's idle timeout) is doubted, not yet dead: a
//   starved or paused process misses its gossip probes long before its TCP
//   link falls silent, and taking its sessions over then moved them back and
//   forth between live nodes and lost queued messages (the reconnect storm
//   under CPU load). Its death is acted on when its link goes down; if the
//   membership lists it alive first, nothing was done. A killed process's
//   link goes down at once (the kernel resets it), a host that is gone falls
//   silent within the idle timeout.
// - A member declared dead may only be on the other side of a partition:
//   its link is parked (kept, redialling, its unsettled messages kept for a
//   retransmission after the heal) for gossip_to_the_dead_time, then
//   dropped. A member that left gracefully is dropped at once.
// - A peer that comes back as a new process (a new `process` in its HELLO,
//   on the same link or a new one) lost everything it held: onRestart says
//   so, with what its predecessor never settled.
// - With chaos control (`serve --chaos-control`), partitions and link cuts
//   reach the links too: a blocked peer's connection is cut and its dials
//   hang, as on a real network.
import { connect as netConnect, isIP, Socket as NetSocket, type Socket } from 'node:net'
import type { Logger } from '../../../log.js'
import type { Keyring } from '../keyring.js'
import type { Member, Membership } from '../membership/membership.js'
import type { LinkStreamHandler } from '../membership/net-transport.js'
import type { LinkFaults } from '../fault-injection.js'
import { LinkAcceptor } from './link-acceptor.js'
import { normalizeHost } from '../membership/admission.js'
import { PeerLink, type DeliveryInfo } from './peer-link.js'

/**
 * How often the membership is asked to merge with a peer it lists dead while
 * that peer's link is up (doubted, or parked and back). No side probes a
 * member it declared dead, so with both sides having declared each other
 * dead the views merged at the next re-resolution (30 s by default) or when
 * gossip to the dead happened to reach the other side: `chaos --merge-timing
 * default`, a 4.5 s cut of the membership traffic between two nodes with
 * their links up, converged 9 s after the heal.
 */
const REJOIN_EVERY_MS = 1000

/** The membership as the data plane needs it: the SWIM one can lend its TCP listener. */
export type DataPlaneMembership = Membership & { setLinkHandler?: (handler: LinkStreamHandler | undefined) => boolean }

export interface LinkSetHandlers {
  onMessage: (link: PeerLink, payload: Buffer, info: DeliveryInfo) => void
  /** A connection finished its handshake. `restarted`: the peer is a new process since its last link. */
  onUp: (link: PeerLink, restarted: boolean) => void
  /** The membership declared the peer dead (it may be partitioned away) or it left. */
  onGone: (peer: string, state: 'dead' | 'left') => void
  /** The membership lists a parked peer as alive again; its link has not said yet whether it is the same process. */
  onReachable?: (peer: string) => void
  /** A parked peer is alive again, as the same process (it was cut off, not dead). */
  onBack: (peer: string) => void
  /** The peer came back as a new process: the held messages its predecessor never settled. */
  onRestart: (peer: string, orphans: Array<{ seq: number, payload: Buffer }>) => void
  /** The link's connection went down (it redials); `onUp` follows when it is back. */
  onDown: (peer: string) => void
  /** The link is gone for good (the member left, or stayed dead longer than it is kept), with the held messages it never settled. */
  onDropped: (peer: string, unsettled: Array<{ seq: number, payload: Buffer }>) => void
}

export interface LinkSetOptions {
  name: string
  /** This process's id, sent in every HELLO. */
  process: string
  /** cluster.bind: dials go out from it, so a peer sees the address we advertise. */
  bind: string
  /** How long a dead member's link is kept (cluster.config.gossip_to_the_dead_time). */
  parkMs: number
  keys: Keyring
  /** cluster.max_pending_connections and cluster.handshake_timeout, for inbound links. */
  maxPending?: number
  handshakeTimeoutMs?: number
  log: Logger
  membership: DataPlaneMembership
  faults?: LinkFaults | undefined
  /** Opens a connection to a peer's cluster port (default TCP; the simulation's in-memory network). */
  dial?: ((peer: Member, localAddress: string | undefined) => Socket) | undefined
  handlers: LinkSetHandlers
  warn: (level: 'warn' | 'info' | 'error', obj: object, msg: string) => void
  /** Delays acknowledging a received message until what it changed is written (PeerLinkOptions.ackGate). */
  ackGate?: () => Promise<void> | undefined
}

export class LinkSet {
  readonly acceptor: LinkAcceptor
  private readonly opts: LinkSetOptions
  private readonly links = new Map<string, PeerLink>()
  /** Links of members declared dead, kept until their timer runs out or the member is back. */
  private readonly parked = new Map<string, NodeJS.Timeout>()
  /** The process id each peer last had: a different one on a new link is a restart. */
  private readonly processes = new Map<string, string>()
  /** Each linked peer's cluster address, from its member entry: where the membership rejoins it. */
  private readonly addresses = new Map<string, { host: string, port: number }>()
  /** Peers whose link reported a restart that its onUp has not seen yet. */
  private readonly restartSeen = new Set<string>()
  /** The process a parked peer had when it was declared dead: the same one back is a return, not a restart. */
  private readonly parkedAs = new Map<string, string | undefined>()
  private running = false
  /** Members declared dead whose link was up then: their death waits for the link's word. */
  private readonly doubted = new Set<string>()
  /** Deaths declared while the peer's link was up, and of those, the ones its link then confirmed. */
  readonly deaths = { doubted: 0, confirmed: 0 }
  /** Runs while some peer is doubted or parked: see REJOIN_EVERY_MS. */
  private rejoinTimer: NodeJS.Timeout | undefined
  /**
   * alivePeers() until the next turn of the event loop, or the next change
   * of the membership, a doubt or a parked link: forwarding asks for each
   * publish, and a membership's list is a copy of every member. (A reaped
   * member, which no event announces, is seen a turn later.)
   */
  private aliveMemo: readonly string[] | undefined
  private readonly onJoin = (m: Member): void => { this.aliveMemo = undefined; this.alive(m) }
  private readonly onUpdate = (m: Member): void => { this.aliveMemo = undefined; if (m.state === 'alive') this.alive(m) }

  private readonly onLeave = (m: Member): void => {
    this.aliveMemo = undefined
    if (m.state === 'dead' && this.links.get(m.name)?.state === 'up') {
      if (this.doubted.has(m.name)) return
      this.doubted.add(m.name)
      this.deaths.doubted++
      this.rejoinWhileUp()
      this.opts.warn('info', { peer: m.name }, 'peer declared dead by the membership while its link is up: its sessions stay there until the link goes down too')
      return
    }
    this.doubted.delete(m.name)
    this.gone(m.name, m.state === 'left' ? 'left' : 'dead')
  }

  constructor (options: LinkSetOptions) {
    this.opts = options
    this.acceptor = new LinkAcceptor({
      localName: options.name,
      keys: options.keys,
      lookup: (peer) => this.forInbound(peer),
      checkAddress: (peer, host) => this.isAddressOf(peer, host),
      ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
      ...(options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: options.handshakeTimeoutMs }),
      onError: (err) => options.warn('warn', { err: err.message }, 'peer link connection refused')
    })
  }

  start (): void {
    const { membership, faults } = this.opts
    const accept: LinkStreamHandler = faults === undefined
      ? (socket, head) => this.acceptor.handle(socket, head)
      : (socket, head) => {
          // A partitioned or cut peer's dial fails as it would on a real network.
          if (faults.linksBlocked({ host: socket.remoteAddress ?? '', port: 0 })) socket.destroy()
          else this.acceptor.handle(socket, head)
        }
    faults?.onChange(() => this.applyFaults())
    if (membership.setLinkHandler?.(accept) !== true) {
      this.opts.log.warn('the membership transport has no TCP listener of ours: peers cannot dial this node\'s data plane')
    }
    membership.on('join', this.onJoin)
    membership.on('update', this.onUpdate)
    membership.on('leave', this.onLeave)
    this.running = true
    for (const m of membership.members()) if (m.name !== this.opts.name && m.state === 'alive') this.ensure(m)
  }

  stop (): void {
    const { membership } = this.opts
    this.running = false
    membership.off('join', this.onJoin)
    membership.off('update', this.onUpdate)
    membership.off('leave', this.onLeave)
    membership.setLinkHandler?.(undefined)
    clearInterval(this.rejoinTimer)
    this.rejoinTimer = undefined
    this.acceptor.stop()
    for (const name of [...this.links.keys()]) this.drop(name)
  }

  get (peer: string): PeerLink | undefined { return this.links.get(peer) }
  all (): IterableIterator<PeerLink> { return this.links.values() }
  entries (): IterableIterator<[string, PeerLink]> { return this.links.entries() }
  get size (): number { return this.links.size }
  /** Peers we hold a link to, sorted. */
  get peers (): string[] { return [...this.links.keys()].sort() }
  isParked (peer: string): boolean { return this.parked.has(peer) }

  /** A member joined or is alive again; a doubted one (declared dead, refuted, back as either) is no longer doubted. */
  private alive (m: Member): void {
    if (this.doubted.delete(m.name)) this.opts.log.info({ peer: m.name }, 'peer alive again: its declared death was never acted on (its link stayed up)')
    this.ensure(m)
  }

  private gone (name: string, state: 'dead' | 'left'): void {
    if (state === 'dead' && this.links.has(name)) this.park(name)
    else this.drop(name)
    this.opts.handlers.onGone(name, state)
  }

  /** The link of a doubted peer went down: the membership's verdict stands, unless it lists the peer alive again. */
  private linkDown (name: string): void {
    if (!this.doubted.delete(name)) return
    this.aliveMemo = undefined
    const m = this.opts.membership.members().find((x) => x.name === name)
    if (m !== undefined && m.state !== 'dead') return
    this.deaths.confirmed++
    this.opts.log.info({ peer: name }, 'link of a peer declared dead went down: its death is acted on')
    this.gone(name, 'dead')
  }

  /** Whether the membership declared the peer dead while its link stayed up (not acted on). */
  isDoubted (peer: string): boolean { return this.doubted.has(peer) }

  /** Peers whose link is up and which are not declared dead: where replicas go, whom we ask. */
  upPeers (): string[] {
    return [...this.links.values()].filter((l) => l.state === 'up' && !this.parked.has(l.peerName)).map((l) => l.peerName)
  }

  /**
   * Peers the membership lists as alive (not declared dead, or doubted),
   * whether their link is up yet or not: a node that just started knows its
   * members before its links to them are up.
   */
  alivePeers (): readonly string[] {
    if (this.aliveMemo !== undefined) return this.aliveMemo
    const alive = this.opts.membership.members().filter((m) => m.name !== this.opts.name && m.state !== 'left' && (m.state !== 'dead' || this.doubted.has(m.name)) && !this.parked.has(m.name)).map((m) => m.name)
    this.aliveMemo = alive
    setImmediate(this.forgetAlive)
    return alive
  }

  private readonly forgetAlive = (): void => { this.aliveMemo = undefined }

  /**
   * Resolves true once the peer's link is up; false after `timeoutMs`, when
   * it has none, or when a dial made now is refused too (the peer's process
   * is gone: waiting for its death to be declared would only stall the
   * caller; one refusal from before may have been a network fault since healed).
   */
  async whenUp (peer: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    let redialled = false
    for (;;) {
      const link = this.links.get(peer)
      if (link?.state === 'up') return true
      if (link === undefined || link.state === 'stopped' || Date.now() >= deadline) return false
      if (link.refused) {
        if (redialled) return false
        redialled = true
        link.redialNow()
      }
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, 20); t.unref() })
    }
  }

  /** Waits (at most `timeoutMs`) until every up link's peer acknowledged what was queued on it. */
  async flush (timeoutMs: number): Promise<void> {
    const waits = [...this.links.values()].filter((l) => l.state === 'up').map(async (l) => await l.whenAcked(l.lastQueuedSeq))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    await Promise.race([Promise.all(waits), timeout])
    clearTimeout(timer)
  }

  /** A TCP connection to a member's cluster port (the simulation's network when given; hanging when chaos blocks it). */
  private connectTo (m: Member): Socket {
    const bind = this.opts.bind
    const localAddress = bind !== '0.0.0.0' && bind !== '::' && isIP(bind) === isIP(m.addr) ? bind : undefined
    if (this.opts.faults?.linksBlocked({ host: m.addr, port: m.port }) === true) return hangingSocket()
    return this.opts.dial !== undefined ? this.opts.dial(m, localAddress) : netConnect({ host: m.addr, port: m.port, localAddress }) as Socket
  }

  /**
   * Whether anything listens at a member's cluster port now: 'refused' (its
   * process is gone: the host answers, nothing listens), 'open', or
   * 'silent' (no answer within `timeoutMs`: cut off, or the host is down).
   * The probe sends nothing; the peer closes it quietly.
   */
  async probe (peer: string, timeoutMs = 1000): Promise<'refused' | 'open' | 'silent'> {
    const m = this.opts.membership.members().find((x) => x.name === peer)
    if (m === undefined) return 'silent'
    let socket: Socket
    try { socket = this.connectTo(m) } catch { return 'silent' }
    return await new Promise((resolve) => {
      const done = (answer: 'refused' | 'open' | 'silent'): void => {
        clearTimeout(timer)
        socket.destroy()
        resolve(answer)
      }
      const timer = setTimeout(() => done('silent'), timeoutMs)
      timer.unref()
      socket.once('connect', () => done('open'))
      socket.once('error', (err) => done((err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'refused' : 'silent'))
    })
  }

  /**
   * A HELLO as `peer` must come from the address the membership knows it
   * at: with a key, the name of an authenticated member at its own address;
   * without one, nobody else can replace a member's link under its name.
   * (An address given as a host name cannot be compared and is taken as it is.)
   */
  private isAddressOf (peer: string, host: string): boolean {
    const m = this.opts.membership.members().find((x) => x.name === peer)
    if (m === undefined) return true // refused as unknown by lookup
    if (isIP(m.addr) === 0) return true
    return normalizeHost(host) === normalizeHost(m.addr)
  }

  /** The acceptor asks for a peer that dialled us: membership may know it before its join event reached us. */
  private forInbound (peer: string): PeerLink | undefined {
    const existing = this.links.get(peer)
    if (existing !== undefined || !this.running) return existing
    const m = this.opts.membership.members().find((x) => x.name === peer && x.state === 'alive')
    return m === undefined ? undefined : this.ensure(m)
  }

  private ensure (m: Member): PeerLink | undefined {
    if (!this.running || m.name === this.opts.name) return undefined
    const existing = this.links.get(m.name)
    if (existing !== undefined) {
      this.unpark(m.name)
      // Alive again, maybe as a new process: no reason to wait out a backoff to find out.
      existing.redialNow()
      return existing
    }
    this.addresses.set(m.name, { host: m.addr, port: m.port })
    const link: PeerLink = new PeerLink({
      localName: this.opts.name,
      process: this.opts.process,
      peerName: m.name,
      keys: this.opts.keys,
      handshakeTimeoutMs: this.opts.handshakeTimeoutMs ?? 5000,
      connect: () => this.connectTo(m),
      onMessage: (payload, info) => this.opts.handlers.onMessage(link, payload, info),
      ...(this.opts.ackGate === undefined ? {} : { ackGate: this.opts.ackGate }),
      onUp: () => this.linkUp(link),
      onStateChange: (state) => {
        if (state !== 'backoff' && state !== 'waiting') return
        this.opts.handlers.onDown(m.name)
        // Parked and up until now: the countdown to its drop starts from this loss.
        if (this.parked.has(m.name)) this.armPark(m.name)
        this.linkDown(m.name)
      },
      onRestart: (orphans) => {
        this.processes.set(m.name, link.remoteProcess ?? '')
        this.restartSeen.add(m.name)
        this.opts.handlers.onRestart(m.name, orphans)
      },
      onError: (err) => this.opts.log.debug({ peer: m.name, err: err.message }, 'peer link error')
    })
    this.links.set(m.name, link)
    link.start()
    this.opts.log.debug({ peer: m.name, addr: m.addr, port: m.port, dialer: link.dialer }, 'peer link started')
    return link
  }

  private linkUp (link: PeerLink): void {
    const peer = link.peerName
    const proc = link.remoteProcess
    const before = this.processes.get(peer)
    // Its own link saw the new process already (PeerLink onRestart, just before this).
    let restarted = this.restartSeen.delete(peer)
    if (proc !== undefined && !restarted) {
      this.processes.set(peer, proc)
      // A new link object (the old one was dropped) to a new process: a restart
      // its own link could not see (PeerLink.onRestart covers the same link).
      restarted = before !== undefined && before !== proc
      if (restarted) this.opts.handlers.onRestart(peer, [])
      else if (before === proc) this.opts.handlers.onBack(peer)
    }
    // Listed dead (or reaped) and back as the same process: the membership merges with it now.
    if (!restarted && this.parked.has(peer)) this.rejoin(peer)
    this.opts.log.debug({ peer, restarted, parked: this.parked.has(peer) }, 'peer link up')
    this.opts.handlers.onUp(link, restarted)
  }

  /** Chaos only: cuts the live connections of links whose peer is now blocked (they redial, and hang, until healed). */
  private applyFaults (): void {
    const faults = this.opts.faults
    if (faults === undefined) return
    for (const m of this.opts.membership.members()) {
      const link = this.links.get(m.name)
      if (link !== undefined && faults.linksBlocked({ host: m.addr, port: m.port })) link.dropConnection()
    }
  }

  private park (name: string): void {
    if (this.parked.has(name)) return
    this.armPark(name)
    this.parkedAs.set(name, this.processes.get(name))
    this.rejoinWhileUp()
    // Senders waiting for room on its link would wait until it is dropped.
    this.links.get(name)?.wakeWriters()
    this.opts.log.debug({ peer: name, keepMs: this.parkKeepMs }, 'peer declared dead: link and routes kept for its return')
  }

  /**
   * (Re)starts a parked link's countdown: dropped after gossip_to_the_dead_time
   * without its link up. A link that comes back up while its peer is still
   * listed dead (until the membership merges with it: REJOIN_EVERY_MS)
   * carries traffic again; it starts the countdown afresh when it goes
   * down, and is never dropped while up: dropping it discarded what it
   * still had to deliver, which no takeover rescues then (the peer's death
   * was declared before). Paho
   * subscriber on the smaller side of a second partition, 15 s: 314 of 515
   * acknowledged messages lost.
   */
  private armPark (name: string): void {
    clearTimeout(this.parked.get(name))
    const timer = setTimeout(() => {
      if (this.links.get(name)?.state === 'up') {
        this.opts.log.debug({ peer: name }, 'parked link up: kept while its peer is still listed dead')
        this.armPark(name)
        return
      }
      this.drop(name)
    }, this.parkKeepMs)
    timer.unref()
    this.parked.set(name, timer)
    this.aliveMemo = undefined
  }

  /** How long a parked link is kept without being up (gossip_to_the_dead_time, at least 1 s). */
  private get parkKeepMs (): number { return Math.max(1000, this.opts.parkMs) }

  /**
   * Every REJOIN_EVERY_MS while a peer is doubted or parked: the membership
   * tries to merge with each of those whose link is up (a no-op for one it
   * lists alive again; a failed try, the membership traffic still cut, is
   * only logged at debug). Stops when none is left.
   */
  private rejoinWhileUp (): void {
    if (this.rejoinTimer !== undefined || !this.running) return
    this.rejoinTimer = setInterval(() => {
      if (this.doubted.size === 0 && this.parked.size === 0) {
        clearInterval(this.rejoinTimer)
        this.rejoinTimer = undefined
        return
      }
      for (const name of new Set([...this.doubted, ...this.parked.keys()])) {
        if (this.links.get(name)?.state === 'up') this.rejoin(name)
      }
    }, REJOIN_EVERY_MS)
    this.rejoinTimer.unref()
  }

  /** The membership joins the peer at the address its link was made to. */
  private rejoin (name: string): void {
    const address = this.addresses.get(name)
    if (address !== undefined) this.opts.membership.rejoin?.(name, address)
  }

  private unpark (name: string): void {
    const timer = this.parked.get(name)
    if (timer === undefined) return
    clearTimeout(timer)
    this.parked.delete(name)
    this.aliveMemo = undefined
    const was = this.parkedAs.get(name)
    this.parkedAs.delete(name)
    const link = this.links.get(name)
    // The link may be deep in its redial backoff after a long absence.
    link?.redialNow()
    this.opts.log.debug({ peer: name }, 'peer back: parked link in use again')
    this.opts.handlers.onReachable?.(name)
    // Back while its link never dropped (a pause): the same process.
    // (A restart was reported when its link came up: a different process than the one parked.)
    if (link?.state === 'up' && link.remoteProcess !== undefined && link.remoteProcess === was) this.opts.handlers.onBack(name)
  }

  /** Stops and forgets a peer's link. */
  drop (name: string): void {
    const timer = this.parked.get(name)
    if (timer !== undefined) clearTimeout(timer)
    this.parked.delete(name)
    this.parkedAs.delete(name)
    this.doubted.delete(name)
    this.aliveMemo = undefined
    const link = this.links.get(name)
    if (link === undefined) return
    this.links.delete(name)
    this.addresses.delete(name)
    const unsettled = link.unheld()
    link.stop()
    this.opts.log.debug({ peer: name }, 'peer link stopped')
    if (this.running) this.opts.handlers.onDropped(name, unsettled)
  }
}

/**
 * A socket that never connects: what a dial into a partition looks like (the
 * SYN goes unanswered); the link's handshake timeout gives up on it.
 */
function hangingSocket (): Socket {
  return new NetSocket()
}
