// Session survival (issue 5): every session with state worth keeping (a
// persistent session's subscriptions and queue, any client's will) lives on
// its home node, the node its client last connected to, and is copied to one
// other node, its replica holder, chosen by rendezvous hashing of the client
// id over the peers whose link is up. The copy follows every change as an
// operation (dataplane/session-replica.ts) over the reliable, ordered peer
// link, so it is as current as the link.
//
// When a home node dies (declared dead by the membership, or left without
// handing its sessions off), each holder promotes the replicas it holds for
// it: the sessions become its own (subscriptions routed from here, queue
// kept), are replicated onward, and wait for their clients; the will of a
// client that was connected on the dead node is published after its will
// delay, unless the client reconnects first; a session with an expiry
// interval expires here. A client reconnecting elsewhere before the promotion
// fetches the replica (data-plane.ts, fetchSession): the home copy wins when
// it answers, the replica otherwise.
//
// The holder is sticky: a session keeps its holder while that peer's link
// lives; when the peer goes away, every session it held for us gets a new
// holder and a snapshot. A node with no peer replicates nothing, and starts
// when a peer comes up.
import { createHash } from 'node:crypto'
import type { Logger } from '../../../log.js'
import type { StoredPacket } from '../../mqtt/persistence.js'
import {
  ReplicaStore, sessionExpiresAt, willDueAt,
  type ClientReplicaOp, type ReplicaConnection, type TakenReplica
} from './replica-store.js'
import type { DataPlaneMessage, SessionReplicationStats, Stamp, TransferredPacket, TransferredSubscription } from './index.js'

/** What replication needs from the data plane around it. */
export interface ReplicationHost {
  /** Peers whose link is up, the candidates for holding replicas. */
  upPeers: () => string[]
  /** Sends a control message to a peer over its reliable link. */
  send: (peer: string, m: DataPlaneMessage) => void
  /** The session's outgoing queue as stored here (a copy). */
  queueOf: (clientId: string) => StoredPacket[]
  /** When the session was last connected here (HLC). */
  stampOf: (clientId: string) => Stamp
  /** ReplicaSnapshot.after: how far this node has handed each peer link's messages to its broker. */
  watermarks: () => Record<string, number>
  connectedHere: (clientId: string) => boolean
  /** Publishes a will owed by a client whose home died (forwarded to peers like any publish). */
  publishWill: (clientId: string, will: TransferredPacket) => void
  /** Ends a promoted session whose expiry interval passed. */
  expire: (clientId: string) => Promise<void>
}


export class SessionReplication {
  /** Replicas of sessions whose home is another node. */
  readonly replicas: ReplicaStore
  private readonly host: ReplicationHost
  private readonly log: Logger
  // The home side: what a snapshot needs, kept as the persistence changes.
  private readonly subscriptions = new Map<string, Map<string, TransferredSubscription>>()
  private readonly wills = new Map<string, TransferredPacket>()
  private readonly connections = new Map<string, ReplicaConnection>()
  /** The holder of each replicated session's copy. */
  private readonly holders = new Map<string, string>()
  private readonly outbox = new Map<string, ClientReplicaOp[]>()
  private flushScheduled = false
  // Timers of promoted sessions: wills owed, expiries.
  private readonly willTimers = new Map<string, NodeJS.Timeout>()
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>()
  private stopped = false
  private readonly counters = { opsSent: 0, opsApplied: 0, promoted: 0, willsPublished: 0 }

  constructor (options: { host: ReplicationHost, log: Logger, maxQueuedPerSession: number }) {
    this.host = options.host
    this.log = options.log
    this.replicas = new ReplicaStore(options.maxQueuedPerSession)
  }

  stats (): Omit<SessionReplicationStats, 'rescued'> {
    return { replicasHeld: this.replicas.size, replicaQueued: this.replicas.queued, replicatedSessions: this.holders.size, opsIgnored: this.replicas.ignored, ...this.counters }
  }

  stop (): void {
    this.stopped = true
    for (const t of this.willTimers.values()) clearTimeout(t)
    for (const t of this.expiryTimers.values()) clearTimeout(t)
    this.willTimers.clear()
    this.expiryTimers.clear()
    this.flush()
  }

  // ---- the home side: persistence changes become operations ------------------------------

  subscribed (clientId: string, subs: Array<{ topic: string, qos: number, [k: string]: unknown }>): void {
    let mine = this.subscriptions.get(clientId)
    if (mine === undefined) { mine = new Map(); this.subscriptions.set(clientId, mine) }
    const added: TransferredSubscription[] = []
    for (const { clientId: _c, ...sub } of subs) { mine.set(sub.topic, sub); added.push(sub) }
    if (this.ensureHolder(clientId) === 'existing') this.queue(clientId, { op: 'subscribe', subscriptions: added })
  }

