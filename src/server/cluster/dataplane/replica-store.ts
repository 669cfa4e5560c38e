// Session replicas (issue 5, "session survival"): every session state change
// on a session's home node is sent, as an operation, to one other node (its
// replica holder), which applies it to a copy. When the home node dies, the
// holder takes the session over (promotion, ../session-replication.ts), so a
// client reconnecting to any node gets its subscriptions and its queued and
// in-flight QoS 1/2 messages back, and the holder publishes the will of a
// client that was connected on the dead node.
//
// The operations mirror the persistence calls aedes makes (subscriptions
// added and removed, messages enqueued, given a packet identifier, released
// to PUBREL, acknowledged; the will stored and deleted) plus the connection
// state the will and the session expiry need. They travel in order over the
// reliable link to the holder, which applies them to an OutgoingQueues of its
// own: the same code as the home node's queue, so the copy is the same queue.
// A snapshot starts every replica (first change, new holder after the old
// one went away, a session that arrived from elsewhere). Pure: no I/O, no
// timers.
import { OutgoingQueues, type StoredPacket } from '../../mqtt/outgoing-queues.js'
import { compareStamps, type Stamp } from './hlc.js'
import { checkPacket, checkSubscription, isPacketId, type TransferredPacket, type TransferredSession, type TransferredSubscription } from './session-transfer.js'

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
  /**
   * Per peer link into the home (`peer/incarnation`), the last message the
   * home had handed to its broker when the snapshot was taken: everything up
   * to it is reflected in the snapshot, so a rescue skips it.
   */
  after?: Record<string, number>
  subscriptions: TransferredSubscription[]
  queue: TransferredPacket[]
  will: TransferredPacket | null
}

/** One change of one session; `clientId` says whose. */
export type ReplicaOp =
  | { op: 'snapshot', snapshot: ReplicaSnapshot }
  | { op: 'subscribe', subscriptions: TransferredSubscription[] }
  | { op: 'unsubscribe', topics: string[] }
  /** `source`: for a message from a peer, which send it was (messages.ts, rescue). */
  | { op: 'enqueue', packet: TransferredPacket, source?: string | undefined }
  /** A PUBLISH got packet identifier `messageId` (brokerId/brokerCounter say which), or a PUBREL replaced it (`pubrel`). */
  | { op: 'update', messageId: number, brokerId?: string | undefined, brokerCounter?: number | undefined, pubrel: boolean }
  | { op: 'clear', messageId: number }
  | { op: 'will', will: TransferredPacket | null }
  | { op: 'connection', connection: ReplicaConnection, stamp?: Stamp | undefined }
  /** The session ended or moved away from its home: forget the copy. */
  | { op: 'drop' }

export type ClientReplicaOp = ReplicaOp & { clientId: string }

interface Replica extends ReplicaConnection {
  owner: string
  stamp: Stamp
  subscriptions: Map<string, TransferredSubscription>
  will: TransferredPacket | null
  /** Sources of the messages from peers the home enqueued (the latest MAX_SEEN). */
  seen: Set<string>
  after: Record<string, number>
}

/** Sources remembered per replica: far more than a link holds unacknowledged when its peer dies. */
const MAX_SEEN = 10_000

/** A replica handed out (fetched by a reconnecting client, or promoted when its home died). */
export interface TakenReplica extends ReplicaConnection {
  owner: string
  session: TransferredSession
  will: TransferredPacket | null
  /** Sources of the messages from peers its home enqueued: a rescue skips these. */
  seen: string[]
  /** ReplicaSnapshot.after of its last snapshot: a rescue skips these too. */
  after: Record<string, number>
}

export class ReplicaStore {
  private readonly replicas = new Map<string, Replica>()
  private readonly queues: OutgoingQueues
  /** Operations that matched no replica or packet (a replica started late, or a bug): counted for metrics. */
  ignored = 0

  constructor (maxQueuedPerSession: number) {
    this.queues = new OutgoingQueues(maxQueuedPerSession)
  }

  /** Replicas held. */
  get size (): number { return this.replicas.size }
  /** Queued entries over all replicas. */
  get queued (): number { return this.queues.count }

  has (clientId: string): boolean { return this.replicas.has(clientId) }
  ownerOf (clientId: string): string | undefined { return this.replicas.get(clientId)?.owner }

  /** Client ids whose home is `owner`. */
  ownedBy (owner: string): string[] {
    return [...this.replicas].filter(([, r]) => r.owner === owner).map(([id]) => id)
  }

