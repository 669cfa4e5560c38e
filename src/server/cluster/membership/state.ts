// The SWIM state machine (memberlist state.go + net.go): the member table,
// the probe loop (direct ping, indirect pings, suspicion), gossip rounds,
// periodic push/pull, join and leave, and the handling of every message.
// It touches the world only through its inputs: a Transport, a Clock and a
// Random source, so tests run it over an in-memory network with a fake clock.
import { EventEmitter } from 'node:events'
import { BrokerHaError } from '../../../errors.js'
import type { Member, MemberMeta, MembershipEvents, MemberState } from './membership.js'
import type { ClusterProfile } from './config-profile.js'
import { shuffle, type Clock, type Random, type TimerHandle } from './clock.js'
import { Awareness } from './awareness.js'
import { BroadcastQueue } from './broadcast-queue.js'
import { Suspicion, suspicionTimeouts } from './suspicion.js'
import type { Keyring } from '../keyring.js'
import {
  CodecError, OUR_VERSIONS, PACKET_OVERHEAD, decodePacket, decodeStream, encodePacket, encodeStream, encodedSize,
  type BadPacketReason, type Message, type NodeState, type StreamMessage, type Versions
} from './codec.js'
import { addressKey, type Address, type Transport } from './transport.js'
import type { UserStateDelegate } from './push-pull.js'

/** Bytes the sealing adds to a packet: mode, nonce and tag (see keyring.ts). */
const SEAL_OVERHEAD = 1 + 12 + 16

export type ProbeResult = 'ack' | 'indirect-ack' | 'failed'

/** Counters and diagnostics the adapter turns into metrics and logs. */
export interface StateObserver {
  probe?: (target: string, result: ProbeResult) => void
  suspect?: (member: Member, from: string) => void
  refute?: (incarnation: number, accusedBy: string) => void
  badPacket?: (reason: BadPacketReason, from: Address, detail: string) => void
  nameConflict?: (name: string, existing: Address, claimed: Address) => void
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
  private readonly self: Member
  private readonly profile: ClusterProfile
  private readonly transport: Transport
  private readonly keyring: Keyring
  private readonly clock: Clock
  private readonly random: Random
  private readonly observer: StateObserver
  readonly awareness: Awareness
  readonly broadcasts: BroadcastQueue
  private delegate: UserStateDelegate | undefined

