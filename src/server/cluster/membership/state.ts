// The SWIM state machine (memberlist state.go + net.go): the probe loop
// (direct ping, indirect pings, then suspicion), gossip rounds, join and
// leave, the timers, and the handling of every packet. What it believes
// about each member, and how alive, suspect and dead news change that, is
// the member table (member-table.ts); the full-state exchange it runs on
// join, periodically and with unknown members is push-pull.ts.
// It touches the world only through its inputs: a Transport, a Clock and a
// Random source, so tests run it over an in-memory network with a fake clock.
import { EventEmitter } from 'node:events'
import { BrokerHaError } from '../../../errors.js'
import type { Member, MemberMeta, MembershipEvents } from './membership.js'
import type { ClusterProfile } from './config-profile.js'
import { shuffle, type Clock, type Random, type TimerHandle } from './clock.js'
import { Awareness } from './awareness.js'
import { BroadcastQueue } from './broadcast-queue.js'
import { MemberTable, type MemberTableObserver } from './member-table.js'
import type { Keyring } from '../keyring.js'
import { CodecError, PACKET_OVERHEAD, decodePacket, encodePacket, encodedSize, type Message } from './codec.js'
import type { Address, Transport } from './transport.js'
import { PushPull, pushPullScale, type PushPullObserver, type UserStateDelegate } from './push-pull.js'

/** Bytes the sealing adds to a packet: mode, nonce and tag (see keyring.ts). */
const SEAL_OVERHEAD = 1 + 12 + 16

/** `tcp-ack`: only the TCP fallback ping was answered (UDP between us is likely blocked). */
export type ProbeResult = 'ack' | 'indirect-ack' | 'tcp-ack' | 'failed'

/** Counters and diagnostics the adapter turns into metrics and logs. */
export interface StateObserver extends MemberTableObserver, PushPullObserver {
  probe?: (target: string, result: ProbeResult) => void
}

export interface SwimStateOptions {
  name: string
  /** Address and port other members reach us at. */
  advertise: Address
  meta: MemberMeta
  profile: ClusterProfile
  transport: Transport
  keyring: Keyring
  clock: Clock
  random: Random
  observer?: StateObserver
  /** Starting incarnation; memberlist starts at 0 too and relies on refutation after a restart. */
  incarnation?: number
}

interface AckWaiter {
  acked: boolean
  nacks: number
  wake: (() => void) | undefined
  onAck: (() => void) | undefined
}

interface JoinResult { joined: number, errors: Array<{ address: Address, error: Error }> }

export class SwimState extends EventEmitter<MembershipEvents> {
  readonly name: string
  private readonly profile: ClusterProfile
  private readonly transport: Transport
  private readonly keyring: Keyring
  private readonly clock: Clock
  private readonly random: Random
  private readonly observer: StateObserver
  readonly awareness: Awareness
  readonly broadcasts: BroadcastQueue

  private readonly table: MemberTable
  private readonly pushPull: PushPull
  private seq = 0
  private readonly ackWaiters = new Map<number, AckWaiter>()
  private readonly timers = new Set<TimerHandle>()
  private probeTimer: TimerHandle | undefined
  private gossipTimer: TimerHandle | undefined
  private pushPullTimer: TimerHandle | undefined
  private probing = false
  /** Names we are repairing a missed join with (see syncWithUnknown). */
  private readonly syncing = new Set<string>()
  private running = false

  constructor (opts: SwimStateOptions) {
    super()
    this.name = opts.name
    this.profile = opts.profile
    this.transport = opts.transport
    this.keyring = opts.keyring
    this.clock = opts.clock
    this.random = opts.random
    this.observer = opts.observer ?? {}
    this.awareness = new Awareness(opts.profile.awarenessMaxMultiplier)
    this.broadcasts = new BroadcastQueue(opts.profile.retransmitMult, () => this.table.size)
    this.table = new MemberTable({
      name: opts.name,
      advertise: opts.advertise,
      meta: opts.meta,
      incarnation: opts.incarnation ?? 0,
      profile: opts.profile,
      clock: opts.clock,
      random: opts.random,
      broadcasts: this.broadcasts,
      awareness: this.awareness,
      observer: this.observer,
      emit: (event, member) => this.emit(event, member),
      running: () => this.running
    })
    this.pushPull = new PushPull({
      name: opts.name,
      table: this.table,
      transport: opts.transport,
      keyring: opts.keyring,
      now: () => opts.clock.now(),
      timeoutMs: opts.profile.tcpTimeout,
      observer: this.observer,
      running: () => this.running,
      answerPing: (from, node, gossip) => this.answerTcpPing(from, node, gossip)
    })
  }