  /**
   * Applies one operation from `owner`. A snapshot starts (or replaces) a
   * replica unless the copy held is newer and from another home (a late
   * snapshot from a node the session already left); every other operation
   * applies only to a replica whose home is `owner`.
   */
  apply (owner: string, op: ClientReplicaOp): void {
    const id = op.clientId
    if (op.op === 'snapshot') {
      const held = this.replicas.get(id)
      if (held !== undefined && held.owner !== owner && compareStamps(held.stamp, op.snapshot.stamp) > 0) {
        this.ignored++
        return
      }
      this.queues.drop(id)
      const s = op.snapshot
      this.replicas.set(id, {
        owner,
        stamp: s.stamp,
        connected: s.connected,
        disconnectedAt: s.disconnectedAt,
        expiry: s.expiry,
        subscriptions: new Map(s.subscriptions.map((sub) => [sub.topic, sub])),
        will: s.will,
        seen: new Set(),
        after: s.after ?? {}
      })
      this.queues.import(id, s.queue as StoredPacket[])
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
      case 'enqueue':
        this.queues.enqueue(id, op.packet as StoredPacket)
        if (op.source !== undefined) {
          r.seen.add(op.source)
          if (r.seen.size > MAX_SEEN) r.seen.delete(r.seen.values().next().value!)
        }
        return
      case 'update':
        try {
          this.queues.update(id, op.pubrel
            ? { cmd: 'pubrel', messageId: op.messageId, topic: '', payload: Buffer.alloc(0) }
            : { cmd: 'publish', messageId: op.messageId, brokerId: op.brokerId, brokerCounter: op.brokerCounter, topic: '', payload: Buffer.alloc(0) })
        } catch {
          this.ignored++
        }
        return
      case 'clear':
        if (this.queues.clear(id, { messageId: op.messageId }) === undefined) this.ignored++
        return
      case 'will':
        r.will = op.will
        return
      case 'connection':
        r.connected = op.connection.connected
        r.disconnectedAt = op.connection.disconnectedAt
        r.expiry = op.connection.expiry
        if (op.stamp !== undefined) r.stamp = op.stamp
        return
      case 'drop':
        this.delete(id)
    }
  }

  /** Removes a replica and returns it as a session (with its will and connection state), or undefined. */
  take (clientId: string): TakenReplica | undefined {
    const r = this.replicas.get(clientId)
    if (r === undefined) return undefined
    const taken = this.peek(clientId)!
    this.delete(clientId)
    return taken
  }

  /** A replica as a session, left in place. */
  peek (clientId: string): TakenReplica | undefined {
    const r = this.replicas.get(clientId)
    if (r === undefined) return undefined
    return {
      owner: r.owner,
      connected: r.connected,
      disconnectedAt: r.disconnectedAt,
      expiry: r.expiry,
      will: r.will,
      seen: [...r.seen],
      after: r.after,
      session: { stamp: r.stamp, subscriptions: [...r.subscriptions.values()], queue: this.queues.export(clientId) as TransferredPacket[] }
    }
  }

  delete (clientId: string): void {
    this.replicas.delete(clientId)
    this.queues.drop(clientId)
  }
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
  const will = (w: unknown): TransferredPacket | null => {
    if (w === null) return null
    const x = w as Record<string, unknown>
    if (typeof x !== 'object' || typeof x.topic !== 'string' || !Buffer.isBuffer(x.payload)) throw new Error('bad will')
    return x as TransferredPacket
  }
  switch (o.op) {
    case 'snapshot': {
      const s = o.snapshot as Record<string, unknown> | null
      if (typeof s !== 'object' || s === null || !Array.isArray(s.subscriptions) || !Array.isArray(s.queue)) throw new Error('bad replica snapshot')
      s.subscriptions.forEach(checkSubscription)
      s.queue.forEach(checkPacket)
      const after = s.after as Record<string, unknown> | undefined
      if (after !== undefined && (typeof after !== 'object' || after === null || !Object.values(after).every((n) => typeof n === 'number'))) throw new Error('bad replica snapshot watermarks')
      return {
        clientId,
        op: 'snapshot',
        snapshot: { ...connection(s), stamp: stampOf(s.stamp), subscriptions: s.subscriptions, queue: s.queue, will: will(s.will), ...(after === undefined ? {} : { after: after as Record<string, number> }) }
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
      if (o.source !== undefined && typeof o.source !== 'string') throw new Error('bad replica enqueue source')
      return { clientId, op: 'enqueue', packet: o.packet, ...(o.source === undefined ? {} : { source: o.source }) }
    case 'update':
      if (!isPacketId(o.messageId) || typeof o.pubrel !== 'boolean') throw new Error('bad replica update')
      if (!o.pubrel && (typeof o.brokerId !== 'string' || typeof o.brokerCounter !== 'number')) throw new Error('bad replica update')
      return { clientId, op: 'update', messageId: o.messageId, pubrel: o.pubrel, ...(o.pubrel ? {} : { brokerId: o.brokerId as string, brokerCounter: o.brokerCounter as number }) }
    case 'clear':
      if (!isPacketId(o.messageId)) throw new Error('bad replica clear')
      return { clientId, op: 'clear', messageId: o.messageId }
    case 'will':
      return { clientId, op: 'will', will: will(o.will) }
    case 'connection':
      return { clientId, op: 'connection', connection: connection(o.connection), ...(o.stamp === undefined ? {} : { stamp: stampOf(o.stamp) }) }
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