  unsubscribed (clientId: string, topics: string[]): void {
    const mine = this.subscriptions.get(clientId)
    for (const t of topics) mine?.delete(t)
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'unsubscribe', topics })
  }

  /** The session ended here (clean start, expiry, moved away): its replica goes too. */
  ended (clientId: string): void {
    this.subscriptions.delete(clientId)
    this.wills.delete(clientId)
    this.connections.delete(clientId)
    if (this.holders.has(clientId)) {
      this.queue(clientId, { op: 'drop' })
      this.log.debug({ client: clientId, holder: this.holders.get(clientId) }, 'session ended here: replica dropped')
      this.holders.delete(clientId)
    }
  }

  /** `source`: which send from a peer the message came in (DataPlane.sourceOf), for rescues. */
  enqueued (clientId: string, packet: StoredPacket, source?: string): void {
    if (this.ensureHolder(clientId) === 'existing') this.queue(clientId, { op: 'enqueue', packet: transferable(packet), ...(source === undefined ? {} : { source }) })
  }

  /** The stored subscriptions of a session at home here. */
  subscriptionsOf (clientId: string): TransferredSubscription[] {
    return [...(this.subscriptions.get(clientId)?.values() ?? [])]
  }

  updated (clientId: string, packet: StoredPacket): void {
    if (!this.holders.has(clientId) || typeof packet.messageId !== 'number') return
    const pubrel = packet.cmd === 'pubrel'
    this.queue(clientId, { op: 'update', messageId: packet.messageId, pubrel, ...(pubrel ? {} : { brokerId: packet.brokerId, brokerCounter: packet.brokerCounter }) })
  }

  cleared (clientId: string, messageId: number): void {
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'clear', messageId })
  }

  willStored (clientId: string, will: StoredPacket): void {
    const w = transferable(will)
    this.wills.set(clientId, w)
    if (this.ensureHolder(clientId) === 'existing') this.queue(clientId, { op: 'will', will: w })
  }

  willDeleted (clientId: string): void {
    if (!this.wills.delete(clientId)) return
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'will', will: null })
  }

  connected (clientId: string): void {
    this.clientSeen(clientId, true)
    const c: ReplicaConnection = { connected: true }
    this.connections.set(clientId, c)
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'connection', connection: c, stamp: this.host.stampOf(clientId) })
  }

  /** `expiry`: the Session Expiry Interval in seconds (0: the session ends now). */
  disconnected (clientId: string, expiry: number): void {
    const c: ReplicaConnection = { connected: false, disconnectedAt: Date.now(), expiry }
    this.connections.set(clientId, c)
    if (expiry === 0) {
      // The session ends with the connection: aedes publishes the will (or
      // not, for a DISCONNECT) and wipes what is left; the replica goes now.
      this.ended(clientId)
      return
    }
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'connection', connection: c })
  }

  /** A session arrived here whole (moved, handed off, promoted): its replica starts over. */
  resync (clientId: string): void {
    this.holders.delete(clientId)
    this.ensureHolder(clientId)
  }

  /** A peer's link came up: sessions without a holder (no peer until now) get one. */
  peerUp (): void {
    for (const clientId of this.homeSessions()) if (!this.holders.has(clientId)) this.ensureHolder(clientId)
  }

  /** A peer went away (link dropped for good, or declared dead): its sessions get a new holder. */
  peerGone (peer: string): void {
    this.outbox.delete(peer)
    for (const [clientId, holder] of [...this.holders]) {
      if (holder !== peer) continue
      this.holders.delete(clientId)
      this.ensureHolder(clientId)
    }
  }

  /** Client ids with state here worth replicating. */
  private homeSessions (): Set<string> {
    const ids = new Set<string>()
    for (const [id, subs] of this.subscriptions) if (subs.size > 0) ids.add(id)
    for (const id of this.wills.keys()) ids.add(id)
    return ids
  }

  /**
   * Makes sure the session has a holder; a new holder gets a snapshot of the
   * whole session, which already contains the change being made.
   */
  private ensureHolder (clientId: string): 'existing' | 'new' | 'none' {
    if (this.holders.has(clientId)) return 'existing'
    const peers = this.host.upPeers()
    if (peers.length === 0 || this.stopped) return 'none'
    const holder = rendezvous(clientId, peers)
    this.holders.set(clientId, holder)
    this.log.debug({ client: clientId, holder }, 'session replica holder chosen')
    const c = this.connections.get(clientId) ?? { connected: false }
    this.queue(clientId, {
      op: 'snapshot',
      snapshot: {
        ...c,
        stamp: this.host.stampOf(clientId),
        after: this.host.watermarks(),
        subscriptions: [...(this.subscriptions.get(clientId)?.values() ?? [])],
        queue: this.host.queueOf(clientId).map(transferable),
        will: this.wills.get(clientId) ?? null
      }
    })
    return 'new'
  }

  private queue (clientId: string, op: ReplicaOp): void {
    const holder = this.holders.get(clientId)
    if (holder === undefined) return
    let ops = this.outbox.get(holder)
    if (ops === undefined) { ops = []; this.outbox.set(holder, ops) }
    ops.push({ ...op, clientId } as ClientReplicaOp)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => this.flush())
    }
  }

  /** Everything changed in one turn of the event loop leaves in one message per holder. */
  private flush (): void {
    this.flushScheduled = false
    for (const [peer, ops] of this.outbox) {
      this.counters.opsSent += ops.length
      this.host.send(peer, { kind: 'replica', ops })
    }
    this.outbox.clear()
  }

  // ---- the holder side ---------------------------------------------------------------------

  /** Operations from a home node, in order. */
  apply (from: string, ops: ClientReplicaOp[]): void {
    for (const op of ops) {
      if (op.op === 'snapshot' || op.op === 'drop') this.log.debug({ client: op.clientId, from, op: op.op }, 'session replica op')
      this.replicas.apply(from, op)
    }
    this.counters.opsApplied += ops.length
  }

  /**
   * A home node died: its replicas here become sessions of this node. Returns
   * them for the data plane to store (subscriptions and queue); the wills
   * owed and the expiries are timed here.
   */
  promote (deadPeer: string): Array<{ clientId: string, replica: TakenReplica }> {
    const out: Array<{ clientId: string, replica: TakenReplica }> = []
    const now = Date.now()
    for (const clientId of this.replicas.ownedBy(deadPeer)) {
      const replica = this.replicas.take(clientId)!
      out.push({ clientId, replica })
      this.counters.promoted++
      const ended: ReplicaConnection = { connected: false, disconnectedAt: replica.connected ? now : replica.disconnectedAt, expiry: replica.expiry }
      this.connections.set(clientId, ended)
      const willAt = willDueAt(replica, now)
      if (willAt !== undefined && replica.will !== null) {
        this.wills.set(clientId, replica.will)
        this.armWill(clientId, replica.will, willAt - now)
      }
      const expiresAt = sessionExpiresAt(replica, now)
      if (expiresAt !== undefined) this.armExpiry(clientId, expiresAt - now)
    }
    return out
  }

  /**
   * The client connected, here or on a peer (`here` false): a will owed for
   * it is cancelled, its session no longer expires. (Connected here, aedes
   * replaced the will already: delWill, then putWill of the new one.)
   */
  clientSeen (clientId: string, here: boolean): void {
    const w = this.willTimers.get(clientId)
    if (w !== undefined) {
      clearTimeout(w)
      this.willTimers.delete(clientId)
      if (!here) this.willDeleted(clientId)
    }
    const e = this.expiryTimers.get(clientId)
    if (e !== undefined) {
      clearTimeout(e)
      this.expiryTimers.delete(clientId)
    }
  }

  private armWill (clientId: string, will: TransferredPacket, delayMs: number): void {
    clearTimeout(this.willTimers.get(clientId))
    const timer = setTimeout(() => {
      this.willTimers.delete(clientId)
      if (this.stopped || this.host.connectedHere(clientId)) return
      this.willDeleted(clientId)
      this.counters.willsPublished++
      this.log.info({ client: clientId, topic: will.topic }, 'publishing the will of a client whose node died')
      this.host.publishWill(clientId, will)
      // A client with nothing but a will (a clean session) leaves nothing behind.
      if ((this.subscriptions.get(clientId)?.size ?? 0) === 0 && this.host.queueOf(clientId).length === 0) this.ended(clientId)
    }, Math.max(0, delayMs))
    timer.unref()
    this.willTimers.set(clientId, timer)
  }

  private armExpiry (clientId: string, delayMs: number): void {
    clearTimeout(this.expiryTimers.get(clientId))
    // setTimeout holds at most ~24.8 days; a longer expiry is re-armed when it fires early.
    const step = Math.min(Math.max(0, delayMs), 2 ** 31 - 1)
    const due = Date.now() + Math.max(0, delayMs)
    const timer = setTimeout(() => {
      this.expiryTimers.delete(clientId)
      if (Date.now() < due) { this.armExpiry(clientId, due - Date.now()); return }
      if (this.stopped || this.host.connectedHere(clientId)) return
      this.log.info({ client: clientId }, 'session of a client whose node died expired')
      this.host.expire(clientId).catch((err: Error) => this.log.warn({ client: clientId, err: err.message }, 'expired session not removed'))
    }, step)
    timer.unref()
    this.expiryTimers.set(clientId, timer)
  }
}

type ReplicaOp = ClientReplicaOp extends infer T ? T extends ClientReplicaOp ? Omit<T, 'clientId'> : never : never

/** The peer that ranks highest for this client id (rendezvous hashing): stable while that peer is up. */
export function rendezvous (clientId: string, peers: readonly string[]): string {
  let best = peers[0]!
  let bestScore = ''
  for (const peer of peers) {
    const score = createHash('sha1').update(clientId).update('\u0000').update(peer).digest('hex')
    if (score > bestScore) { best = peer; bestScore = score }
  }
  return best
}

/** A stored packet as it travels: only data fields (aedes' packets may carry callbacks). */
export function transferable (p: StoredPacket): TransferredPacket {
  const out: TransferredPacket = { cmd: p.cmd ?? 'publish' }
  for (const k of ['topic', 'payload', 'qos', 'retain', 'dup', 'messageId', 'brokerId', 'brokerCounter', 'properties', 'messageExpiry', 'msgId'] as const) {
    const v = p[k]
    if (v !== undefined && v !== null) (out as Record<string, unknown>)[k] = v
  }
  if (typeof out.payload === 'string') out.payload = Buffer.from(out.payload)
  return out
}
