// Session replicas: every change of a session on its home node is sent, as
// an operation, to one other node (its replica holder), which applies it to
// a copy. When the home node dies, the holder takes the session over
// (promotion.ts), so a client reconnecting to any node gets its
// subscriptions, its queued and in-flight QoS 1/2 messages (with their packet
// identifiers), its ledger and its incoming QoS 2 state back, and the holder
// publishes the will of a client that was connected on the dead node.
//
// The operations mirror the session store's changes (persistence-observer.ts)
// plus the connection state the will and the session expiry need. They
// travel in order over the reliable link to the holder, which applies them
// to an OutgoingQueues of its own: the same code as the home node's queue, so
// the copy is the same queue, ledger included. A snapshot starts every
// replica (first change, new holder after the old one went away, a session
// that arrived from elsewhere). Pure: no I/O, no timers.
import { OutgoingQueues, type StoredPacket } from '../../mqtt/outgoing-queues.js'
import { compareStamps, type Stamp } from './hlc.js'
import {
  checkIncoming, checkLedger, checkPacket, checkSubscription, checkWill, isPacketId,
  type TransferredPacket, type TransferredSession, type TransferredSubscription
} from './session-transfer.js'

/** What a replica knows about the connection, for the will and the session expiry. */
export interface ReplicaConnection {
  /** Connected on the home node (a will is owed if the home node dies). */
  connected: boolean
  /** Wall clock ms of the last disconnect on the home node. */
  disconnectedAt?: number | undefined
  /** Session Expiry Interval in seconds (MQTT 5); absent: the session never expires (3.1.1 persistent). */
  expiry?: number | undefined
}

export interface ReplicaSnapshot extends ReplicaConnection {
  /** When the session was last connected on its home node (HLC). */
  stamp: Stamp
  subscriptions: TransferredSubscription[]
  queue: TransferredPacket[]
  ledger: string[]
  incoming: TransferredPacket[]
  will: TransferredPacket | null
  /** The home took the session over from a node believed dead: a copy that yields to its original's. */
  promoted?: boolean | undefined
  /**
   * The home's identity: its store's (storage.dir) or, without storage, its
   * process's. A replica read back from the holder's disk is checked against
   * it when the home links (session-reconcile.ts).
   */
  home?: string | undefined
}

/** One change of one session; `clientId` says whose. */
export type ReplicaOp =
  | { op: 'snapshot', snapshot: ReplicaSnapshot }
  | { op: 'subscribe', subscriptions: TransferredSubscription[] }
  | { op: 'unsubscribe', topics: string[] }
  /** Queued at index `at` (absent: at the end). */
  | { op: 'enqueue', packet: TransferredPacket, at?: number | undefined }
  /** The message with stamp `stamp` got packet identifier `messageId` and goes out at `qos`: it is in flight. */
  | { op: 'sent', stamp: string, messageId: number, qos: number }
  /** The client answered PUBREC: the entry under `messageId` is a PUBREL now. */
  | { op: 'release', messageId: number }
  /** An entry left the queue: acknowledged (`messageId`) or dropped (`stamp`). */
  | { op: 'clear', messageId?: number | undefined, stamp?: string | undefined }
  | { op: 'will', will: TransferredPacket | null }
  | { op: 'connection', connection: ReplicaConnection, stamp?: Stamp | undefined }
  /** A QoS 2 PUBLISH from the client awaits its PUBREL (`packet`, with its stamp), or got it (no packet). */
  | { op: 'incoming', messageId: number, packet?: TransferredPacket }
  /** The session ended or moved away from its home: forget the copy. */
  | { op: 'drop' }

export type ClientReplicaOp = ReplicaOp & { clientId: string }

interface Replica extends ReplicaConnection {
  owner: string
  /** The home's identity when it sent the snapshot (ReplicaSnapshot.home). */
  home: string | undefined
  /** Read back from this node's disk and not refreshed by its home since: not offered to a fetch. */
  unconfirmed: boolean
  stamp: Stamp
  subscriptions: Map<string, TransferredSubscription>
  will: TransferredPacket | null
  incoming: Map<number, TransferredPacket>
}

/** A replica handed out (fetched by a reconnecting client, or promoted when its home died). */
export interface TakenReplica extends ReplicaConnection {
  owner: string
  home?: string | undefined
  session: TransferredSession
  will: TransferredPacket | null
}

