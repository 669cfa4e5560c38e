// The member table (memberlist state.go's aliveNode, suspectNode, deadNode
// and resetNodes): what this node believes about every member, ourselves
// included, and the rules by which news changes it. state.ts feeds it the
// alive, suspect and dead messages it receives or concludes; every change
// is queued for gossip and announced as a join, update or leave event.
//
// - A member's news counts only at its incarnation or above; an alive
//   message needs a higher one than we know (or a different address, for a
//   member dead or gone that came back elsewhere: a rescheduled pod).
// - A live member claimed at another address is a name conflict: reported,
//   not taken.
// - A suspect member is declared dead when its suspicion timer fires
//   (suspicion.ts), unless an alive message refutes it first; each further
//   independent accuser shortens the timer.
// - News that we are suspect or dead is refuted: we announce ourselves alive
//   with a higher incarnation (and, Lifeguard, count it against our health).
//   Not once we are leaving.
// - Dead and departed members stay known for gossipToTheDeadTime so the news
//   spreads; they are reaped when the probe order is reshuffled.
import type { Member, MemberMeta, MembershipEvents, MemberState } from './membership.js'
import type { ClusterProfile } from './config-profile.js'
import { shuffle, type Clock, type Random } from './clock.js'
import type { Awareness } from './awareness.js'
import type { BroadcastQueue } from './broadcast-queue.js'
import { Suspicion, suspicionTimeouts } from './suspicion.js'
import { OUR_VERSIONS, type Message } from './codec.js'
import type { Address } from './transport.js'

/** What the table reports about its decisions, besides the membership events. */
export interface MemberTableObserver {
  suspect?: (member: Member, from: string) => void
  refute?: (incarnation: number, accusedBy: string) => void
  nameConflict?: (name: string, existing: Address, claimed: Address) => void
}

export interface MemberTableOptions {
  name: string
  advertise: Address
  meta: MemberMeta
  incarnation: number
  profile: ClusterProfile
  clock: Clock
  random: Random
  broadcasts: BroadcastQueue
  awareness: Awareness
  observer: MemberTableObserver
  emit: (event: keyof MembershipEvents, member: Member) => void
  /** Between the state machine's start and stop: a suspicion that times out after the stop kills nobody. */
  running: () => boolean
}

export class MemberTable {
  readonly name: string
  /** Ourselves, as we tell others. */
  readonly self: Member
  private readonly opts: MemberTableOptions
  private readonly members = new Map<string, Member>()
  private readonly suspicions = new Map<string, Suspicion>()
  private probeList: string[] = []
  private probeIndex = 0
  private leavingValue = false

  constructor (opts: MemberTableOptions) {
    this.opts = opts
    this.name = opts.name
    this.self = {
      name: opts.name,
      addr: opts.advertise.host,
      port: opts.advertise.port,
      meta: { ...opts.meta },
      state: 'alive',
      incarnation: opts.incarnation,
      since: opts.clock.now(),
      vsn: OUR_VERSIONS
    }
    this.members.set(this.name, this.self)
    this.probeList.push(this.name)
  }

  /** Members known, ourselves and dead or departed ones included. */
  get size (): number { return this.members.size }

  /** We announced our leave: nothing said about us is refuted any more. */
  get leaving (): boolean { return this.leavingValue }

  /** The member itself (not a copy), for the state machine's reading. */
  get (name: string): Member | undefined { return this.members.get(name) }

  /** The members themselves (not copies), ourselves included. */
  all (): IterableIterator<Member> { return this.members.values() }

  /** Copies of every member, ourselves included. */
  list (): Member[] {
    return [...this.members.values()].map((m) => ({ ...m, meta: { ...m.meta } }))
  }

  /** Members that are alive or suspect, ourselves included (memberlist's NumMembers). */
  numLive (): number {
    let n = 0
    for (const m of this.members.values()) if (m.state === 'alive' || m.state === 'suspect') n++
    return n
  }

  /** Every member but ourselves that passes `filter`. */
  others (filter: (m: Member) => boolean): Member[] {
    const out: Member[] = []
    for (const m of this.members.values()) if (m !== this.self && filter(m)) out.push(m)
    return out
  }

  /** The news of our graceful leave; from now on we are 'left' and refute nothing. */
  leave (): Message {
    this.leavingValue = true
    const message: Message = { type: 'dead', incarnation: this.self.incarnation, node: this.name, from: this.name }
    this.self.state = 'left'
    this.self.since = this.opts.clock.now()
    return message
  }

  aliveMessage (): Message {
    return { type: 'alive', incarnation: this.self.incarnation, node: this.name, addr: this.self.addr, port: this.self.port, meta: { ...this.self.meta }, vsn: OUR_VERSIONS }
  }

  /** The state machine stops: no suspicion fires any more. */
  stop (): void {
    for (const s of this.suspicions.values()) s.cancel()
    this.suspicions.clear()
  }