  setDelegate (delegate: UserStateDelegate | undefined): void { this.pushPull.delegate = delegate }

  /** A copy of ourselves as others see us. */
  get local (): Member { return { ...this.table.self, meta: { ...this.table.self.meta } } }

  list (): Member[] { return this.table.list() }

  member (name: string): Member | undefined {
    const m = this.table.get(name)
    return m === undefined ? undefined : { ...m, meta: { ...m.meta } }
  }

  /** Members that are alive or suspect, ourselves included (memberlist's NumMembers). */
  numLive (): number { return this.table.numLive() }

  async start (): Promise<void> {
    await this.transport.start({
      packet: (from, data) => this.handlePacket(from, data),
      exchange: (from, request) => this.pushPull.answer(from, request)
    })
    this.running = true
    // Stagger the first ticks so nodes started together do not probe in lockstep.
    this.probeTimer = this.clock.setTimeout(() => this.probeTick(), this.random() * this.profile.probeInterval)
    this.gossipTimer = this.clock.setTimeout(() => this.gossipTick(), this.random() * this.profile.gossipInterval)
    if (this.profile.pushPullInterval > 0) {
      this.pushPullTimer = this.clock.setTimeout(() => this.pushPullTick(), this.profile.pushPullInterval * (0.5 + this.random()))
    }
  }

  /** Stops timers and the transport; call leave() first for a graceful exit. */
  async stop (): Promise<void> {
    this.running = false
    for (const t of [this.probeTimer, this.gossipTimer, this.pushPullTimer, ...this.timers]) this.clock.clearTimeout(t)
    this.timers.clear()
    this.table.stop()
    for (const w of this.ackWaiters.values()) w.wake?.()
    this.ackWaiters.clear()
    this.broadcasts.reset()
    await this.transport.stop()
  }

  // ---- join and leave ---------------------------------------------------------

  /**
   * Full state exchange with each address (memberlist Join). Resolves with how
   * many answered; a member name conflict is thrown, as it needs the operator.
   */
  async join (addresses: Address[]): Promise<JoinResult> {
    const result: JoinResult = { joined: 0, errors: [] }
    // Announce ourselves by gossip as well (memberlist setAlive): the member we
    // exchange with spreads our alive, and so do we, to those we just learned of.
    this.broadcasts.queue(this.name, this.table.aliveMessage())
    for (const address of addresses) {
      try {
        await this.pushPull.exchange(address, true)
        result.joined++
      } catch (err) {
        if (err instanceof BrokerHaError && err.code === 'CLUSTER_NAME_CONFLICT') throw err
        result.errors.push({ address, error: err as Error })
      }
    }
    return result
  }

  /**
   * Graceful leave (memberlist Leave): tell everyone we left, so they mark us
   * "left" rather than "dead", and wait until the news had its retransmits or
   * `timeoutMs` passed.
   */
  async leave (timeoutMs: number): Promise<void> {
    if (this.table.leaving || !this.running) return
    const message = this.table.leave()
    const others = this.table.others((m) => m.state === 'alive' || m.state === 'suspect')
    if (others.length === 0) return
    const done = new Promise<void>((resolve) => this.broadcasts.queue(this.name, message, resolve))
    // Small clusters: say it to everyone at once instead of waiting for gossip rounds.
    for (const m of others) this.sendMessages(m, [message])
    let timer: TimerHandle | undefined
    await Promise.race([done, new Promise<void>((resolve) => { timer = this.clock.setTimeout(resolve, timeoutMs) })])
    this.clock.clearTimeout(timer)
  }

  // ---- timers ----------------------------------------------------------------