export class ReplicaStore {
  private readonly replicas = new Map<string, Replica>()
  private readonly queues: OutgoingQueues
  /** Operations that matched no replica or packet (a replica started late, or a bug): counted for metrics. */
  ignored = 0
  /** Told of every replica changed or removed (storage: replicas are kept on disk). */
  changed: ((clientId: string) => void) | undefined

  constructor (maxQueuedPerSession: number) {
    this.queues = new OutgoingQueues(maxQueuedPerSession)
  }

  /** Replicas held. */
  get size (): number { return this.replicas.size }
  /** Queued entries over all replicas. */
  get queued (): number { return this.queues.count }

  has (clientId: string): boolean { return this.replicas.has(clientId) }
  /** Client ids of every replica held. */
  clientIds (): string[] { return [...this.replicas.keys()] }
  ownerOf (clientId: string): string | undefined { return this.replicas.get(clientId)?.owner }

  /** Client ids whose home is `owner`. */
  ownedBy (owner: string): string[] {
    return [...this.replicas].filter(([, r]) => r.owner === owner).map(([id]) => id)
  }

  /** Replicas of `owner` read back from disk and not refreshed since, with the home identity each was made under. */
  unconfirmedOf (owner: string): Array<{ clientId: string, home: string | undefined }> {
    return [...this.replicas].filter(([, r]) => r.owner === owner && r.unconfirmed).map(([clientId, r]) => ({ clientId, home: r.home }))
  }

  isUnconfirmed (clientId: string): boolean { return this.replicas.get(clientId)?.unconfirmed === true }

  /**
   * A replica read back from this node's disk (storage): held, but
   * unconfirmed until its home refreshes it (a snapshot) or says it does not
   * hold the session any more (session-reconcile.ts).
   */
  restore (clientId: string, r: TakenReplica): void {
    this.queues.drop(clientId)
    this.replicas.set(clientId, {
      owner: r.owner,
      home: r.home,
      unconfirmed: true,
      stamp: r.session.stamp,
      connected: r.connected,
      disconnectedAt: r.disconnectedAt,
      expiry: r.expiry,
      subscriptions: new Map(r.session.subscriptions.map((sub) => [sub.topic, sub])),
      will: r.will,
      incoming: new Map(r.session.incoming.map((p) => [p.messageId!, p]))
    })
    this.queues.import(clientId, r.session.queue as StoredPacket[], r.session.ledger)
  }

  /**
   * Applies one operation from `owner`. A snapshot starts (or replaces) a
   * replica unless the copy held is newer and from another home (a late
   * snapshot from a node the session already left); every other operation
   * applies only to a replica whose home is `owner`.
   */
  apply (owner: string, op: ClientReplicaOp): void {
    this.applyOp(owner, op)
    this.changed?.(op.clientId)
  }

  private applyOp (owner: string, op: ClientReplicaOp): void {
    const id = op.clientId
    if (op.op === 'snapshot') {
      const held = this.replicas.get(id)
      // Older, or as old and only a copy taken over from the home we hold it for.
      const cmp = held === undefined ? 0 : compareStamps(held.stamp, op.snapshot.stamp)
      if (held !== undefined && held.owner !== owner && (cmp > 0 || (cmp === 0 && op.snapshot.promoted === true))) {
        this.ignored++
        return
      }
      this.queues.drop(id)
      const s = op.snapshot
      this.replicas.set(id, {
        owner,
        home: s.home,
        unconfirmed: false,
        stamp: s.stamp,
        connected: s.connected,
        disconnectedAt: s.disconnectedAt,
        expiry: s.expiry,
        subscriptions: new Map(s.subscriptions.map((sub) => [sub.topic, sub])),
        will: s.will,
        incoming: new Map(s.incoming.map((p) => [p.messageId!, p]))
      })
      this.queues.import(id, s.queue as StoredPacket[], s.ledger)
      return
    }
    const r = this.replicas.get(id)
    if (r === undefined || r.owner !== owner) {
      this.ignored++
      return
    }
    switch (op.op) {
      case 'subscribe':
        for (const sub of op.subscriptions) r.subscriptions.set(sub.topic, sub)
        return
      case 'unsubscribe':
        for (const t of op.topics) r.subscriptions.delete(t)
        return
      case 'enqueue': {
        const at = op.at
        const entries = this.queues.entries(id)
        const before = at === undefined ? undefined : entries[at]
        const added = this.queues.enqueue(id, op.packet as StoredPacket, before)
        if (added === undefined) this.ignored++
        return
      }
      case 'sent': {
        const e = this.queues.assign(id, op.stamp, op.messageId)
        if (e === undefined) this.ignored++
        else e.qos = op.qos
        return
      }
      case 'release':
        if (!this.queues.release(id, { cmd: 'pubrel', topic: '', payload: Buffer.alloc(0), messageId: op.messageId })) this.ignored++
        return
      case 'clear': {
        const ref = op.messageId !== undefined ? { messageId: op.messageId } : splitStamp(op.stamp)
        if (ref === undefined || this.queues.clear(id, ref) === undefined) this.ignored++
        return
      }
      case 'will':
        r.will = op.will
        return
      case 'connection':
        r.connected = op.connection.connected
        r.disconnectedAt = op.connection.disconnectedAt
        r.expiry = op.connection.expiry
        if (op.stamp !== undefined) r.stamp = op.stamp
        return
      case 'incoming':
        if (op.packet !== undefined) r.incoming.set(op.messageId, op.packet)
        else r.incoming.delete(op.messageId)
        return
      case 'drop':
        this.delete(id)
    }
  }