  /** Round-robin over a shuffled list; at each wrap, reap and reshuffle (memberlist resetNodes). */
  nextProbeTarget (): Member | undefined {
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

  /** memberlist aliveNode. */
  alive (a: Extract<Message, { type: 'alive' }>): void {
    const { observer, broadcasts } = this.opts
    if (a.node === this.name) {
      if (this.leavingValue) return
      if (a.incarnation < this.self.incarnation) return
      const same = a.addr === this.self.addr && a.port === this.self.port && sameMeta(a.meta, this.self.meta)
      if (same && a.incarnation === this.self.incarnation) return
      if (a.addr !== this.self.addr || a.port !== this.self.port) {
        observer.nameConflict?.(a.node, { host: this.self.addr, port: this.self.port }, { host: a.addr, port: a.port })
      }
      // Somebody holds a newer or different view of us: override it.
      this.refute(a.incarnation, a.node)
      return
    }
    const existing = this.members.get(a.node)
    const now = this.opts.clock.now()
    if (existing === undefined) {
      const m: Member = { name: a.node, addr: a.addr, port: a.port, meta: { ...a.meta }, state: 'alive', incarnation: a.incarnation, since: now, vsn: a.vsn }
      this.members.set(a.node, m)
      // Insert at a random place so new members are not all probed last (memberlist does the same).
      this.probeList.splice(Math.floor(this.opts.random() * (this.probeList.length + 1)), 0, a.node)
      broadcasts.queue(a.node, a)
      this.opts.emit('join', { ...m, meta: { ...m.meta } })
      return
    }
    const moved = existing.addr !== a.addr || existing.port !== a.port
    if (moved) {
      if (existing.state === 'alive' || existing.state === 'suspect') {
        observer.nameConflict?.(a.node, { host: existing.addr, port: existing.port }, { host: a.addr, port: a.port })
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
    broadcasts.queue(a.node, a)
    const copy = { ...existing, meta: { ...existing.meta } }
    if (was === 'dead' || was === 'left') this.opts.emit('join', copy)
    else if (was === 'suspect' || metaChanged) this.opts.emit('update', copy)
  }

  /** memberlist suspectNode. */
  suspect (s: Extract<Message, { type: 'suspect' }>): void {
    const existing = this.members.get(s.node)
    if (existing === undefined || s.incarnation < existing.incarnation) return
    const pending = this.suspicions.get(s.node)
    if (pending !== undefined) {
      // Another independent accuser: shorten the timer and pass the news on.
      if (s.incarnation === existing.incarnation && pending.confirm(s.from)) this.opts.broadcasts.queue(s.node, s)
      return
    }
    if (existing.state !== 'alive') return
    if (s.node === this.name) {
      if (!this.leavingValue) this.refute(s.incarnation, s.from)
      return
    }
    existing.state = 'suspect'
    existing.incarnation = s.incarnation
    existing.since = this.opts.clock.now()
    this.opts.broadcasts.queue(s.node, s)
    const copy = { ...existing, meta: { ...existing.meta } }
    this.opts.observer.suspect?.(copy, s.from)
    this.opts.emit('update', copy)
    const incarnation = s.incarnation
    const suspicion = new Suspicion(this.opts.clock, s.from, suspicionTimeouts(this.opts.profile, this.numLive()), () => {
      this.suspicions.delete(s.node)
      const current = this.members.get(s.node)
      if (!this.opts.running() || current === undefined || current.state !== 'suspect' || current.incarnation !== incarnation) return
      this.dead({ type: 'dead', incarnation, node: s.node, from: this.name })
    })
    this.suspicions.set(s.node, suspicion)
  }

  /** memberlist deadNode: `from === node` is a graceful leave. */
  dead (d: Extract<Message, { type: 'dead' }>): void {
    const existing = this.members.get(d.node)
    if (existing === undefined || d.incarnation < existing.incarnation) return
    this.suspicions.get(d.node)?.cancel()
    this.suspicions.delete(d.node)
    if (existing.state === 'dead' || existing.state === 'left') return
    if (d.node === this.name) {
      if (!this.leavingValue) this.refute(d.incarnation, d.from)
      return
    }
    const state: MemberState = d.node === d.from ? 'left' : 'dead'
    existing.state = state
    existing.incarnation = d.incarnation
    existing.since = this.opts.clock.now()
    this.opts.broadcasts.queue(d.node, d)
    this.opts.emit('leave', { ...existing, meta: { ...existing.meta } })
  }

  /** Says we are alive with an incarnation above the accusation (memberlist refute). */
  private refute (accused: number, by: string): void {
    this.self.incarnation = Math.max(this.self.incarnation, accused) + 1
    this.opts.broadcasts.queue(this.name, this.aliveMessage())
    // Lifeguard: being suspected hints that we are the slow one.
    this.opts.awareness.applyDelta(1)
    this.opts.observer.refute?.(this.self.incarnation, by)
  }

  private resetProbeList (): void {
    const now = this.opts.clock.now()
    for (const [name, m] of this.members) {
      if ((m.state === 'dead' || m.state === 'left') && now - m.since > this.opts.profile.gossipToTheDeadTime) this.members.delete(name)
    }
    this.probeList = shuffle([...this.members.keys()], this.opts.random)
  }
}

function sameMeta (a: MemberMeta, b: MemberMeta): boolean {
  return a.api === b.api && a.mqtt === b.mqtt && a.version === b.version
}