  private probeTick (): void {
    if (!this.running) return
    // Lifeguard: a struggling node probes less often.
    this.probeTimer = this.clock.setTimeout(() => this.probeTick(), this.awareness.scaleTimeout(this.profile.probeInterval))
    if (this.probing || this.table.leaving) return
    this.probing = true
    this.probe().catch(() => {}).finally(() => { this.probing = false })
  }

  private gossipTick (): void {
    if (!this.running) return
    this.gossipTimer = this.clock.setTimeout(() => this.gossipTick(), this.profile.gossipInterval)
    this.gossip()
  }

  private pushPullTick (): void {
    if (!this.running) return
    this.pushPullTimer = this.clock.setTimeout(() => this.pushPullTick(), pushPullScale(this.profile.pushPullInterval, this.numLive()))
    if (this.table.leaving) return
    const candidates = this.table.others((m) => m.state === 'alive')
    const peer = candidates[Math.floor(this.random() * candidates.length)]
    if (peer === undefined) return
    this.pushPull.exchange({ host: peer.addr, port: peer.port }, false).catch(() => {})
  }

  private sleep (ms: number, wakeable?: AckWaiter): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => { this.timers.delete(timer); resolve() }, ms)
      this.timers.add(timer)
      if (wakeable !== undefined) {
        wakeable.wake = () => { this.clock.clearTimeout(timer); this.timers.delete(timer); resolve() }
      }
    })
  }

  // ---- failure detection -----------------------------------------------------

  private async probe (): Promise<void> {
    const target = this.table.nextProbeTarget()
    if (target === undefined) {
      // Nobody left to probe (the last survivor of a cluster): the score only
      // measures how well we reach others, and there is no one to fail with.
      // memberlist keeps the score frozen here, which would leave the last
      // node standing not-ready forever and take it out of the Service.
      this.awareness.applyDelta(-1)
      return
    }
    const seq = this.nextSeq()
    const waiter: AckWaiter = { acked: false, nacks: 0, wake: undefined, onAck: undefined }
    this.ackWaiters.set(seq, waiter)
    const started = this.clock.now()
    const probeInterval = this.awareness.scaleTimeout(this.profile.probeInterval)
    try {
      this.sendMessages(target, [{ type: 'ping', seq, node: target.name, source: this.sourceAddress() }])
      await this.sleep(this.awareness.scaleTimeout(this.profile.probeTimeout), waiter)
      if (!this.running) return
      if (waiter.acked) {
        this.awareness.applyDelta(-1)
        this.observer.probe?.(target.name, 'ack')
        return
      }
      // Our own timer fired far too late: this process was stalled (paused,
      // starved of CPU) and the ack may sit unread in the socket. That says
      // something about us, not the target: count it against our health and
      // do not accuse anyone on this probe.
      if (this.clock.now() - started > 2 * probeInterval) {
        this.awareness.applyDelta(1)
        this.observer.probe?.(target.name, 'failed')
        return
      }
      // No direct ack: ask others to try (the problem may be our link, not the
      // target), and ping it ourselves over TCP (memberlist's fallback probe):
      // a network that drops UDP on the cluster port and passes TCP (a
      // NetworkPolicy or security group opening only TCP) would otherwise
      // see every member die and come back, over and over.
      const relays = shuffle(this.table.others((m) => m.state === 'alive' && m.name !== target.name), this.random).slice(0, this.profile.indirectChecks)
      for (const relay of relays) {
        this.sendMessages(relay, [{ type: 'indirect-ping', seq, target: target.name, addr: target.addr, port: target.port, nack: true, source: this.sourceAddress() }])
      }
      const remaining = probeInterval - (this.clock.now() - started)
      // The TCP ping gets the rest of the probe's window, and no less than the
      // UDP ping had (memberlist's 1 s interval leaves it 500 ms; our 500 ms
      // leaves 100): a loaded node should not lose a member to a slow
      // handshake. A member silent both ways (partitioned, paused) costs a
      // failed probe up to that much longer; a crashed one refuses at once.
      const tcpTimeout = Math.max(remaining, this.awareness.scaleTimeout(this.profile.probeTimeout))
      // With our pending gossip, and our suspicion of the target if we hold
      // one: gossip of it may be spent on members UDP reaches before this
      // ping, and a member UDP does not reach can refute only what it hears.
      const targetAddress = { host: target.addr, port: target.port }
      const held = this.table.get(target.name)
      const suspicion: Message[] = held?.state === 'suspect' ? [{ type: 'suspect', incarnation: held.incarnation, node: held.name, from: this.name }] : []
      const overTcp = this.pushPull.ping(targetAddress, seq, target.name, [...suspicion, ...this.broadcasts.getBroadcasts(1, this.packetBudget())], tcpTimeout)
      // The indirect acks get the whole window before the TCP answer counts,
      // so 'tcp-ack' (and its warning) means UDP reached the target by no path.
      if (!waiter.acked && remaining > 0) await this.sleep(remaining, waiter)
      if (!this.running) return
      if (waiter.acked) {
        this.observer.probe?.(target.name, 'indirect-ack')
        return
      }
      const gossip = await overTcp
      if (!this.running) return
      for (const m of gossip ?? []) this.handleMessage(targetAddress, m)
      // A UDP ack may have come while the TCP answer was awaited (this
      // process stalled, both answers queued): UDP works then.
      if (waiter.acked) {
        this.observer.probe?.(target.name, 'indirect-ack')
        return
      }
      if (gossip !== undefined) {
        this.observer.probe?.(target.name, 'tcp-ack')
        return
      }
      // Lifeguard: if relays could not reach the target either (they sent nacks),
      // the fault is likely not ours; missing nacks point at our own link.
      this.awareness.applyDelta(relays.length > 0 ? relays.length - Math.min(waiter.nacks, relays.length) : 1)
      this.observer.probe?.(target.name, 'failed')
      const current = this.table.get(target.name)
      if (current !== undefined) this.table.suspect({ type: 'suspect', incarnation: current.incarnation, node: current.name, from: this.name })
    } finally {
      this.ackWaiters.delete(seq)
    }
  }

  private gossip (): void {
    if (this.broadcasts.length === 0) return
    const now = this.clock.now()
    const targets = shuffle(this.table.others((m) =>
      m.state === 'alive' || m.state === 'suspect' || now - m.since < this.profile.gossipToTheDeadTime
    ), this.random).slice(0, this.profile.gossipNodes)
    if (targets.length === 0) return
    // One packet per round, to every target: a transmission counts once per
    // round, not per target, so in a small cluster an update is not used up
    // on members that already had it (memberlist counts per target and leans
    // on push/pull to repair; we want joins seen within a few rounds).
    const messages = this.broadcasts.getBroadcasts(1, this.packetBudget())
    if (messages.length === 0) return
    for (const m of targets) this.send({ host: m.addr, port: m.port }, messages)
  }

  // ---- incoming --------------------------------------------------------------

  private handlePacket (from: Address, data: Buffer): void {
    if (!this.running) return
    let messages: Message[]
    try {
      messages = decodePacket(this.keyring.open(data))
    } catch (err) {
      const e = err instanceof CodecError ? err : new CodecError('decode', String(err))
      this.observer.badPacket?.(e.reason, from, e.message)
      return
    }
    for (const m of messages) this.handleMessage(from, m)
  }

  private handleMessage (from: Address, m: Message): void {
    switch (m.type) {
      case 'ping':
        // A ping for another name reached a reused address (a restarted node): no ack.
        if (m.node !== this.name || this.table.leaving) return
        this.sendMessages({ addr: from.host, port: from.port }, [{ type: 'ack', seq: m.seq }])
        this.syncWithUnknown(m.source)
        return
      case 'indirect-ping':
        this.relayPing(from, m)
        return
      case 'ack': {
        const w = this.ackWaiters.get(m.seq)
        if (w === undefined || w.acked) return
        w.acked = true
        w.onAck?.()
        w.wake?.()
        return
      }
      case 'nack': {
        const w = this.ackWaiters.get(m.seq)
        if (w !== undefined) w.nacks++
        return
      }
      case 'alive':
        this.table.alive(m)
        return
      case 'suspect':
        this.table.suspect(m)
        return
      case 'dead':
        this.table.dead(m)
    }
  }

  /**
   * A probe from a member we do not know means gossip about it missed us:
   * repair with a push/pull right away instead of waiting for the periodic
   * one. Every member probes every other within a probe cycle, so this bounds
   * how long a join can stay unseen.
   */
  private syncWithUnknown (source: { name: string, addr: string, port: number }): void {
    const known = this.table.get(source.name)
    if (known !== undefined && (known.state === 'alive' || known.state === 'suspect')) return
    if (this.syncing.has(source.name) || this.table.leaving) return
    this.syncing.add(source.name)
    this.pushPull.exchange({ host: source.addr, port: source.port }, false)
      .catch(() => {})
      .finally(() => {
        // Hold the name a little, so a member that stays unreachable over TCP is not hammered.
        const t = this.clock.setTimeout(() => { this.timers.delete(t); this.syncing.delete(source.name) }, this.profile.probeInterval)
        this.timers.add(t)
      })
  }

  /**
   * A TCP fallback ping: acked when it names us, with our pending gossip in
   * exchange for the pinger's. Where UDP is blocked between two members this
   * is the only way their news (a suspicion of us, our refutation) travels
   * between push/pulls.
   */
  private answerTcpPing (from: Address, node: string, gossip: Message[]): Message[] | undefined {
    if (!this.running || node !== this.name || this.table.leaving) return undefined
    for (const m of gossip) this.handleMessage(from, m)
    return this.broadcasts.getBroadcasts(1, this.packetBudget())
  }

  /**
   * Probes `target` on behalf of `from`; forwards its ack, or a nack after
   * probe_timeout. Only for a live member at the address we know it by: one
   * spoofed packet must not make us send pings to an address of its choice.
   */
  private relayPing (from: Address, m: Extract<Message, { type: 'indirect-ping' }>): void {
    if (this.table.leaving) return
    const target = this.table.get(m.target)
    if (target === undefined || target.name === this.name || (target.state !== 'alive' && target.state !== 'suspect') ||
      target.addr !== m.addr || target.port !== m.port) {
      this.observer.badPacket?.('target', from, `indirect ping for ${m.target} at ${m.addr}:${m.port}, not a live member there`)
      return
    }
    const seq = this.nextSeq()
    const waiter: AckWaiter = { acked: false, nacks: 0, wake: undefined, onAck: undefined }
    waiter.onAck = () => this.sendMessages({ addr: from.host, port: from.port }, [{ type: 'ack', seq: m.seq }])
    this.ackWaiters.set(seq, waiter)
    this.sendMessages({ addr: m.addr, port: m.port }, [{ type: 'ping', seq, node: m.target, source: this.sourceAddress() }])
    this.sleep(this.profile.probeTimeout).then(() => {
      this.ackWaiters.delete(seq)
      if (!waiter.acked && m.nack && this.running) this.sendMessages({ addr: from.host, port: from.port }, [{ type: 'nack', seq: m.seq }])
    }, () => {})
  }

  // ---- outgoing --------------------------------------------------------------

  private sourceAddress (): { name: string, addr: string, port: number } {
    return { name: this.name, addr: this.table.self.addr, port: this.table.self.port }
  }

  private packetBudget (): number {
    return this.profile.udpBufferSize - PACKET_OVERHEAD - (this.keyring.encrypted ? SEAL_OVERHEAD : 1)
  }

  /** Sends messages with as many pending broadcasts piggybacked as fit in one packet. */
  private sendMessages (to: { addr: string, port: number }, messages: Message[]): void {
    let used = 0
    for (const m of messages) used += encodedSize(m)
    const piggyback = this.broadcasts.getBroadcasts(1, this.packetBudget() - used)
    this.send({ host: to.addr, port: to.port }, [...messages, ...piggyback])
  }

  private send (to: Address, messages: Message[]): void {
    if (!this.running) return
    this.transport.sendPacket(to, this.keyring.seal(encodePacket(messages)))
  }

  private nextSeq (): number {
    this.seq = (this.seq + 1) % Number.MAX_SAFE_INTEGER
    return this.seq
  }
}