  /** Removes a replica and returns it as a session (with its will and connection state), or undefined; with `owner`, only a replica whose home is that node. */
  take (clientId: string, owner?: string): TakenReplica | undefined {
    const taken = this.peek(clientId)
    if (taken === undefined || (owner !== undefined && taken.owner !== owner)) return undefined
    this.delete(clientId)
    return taken
  }

  /** A replica as a session, left in place. */
  peek (clientId: string): TakenReplica | undefined {
    const r = this.replicas.get(clientId)
    if (r === undefined) return undefined
    const { queue, ledger } = this.queues.export(clientId)
    return {
      owner: r.owner,
      home: r.home,
      connected: r.connected,
      disconnectedAt: r.disconnectedAt,
      expiry: r.expiry,
      will: r.will,
      session: { stamp: r.stamp, subscriptions: [...r.subscriptions.values()], queue: queue as TransferredPacket[], ledger, incoming: [...r.incoming.values()], rescueFrom: r.owner }
    }
  }

  delete (clientId: string): void {
    const had = this.replicas.delete(clientId)
    this.queues.drop(clientId)
    if (had) this.changed?.(clientId)
  }
}

/** A stamp as text (message-stamp.ts) back to the fields a queue clears by. */
function splitStamp (stamp: string | undefined): { brokerId: string, brokerCounter: number } | undefined {
  if (stamp === undefined) return undefined
  const cut = stamp.lastIndexOf('\u0000')
  if (cut < 0) return undefined
  return { brokerId: stamp.slice(0, cut), brokerCounter: Number(stamp.slice(cut + 1)) }
}

/**
 * When a will owed by a session whose home died is due (wall ms), or
 * undefined when none is owed: at the smaller of the Will Delay Interval and
 * the Session Expiry Interval after the connection ended (MQTT 5 section
 * 3.1.3.2), the connection having ended at `diedAt` if it was still up.
 */
export function willDueAt (r: ReplicaConnection & { will: TransferredPacket | null }, diedAt: number): number | undefined {
  if (r.will === null) return undefined
  const ended = r.connected ? diedAt : (r.disconnectedAt ?? diedAt)
  const props = r.will.properties as { willDelayInterval?: unknown } | undefined
  const delayS = typeof props?.willDelayInterval === 'number' ? props.willDelayInterval : 0
  const capS = r.expiry === undefined ? delayS : Math.min(delayS, r.expiry)
  return ended + capS * 1000
}

/** When a session whose home died expires (wall ms), or undefined for never (3.1.1, or 0xFFFFFFFF). */
export function sessionExpiresAt (r: ReplicaConnection, diedAt: number): number | undefined {
  if (r.expiry === undefined || r.expiry >= 0xFFFFFFFF) return undefined
  const ended = r.connected ? diedAt : (r.disconnectedAt ?? diedAt)
  return ended + r.expiry * 1000
}

/**
 * An operation as it arrived (JSON, stamps as text), checked and typed;
 * throws (with a reason) on anything malformed.
 */