  private readonly members = new Map<string, Member>()
  private readonly suspicions = new Map<string, Suspicion>()
  private probeList: string[] = []
  private probeIndex = 0
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
  private leaving = false

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
    this.broadcasts = new BroadcastQueue(opts.profile.retransmitMult, () => this.members.size)
    this.self = {
      name: opts.name,
      addr: opts.advertise.host,
      port: opts.advertise.port,
      meta: { ...opts.meta },
      state: 'alive',
      incarnation: opts.incarnation ?? 0,
      since: opts.clock.now(),
      vsn: OUR_VERSIONS
    }
    this.members.set(this.name, this.self)
    this.probeList.push(this.name)
  }

  setDelegate (delegate: UserStateDelegate | undefined): void { this.delegate = delegate }

  /** A copy of ourselves as others see us. */
  get local (): Member { return { ...this.self, meta: { ...this.self.meta } } }

  list (): Member[] {
    return [...this.members.values()].map((m) => ({ ...m, meta: { ...m.meta } }))
  }

  member (name: string): Member | undefined {
    const m = this.members.get(name)
    return m === undefined ? undefined : { ...m, meta: { ...m.meta } }
  }

  /** Members that are alive or suspect, ourselves included (memberlist's NumMembers). */
  numLive (): number {
    let n = 0
    for (const m of this.members.values()) if (m.state === 'alive' || m.state === 'suspect') n++
    return n
  }

  async start (): Promise<void> {
    await this.transport.start({
      packet: (from, data) => this.handlePacket(from, data),
      exchange: (from, request) => this.handleExchange(from, request)
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
    for (const s of this.suspicions.values()) s.cancel()
    this.suspicions.clear()
    for (const w of this.ackWaiters.values()) w.wake?.()
    this.ackWaiters.clear()
    this.broadcasts.reset()
    await this.transport.stop()
  }

  // ---- join, leave, push/pull ------------------------------------------------

  /**
   * Full state exchange with each address (memberlist Join). Resolves with how
   * many answered; a member name conflict is thrown, as it needs the operator.
   */
  async join (addresses: Address[]): Promise<JoinResult> {
    const result: JoinResult = { joined: 0, errors: [] }
    // Announce ourselves by gossip as well (memberlist setAlive): the member we
    // exchange with spreads our alive, and so do we, to those we just learned of.
    this.broadcasts.queue(this.name, this.aliveMessage())
    for (const address of addresses) {
      try {
        await this.pushPull(address, true)
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
    if (this.leaving || !this.running) return
    this.leaving = true
    const message: Message = { type: 'dead', incarnation: this.self.incarnation, node: this.name, from: this.name }
    this.self.state = 'left'
    this.self.since = this.clock.now()
    const others = [...this.members.values()].filter((m) => m !== this.self && (m.state === 'alive' || m.state === 'suspect'))
    if (others.length === 0) return
    const done = new Promise<void>((resolve) => this.broadcasts.queue(this.name, message, resolve))
    // Small clusters: say it to everyone at once instead of waiting for gossip rounds.
    for (const m of others) this.sendMessages(m, [message])
    let timer: TimerHandle | undefined
    await Promise.race([done, new Promise<void>((resolve) => { timer = this.clock.setTimeout(resolve, timeoutMs) })])
    this.clock.clearTimeout(timer)
  }

  private async pushPull (address: Address, join: boolean): Promise<void> {
    const request = this.keyring.seal(encodeStream(this.localStateMessage(join)))
    const raw = await this.transport.exchange(address, request, this.profile.tcpTimeout)
    let response: StreamMessage
    try {
      response = decodeStream(this.keyring.open(raw))
    } catch (err) {
      if (err instanceof CodecError) this.observer.badPacket?.(err.reason, address, err.message)
      throw err
    }
    if (response.type === 'error') {
      if (response.code === 'CLUSTER_NAME_CONFLICT') throw new BrokerHaError('CLUSTER_NAME_CONFLICT', response.message, { key: 'cluster.name' })
      throw new Error(`${addressKey(address)} refused the exchange: ${response.message}`)
    }
    const conflict = join ? this.findConflict(response.nodes) : undefined
    if (conflict !== undefined) throw new BrokerHaError('CLUSTER_NAME_CONFLICT', conflict.message, { key: 'cluster.name' })
    this.mergeState(response.nodes, response.userState, join)
  }

  private localStateMessage (join: boolean): StreamMessage {
    const nodes: NodeState[] = [...this.members.values()].map((m) => ({
      name: m.name, addr: m.addr, port: m.port, meta: m.meta, incarnation: m.incarnation, state: m.state, vsn: (m.vsn ?? OUR_VERSIONS) as Versions
    }))
    const user = this.delegate?.localState(join)
    return { type: 'push-pull', join, nodes, userState: user === undefined ? '' : user.toString('base64') }
  }

  /**
   * A name we know as a live member at one address claimed live at another
   * means two processes share a name (cluster.name must be unique).
   */
  private findConflict (nodes: NodeState[]): { message: string, name: string, existing: Address, claimed: Address } | undefined {
    for (const n of nodes) {
      if (n.state !== 'alive') continue
      const known = this.members.get(n.name)
      if (known === undefined || (known.state !== 'alive' && known.state !== 'suspect')) continue
      if (known.addr !== n.addr || known.port !== n.port) {
        return {
          message: `cluster member name "${n.name}" is used by both ${known.addr}:${known.port} and ${n.addr}:${n.port}; cluster.name must be unique`,
          name: n.name,
          existing: { host: known.addr, port: known.port },
          claimed: { host: n.addr, port: n.port }
        }
      }
    }
    return undefined
  }

  private async handleExchange (from: Address, request: Buffer): Promise<Buffer | undefined> {
    if (!this.running) return undefined
    let message: StreamMessage
    try {
      message = decodeStream(this.keyring.open(request))
    } catch (err) {
      const e = err instanceof CodecError ? err : new CodecError('decode', String(err))
      this.observer.badPacket?.(e.reason, from, e.message)
      return undefined
    }
    if (message.type !== 'push-pull') return undefined
    if (message.join) {
      // The newcomer is told why, so it can fail with a clear error; we keep our view.
      const conflict = this.findConflict(message.nodes)
      if (conflict !== undefined) {
        this.observer.nameConflict?.(conflict.name, conflict.existing, conflict.claimed)
        return this.keyring.seal(encodeStream({ type: 'error', code: 'CLUSTER_NAME_CONFLICT', message: conflict.message }))
      }
    }
    // Answer with our state as it was before merging theirs, as memberlist does.
    const response = this.keyring.seal(encodeStream(this.localStateMessage(message.join)))
    this.mergeState(message.nodes, message.userState, message.join)
    return response
  }

  /**
   * memberlist mergeState: alive entries are taken as alive messages, left as
   * a leave; dead ones only as suspicion, so a stale view never kills a
   * member outright (it gets the chance to refute).
   */
  private mergeState (nodes: NodeState[], userState: string, join: boolean): void {
    for (const n of nodes) {
      switch (n.state) {
        case 'alive':
          this.handleAlive({ type: 'alive', incarnation: n.incarnation, node: n.name, addr: n.addr, port: n.port, meta: n.meta, vsn: n.vsn })
          break
        case 'left':
          this.handleDead({ type: 'dead', incarnation: n.incarnation, node: n.name, from: n.name })
          break
        case 'dead':
        case 'suspect':
          this.handleSuspect({ type: 'suspect', incarnation: n.incarnation, node: n.name, from: this.name })
          break
      }
    }
    if (userState !== '' && this.delegate !== undefined) {
      try {
        this.delegate.mergeRemoteState(Buffer.from(userState, 'base64'), join)
      } catch {
        // The delegate's data is its own business; it must not break membership.
      }
    }
  }

  // ---- timers ----------------------------------------------------------------

  private probeTick (): void {
    if (!this.running) return
    // Lifeguard: a struggling node probes less often.
    this.probeTimer = this.clock.setTimeout(() => this.probeTick(), this.awareness.scaleTimeout(this.profile.probeInterval))
    if (this.probing || this.leaving) return
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
    if (this.leaving) return
    const candidates = this.otherMembers((m) => m.state === 'alive')
    const peer = candidates[Math.floor(this.random() * candidates.length)]
    if (peer === undefined) return
    this.pushPull({ host: peer.addr, port: peer.port }, false).catch(() => {})
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

  /** Round-robin over a shuffled list; at each wrap, reap and reshuffle (memberlist resetNodes). */
  private nextProbeTarget (): Member | undefined {
    for (let checked = 0; checked <= this.probeList.length; checked++) {
      if (this.probeIndex >= this.probeList.length) {
        this.resetProbeList()
        this.probeIndex = 0
      }
      const name = this.probeList[this.probeIndex++]
      if (name === undefined) return undefined
      const m = this.members.get(name)
      if (m === undefined || m === this.self) continue
      if (m.state === 'alive' || m.state === 'suspect') return m
    }
    return undefined
  }

  private resetProbeList (): void {
    const now = this.clock.now()
    for (const [name, m] of this.members) {
      if ((m.state === 'dead' || m.state === 'left') && now - m.since > this.profile.gossipToTheDeadTime) this.members.delete(name)
    }
    this.probeList = shuffle([...this.members.keys()], this.random)
  }

  private async probe (): Promise<void> {
    const target = this.nextProbeTarget()
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
      // No direct ack: ask others to try (the problem may be our link, not the target).
      const relays = shuffle(this.otherMembers((m) => m.state === 'alive' && m.name !== target.name), this.random).slice(0, this.profile.indirectChecks)
      for (const relay of relays) {
        this.sendMessages(relay, [{ type: 'indirect-ping', seq, target: target.name, addr: target.addr, port: target.port, nack: true, source: this.sourceAddress() }])
      }
      const remaining = probeInterval - (this.clock.now() - started)
      if (!waiter.acked && remaining > 0) await this.sleep(remaining, waiter)
      if (!this.running) return
      if (waiter.acked) {
        this.observer.probe?.(target.name, 'indirect-ack')
        return
      }
      // Lifeguard: if relays could not reach the target either (they sent nacks),
      // the fault is likely not ours; missing nacks point at our own link.
      this.awareness.applyDelta(relays.length > 0 ? relays.length - Math.min(waiter.nacks, relays.length) : 1)
      this.observer.probe?.(target.name, 'failed')
      const current = this.members.get(target.name)
      if (current !== undefined) this.handleSuspect({ type: 'suspect', incarnation: current.incarnation, node: current.name, from: this.name })
    } finally {
      this.ackWaiters.delete(seq)
    }
  }

  private gossip (): void {
    if (this.broadcasts.length === 0) return
    const now = this.clock.now()
    const targets = shuffle(this.otherMembers((m) =>
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
        if (m.node !== this.name || this.leaving) return
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
        this.handleAlive(m)
        return
      case 'suspect':
        this.handleSuspect(m)
        return
      case 'dead':
        this.handleDead(m)
    }
  }

  /**
   * A probe from a member we do not know means gossip about it missed us:
   * repair with a push/pull right away instead of waiting for the periodic
   * one. Every member probes every other within a probe cycle, so this bounds
   * how long a join can stay unseen.
   */
  private syncWithUnknown (source: { name: string, addr: string, port: number }): void {
    const known = this.members.get(source.name)
    if (known !== undefined && (known.state === 'alive' || known.state === 'suspect')) return
    if (this.syncing.has(source.name) || this.leaving) return
    this.syncing.add(source.name)
    this.pushPull({ host: source.addr, port: source.port }, false)
      .catch(() => {})
      .finally(() => {
        // Hold the name a little, so a member that stays unreachable over TCP is not hammered.
        const t = this.clock.setTimeout(() => { this.timers.delete(t); this.syncing.delete(source.name) }, this.profile.probeInterval)
        this.timers.add(t)
      })
  }

  /** Probes `target` on behalf of `from`; forwards its ack, or a nack after probe_timeout. */
  private relayPing (from: Address, m: Extract<Message, { type: 'indirect-ping' }>): void {
    if (this.leaving) return
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

  /** memberlist aliveNode. */
  handleAlive (a: Extract<Message, { type: 'alive' }>): void {
    if (a.node === this.name) {
      if (this.leaving) return
      if (a.incarnation < this.self.incarnation) return
      const same = a.addr === this.self.addr && a.port === this.self.port && sameMeta(a.meta, this.self.meta)
      if (same && a.incarnation === this.self.incarnation) return
      if (a.addr !== this.self.addr || a.port !== this.self.port) {
        this.observer.nameConflict?.(a.node, { host: this.self.addr, port: this.self.port }, { host: a.addr, port: a.port })
      }
      // Somebody holds a newer or different view of us: override it.
      this.refute(a.incarnation, a.node)
      return
    }
    const existing = this.members.get(a.node)
    const now = this.clock.now()
    if (existing === undefined) {
      const m: Member = { name: a.node, addr: a.addr, port: a.port, meta: { ...a.meta }, state: 'alive', incarnation: a.incarnation, since: now, vsn: a.vsn }
      this.members.set(a.node, m)
      // Insert at a random place so new members are not all probed last (memberlist does the same).
      this.probeList.splice(Math.floor(this.random() * (this.probeList.length + 1)), 0, a.node)
      this.broadcasts.queue(a.node, a)
      this.emit('join', { ...m, meta: { ...m.meta } })
      return
    }
    const moved = existing.addr !== a.addr || existing.port !== a.port
    if (moved) {
      if (existing.state === 'alive' || existing.state === 'suspect') {
        this.observer.nameConflict?.(a.node, { host: existing.addr, port: existing.port }, { host: a.addr, port: a.port })
        return
      }
      // A dead or departed member came back at another address (a rescheduled pod): reclaim.
    } else if (a.incarnation <= existing.incarnation) {
      return
    }
    this.suspicions.get(a.node)?.cancel()
    this.suspicions.delete(a.node)
    const was = existing.state
    const metaChanged = !sameMeta(existing.meta, a.meta)
    existing.addr = a.addr
    existing.port = a.port
    existing.meta = { ...a.meta }
    existing.vsn = a.vsn
    existing.incarnation = a.incarnation
    if (was !== 'alive') {
      existing.state = 'alive'
      existing.since = now
    }
    this.broadcasts.queue(a.node, a)
    const copy = { ...existing, meta: { ...existing.meta } }
    if (was === 'dead' || was === 'left') this.emit('join', copy)
    else if (was === 'suspect' || metaChanged) this.emit('update', copy)
  }

  /** memberlist suspectNode. */
  handleSuspect (s: Extract<Message, { type: 'suspect' }>): void {
    const existing = this.members.get(s.node)
    if (existing === undefined || s.incarnation < existing.incarnation) return
    const pending = this.suspicions.get(s.node)
    if (pending !== undefined) {
      // Another independent accuser: shorten the timer and pass the news on.
      if (s.incarnation === existing.incarnation && pending.confirm(s.from)) this.broadcasts.queue(s.node, s)
      return
    }
    if (existing.state !== 'alive') return
    if (s.node === this.name) {
      if (!this.leaving) this.refute(s.incarnation, s.from)
      return
    }
    existing.state = 'suspect'
    existing.incarnation = s.incarnation
    existing.since = this.clock.now()
    this.broadcasts.queue(s.node, s)
    const copy = { ...existing, meta: { ...existing.meta } }
    this.observer.suspect?.(copy, s.from)
    this.emit('update', copy)
    const incarnation = s.incarnation
    const suspicion = new Suspicion(this.clock, s.from, suspicionTimeouts(this.profile, this.numLive()), () => {
      this.suspicions.delete(s.node)
      const current = this.members.get(s.node)
      if (!this.running || current === undefined || current.state !== 'suspect' || current.incarnation !== incarnation) return
      this.handleDead({ type: 'dead', incarnation, node: s.node, from: this.name })
    })
    this.suspicions.set(s.node, suspicion)
  }

  /** memberlist deadNode: `from === node` is a graceful leave. */
  handleDead (d: Extract<Message, { type: 'dead' }>): void {
    const existing = this.members.get(d.node)
    if (existing === undefined || d.incarnation < existing.incarnation) return
    this.suspicions.get(d.node)?.cancel()
    this.suspicions.delete(d.node)
    if (existing.state === 'dead' || existing.state === 'left') return
    if (d.node === this.name) {
      if (!this.leaving) this.refute(d.incarnation, d.from)
      return
    }
    const state: MemberState = d.node === d.from ? 'left' : 'dead'
    existing.state = state
    existing.incarnation = d.incarnation
    existing.since = this.clock.now()
    this.broadcasts.queue(d.node, d)
    this.emit('leave', { ...existing, meta: { ...existing.meta } })
  }

  /** Says we are alive with an incarnation above the accusation (memberlist refute). */
  private refute (accused: number, by: string): void {
    this.self.incarnation = Math.max(this.self.incarnation, accused) + 1
    this.broadcasts.queue(this.name, this.aliveMessage())
    // Lifeguard: being suspected hints that we are the slow one.
    this.awareness.applyDelta(1)
    this.observer.refute?.(this.self.incarnation, by)
  }

  private aliveMessage (): Message {
    return { type: 'alive', incarnation: this.self.incarnation, node: this.name, addr: this.self.addr, port: this.self.port, meta: { ...this.self.meta }, vsn: OUR_VERSIONS }
  }

  // ---- outgoing --------------------------------------------------------------

  private sourceAddress (): { name: string, addr: string, port: number } {
    return { name: this.name, addr: this.self.addr, port: this.self.port }
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

  private otherMembers (filter: (m: Member) => boolean): Member[] {
    const out: Member[] = []
    for (const m of this.members.values()) if (m !== this.self && filter(m)) out.push(m)
    return out
  }

  private nextSeq (): number {
    this.seq = (this.seq + 1) % Number.MAX_SAFE_INTEGER
    return this.seq
  }
}

function sameMeta (a: MemberMeta, b: MemberMeta): boolean {
  return a.api === b.api && a.mqtt === b.mqtt && a.version === b.version
}

/** memberlist pushPullScale: beyond 32 members, push/pull less often so the cluster-wide TCP load stays flat. */
export function pushPullScale (interval: number, n: number): number {
  if (n <= 32) return interval
  return Math.ceil(Math.log2(n) - Math.log2(32) + 1) * interval
}