export function checkReplicaOp (v: unknown, stampOf: (text: unknown) => Stamp): ClientReplicaOp {
  if (typeof v !== 'object' || v === null) throw new Error('bad replica op')
  const o = v as Record<string, unknown>
  const clientId = o.clientId
  if (typeof clientId !== 'string') throw new Error('bad replica op client id')
  const connection = (c: unknown): ReplicaConnection => {
    const x = c as Record<string, unknown> | null
    if (typeof x !== 'object' || x === null || typeof x.connected !== 'boolean') throw new Error('bad replica connection')
    if (x.disconnectedAt !== undefined && typeof x.disconnectedAt !== 'number') throw new Error('bad replica connection')
    if (x.expiry !== undefined && typeof x.expiry !== 'number') throw new Error('bad replica connection')
    return {
      connected: x.connected,
      ...(x.disconnectedAt === undefined ? {} : { disconnectedAt: x.disconnectedAt as number }),
      ...(x.expiry === undefined ? {} : { expiry: x.expiry as number })
    }
  }
  const will = (w: unknown): TransferredPacket | null => w === null ? null : checkWill(w)
  switch (o.op) {
    case 'snapshot': {
      const s = o.snapshot as Record<string, unknown> | null
      if (typeof s !== 'object' || s === null || !Array.isArray(s.subscriptions) || !Array.isArray(s.queue)) throw new Error('bad replica snapshot')
      s.subscriptions.forEach(checkSubscription)
      s.queue.forEach(checkPacket)
      return {
        clientId,
        op: 'snapshot',
        snapshot: { ...connection(s), stamp: stampOf(s.stamp), subscriptions: s.subscriptions, queue: s.queue, ledger: checkLedger(s.ledger), incoming: checkIncoming(s.incoming), will: will(s.will), ...(s.promoted === true ? { promoted: true } : {}), ...(typeof s.home === 'string' ? { home: s.home } : {}) }
      }
    }
    case 'subscribe':
      if (!Array.isArray(o.subscriptions)) throw new Error('bad replica subscribe')
      o.subscriptions.forEach(checkSubscription)
      return { clientId, op: 'subscribe', subscriptions: o.subscriptions }
    case 'unsubscribe':
      if (!Array.isArray(o.topics) || !o.topics.every((t) => typeof t === 'string')) throw new Error('bad replica unsubscribe')
      return { clientId, op: 'unsubscribe', topics: o.topics as string[] }
    case 'enqueue':
      checkPacket(o.packet)
      if (o.at !== undefined && (typeof o.at !== 'number' || !Number.isInteger(o.at) || o.at < 0)) throw new Error('bad replica enqueue position')
      return { clientId, op: 'enqueue', packet: o.packet, ...(o.at === undefined ? {} : { at: o.at }) }
    case 'sent':
      if (typeof o.stamp !== 'string' || !isPacketId(o.messageId) || (o.qos !== 1 && o.qos !== 2)) throw new Error('bad replica sent')
      return { clientId, op: 'sent', stamp: o.stamp, messageId: o.messageId, qos: o.qos }
    case 'release':
      if (!isPacketId(o.messageId)) throw new Error('bad replica release')
      return { clientId, op: 'release', messageId: o.messageId }
    case 'clear':
      if (o.messageId !== undefined ? !isPacketId(o.messageId) : typeof o.stamp !== 'string') throw new Error('bad replica clear')
      return { clientId, op: 'clear', ...(o.messageId !== undefined ? { messageId: o.messageId as number } : { stamp: o.stamp as string }) }
    case 'will':
      return { clientId, op: 'will', will: will(o.will) }
    case 'connection':
      return { clientId, op: 'connection', connection: connection(o.connection), ...(o.stamp === undefined ? {} : { stamp: stampOf(o.stamp) }) }
    case 'incoming':
      if (!isPacketId(o.messageId)) throw new Error('bad replica incoming')
      if (o.packet === undefined) return { clientId, op: 'incoming', messageId: o.messageId }
      return { clientId, op: 'incoming', messageId: o.messageId, packet: checkIncoming([o.packet])[0]! }
    case 'drop':
      return { clientId, op: 'drop' }
    default:
      throw new Error(`unknown replica op ${String(o.op)}`)
  }
}

/** An operation as JSON-ready data (stamps as text). */
export function encodeReplicaOp (op: ClientReplicaOp, stampText: (s: Stamp) => string): unknown {
  if (op.op === 'snapshot') return { ...op, snapshot: { ...op.snapshot, stamp: stampText(op.snapshot.stamp) } }
  if (op.op === 'connection' && op.stamp !== undefined) return { ...op, stamp: stampText(op.stamp) }
  return op
}
