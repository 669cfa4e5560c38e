// Session replicas: every session with state worth keeping (a persistent
// session's subscriptions, queue and incoming QoS 2 state; any client's
// will) lives on its home node, the node its client last connected to, and
// is copied to one other node, its replica holder, chosen by rendezvous
// hashing of the client id over the peers whose link is up, sticky while
// that link lives.
//
// Home side: the session store's changes (persistence-observer.ts) become
// operations (replica-store.ts), batched per holder per event-loop turn,
// sent over the reliable link in order. With replicated acknowledgements,
// the store's callers wait for the holder to have them (the link's ACK of
// the message carrying them):
//   - a message queued for a session: before it is delivered, and before
//     its publisher's PUBACK/PUBREC;
//   - a QoS 2 packet identifier, and a PUBREL: before the packet goes to
//     the client, so a session that survives this node resends it under the
//     same identifier (the client then knows it; no second delivery);
//   - a client's QoS 2 PUBLISH (incoming): before its PUBREC, so a resend
//     after a failover is recognised.
// When a holder goes away, every session it held gets a new holder and a
// snapshot, and what waited for the old holder waits for the new one.
//
// Holder side: operations from home nodes are applied to the replica store.
// When a home dies, the holder promotes the replicas (promotion.ts).
import { createHash } from 'node:crypto'
import type { Logger } from '../../../log.js'
import type { SessionStore, StoredPacket } from '../../mqtt/persistence.js'
import { stampOf } from '../../mqtt/message-stamp.js'
import type { StoredSubscription } from '../../mqtt/persistence-observer.js'
import { ReplicaStore, type ClientReplicaOp, type ReplicaConnection, type ReplicaOp } from './replica-store.js'
import type { DataPlaneMessage } from './messages.js'
import type { Stamp } from './hlc.js'
import { checkWill, type TransferredPacket, type TransferredSubscription } from './session-transfer.js'
import type { SessionReplicationStats } from './metrics.js'
import type { LinkSet } from './link-set.js'

// What every connected session's record says: one object for all (nothing changes a record; a new one replaces it).
const CONNECTED: ReplicaConnection = Object.freeze({ connected: true })

export interface ReplicationHost {
  links: LinkSet
  store: SessionStore
  log: Logger
  /** Sends a control message to a peer; returns the link sequence number it got, or undefined. */
  send: (peer: string, m: DataPlaneMessage) => number | undefined
  /** When the session was last connected here (HLC). */
  stampOf: (clientId: string) => Stamp
  /** The session here was taken over from a node believed dead (promotion.ts): its replica yields to the original's. */
  promoted: (clientId: string) => boolean
  /** Wait for holders (cluster.ack_after: replicated). */
  replicatedAcks: boolean
  /** cluster.ack_timeout: longest wait for a holder when none is reachable. */
  ackTimeoutMs: number
  maxQueuedPerSession: number
  /** This node's identity for its replicas: its store's, or its process's without storage (ReplicaSnapshot.home). */
  identity: () => string
}

type Op = ReplicaOp extends infer T ? T extends ReplicaOp ? T : never : never

/** How long a replica holder may be unreachable before its sessions get another (holderDown). */
const HOLDER_DOWN_MS = 500

/**
 * About how many bytes of operations go in one replica message: a turn's
 * changes for one holder (a promotion's snapshots of large queues, say) are
 * split so that no message nears the link's maxMessageBytes.
 */
export const CHUNK_BYTES = 4 * 1024 * 1024

interface Batch {
  ops: ClientReplicaOp[]
  waiters: Array<() => void>
  clientIds: Set<string>
}

export class SessionReplication {
  /** Replicas of sessions whose home is another node. */
  readonly replicas: ReplicaStore
  private readonly host: ReplicationHost
  // The home side: what a snapshot needs, kept as the store changes.
  private readonly subscriptions = new Map<string, Map<string, TransferredSubscription>>()
  private readonly wills = new Map<string, TransferredPacket>()
  private readonly connections = new Map<string, ReplicaConnection>()
  /** Sessions with a QoS 2 publish of their client awaiting its PUBREL. */
  private readonly incoming = new Set<string>()
  /** The holder of each replicated session's copy. */
  private readonly holders = new Map<string, string>()
  /** Told when a session (or a client's will) gets a replica holder (storage: a will on disk notes it). */
  holderChosen: ((clientId: string, holder: string) => void) | undefined
  /** Operations of this turn, per holder. */
  private readonly outbox = new Map<string, Batch>()
  /** Batches sent and not yet acknowledged, per holder, oldest first. */
  private readonly unacked = new Map<string, Array<Batch & { seq: number }>>()
  private flushScheduled = false
  private stopped = false
  /** Holders whose link went down, and when: replaced after HOLDER_DOWN_MS (holderDown). */
  private readonly down = new Map<string, NodeJS.Timeout>()
  /** Sessions whose replica a peer held before we moved it away from there: dropped there when it is back. */
  private readonly former = new Map<string, Set<string>>()
  private readonly counters = { opsSent: 0, opsApplied: 0, promoted: 0, willsPublished: 0 }
  /**
   * What waits for a holder while none can be reached though peers are
   * alive (a cut-off node): released when a session gets a holder (its
   * snapshot carries the change), or after cluster.ack_timeout.
   */
  private readonly noHolder: Array<{ clientIds: ReadonlySet<string>, release: () => void }> = []
  private noHolderTimer: NodeJS.Timeout | undefined

  constructor (host: ReplicationHost) {
    this.host = host
    this.replicas = new ReplicaStore(host.maxQueuedPerSession)
  }

  stats (): Omit<SessionReplicationStats, 'rescued'> {
    return { replicasHeld: this.replicas.size, replicaQueued: this.replicas.queued, replicatedSessions: this.holders.size, opsIgnored: this.replicas.ignored, ...this.counters }
  }

  countPromoted (n: number): void { this.counters.promoted += n }
  countWill (): void { this.counters.willsPublished++ }

  stop (): void {
    this.flush()
    this.stopped = true
    for (const t of this.down.values()) clearTimeout(t)
    this.down.clear()
    this.releaseNoHolder()
  }

  // ---- the home side: store changes become operations -------------------------------------

  subscribed (clientId: string, subs: readonly StoredSubscription[]): void {
    let mine = this.subscriptions.get(clientId)
    if (mine === undefined) { mine = new Map(); this.subscriptions.set(clientId, mine) }
    for (const sub of subs) mine.set(sub.topic, { ...sub })
    if (this.ensureHolder(clientId) === 'existing') this.queue(clientId, { op: 'subscribe', subscriptions: subs.map((s) => ({ ...s })) })
  }

  unsubscribed (clientId: string, topics: readonly string[]): void {
    const mine = this.subscriptions.get(clientId)
    for (const t of topics) mine?.delete(t)
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'unsubscribe', topics: [...topics] })
  }

  /** The session ended here (clean start, expiry, moved away): its replica goes too. */
  ended (clientId: string): void {
    this.subscriptions.delete(clientId)
    this.wills.delete(clientId)
    this.incoming.delete(clientId)
    this.connections.delete(clientId)
    if (this.holders.has(clientId)) {
      this.queue(clientId, { op: 'drop' })
      this.holders.delete(clientId)
    }
  }

  queued (clientId: string, entry: StoredPacket, at: number | undefined): Promise<void> | undefined {
    if (this.ensureHolder(clientId) !== 'existing') return this.waitFor(clientId)
    return this.queue(clientId, { op: 'enqueue', packet: transferable(entry), ...(at === undefined ? {} : { at }) }, this.host.replicatedAcks)
  }

  sent (clientId: string, entry: StoredPacket): Promise<void> | undefined {
    const stamp = stampOf(entry)
    if (!this.holders.has(clientId) || stamp === undefined || entry.messageId === undefined) return undefined
    return this.queue(clientId, { op: 'sent', stamp, messageId: entry.messageId, qos: entry.qos ?? 1 }, this.host.replicatedAcks && entry.qos === 2)
  }

  released (clientId: string, messageId: number): Promise<void> | undefined {
    if (!this.holders.has(clientId)) return undefined
    return this.queue(clientId, { op: 'release', messageId }, this.host.replicatedAcks)
  }

  cleared (clientId: string, ref: { messageId?: number | undefined, stamp?: string | undefined }): void {
    if (!this.holders.has(clientId)) return
    if (ref.messageId !== undefined) this.queue(clientId, { op: 'clear', messageId: ref.messageId })
    else if (ref.stamp !== undefined) this.queue(clientId, { op: 'clear', stamp: ref.stamp })
  }

  willStored (clientId: string, will: StoredPacket): void {
    const w = checkWill(transferable(will))
    this.wills.set(clientId, w)
    if (this.ensureHolder(clientId) === 'existing') this.queue(clientId, { op: 'will', will: w })
  }

  willDeleted (clientId: string): void {
    if (!this.wills.delete(clientId)) return
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'will', will: null })
  }

  incomingStored (clientId: string, packet: StoredPacket): Promise<void> | undefined {
    // A persistent client's own QoS 2 publish is session state, with or without subscriptions.
    this.incoming.add(clientId)
    if (this.ensureHolder(clientId) !== 'existing') return this.waitFor(clientId)
    return this.queue(clientId, { op: 'incoming', messageId: packet.messageId!, packet: transferable(packet) }, this.host.replicatedAcks)
  }

  /** `kept`: the released entry as remembered a while (its replica keeps it too); without it, gone. */
  incomingReleased (clientId: string, messageId: number, kept?: StoredPacket): void {
    if (this.host.store.incomingPackets(clientId).length === 0) this.incoming.delete(clientId)
    if (this.holders.has(clientId)) this.queue(clientId, kept === undefined ? { op: 'incoming', messageId } : { op: 'incoming', messageId, packet: transferable(kept) })
  }

  connected (clientId: string): void {
    this.connections.set(clientId, CONNECTED)
    if (this.holders.has(clientId)) this.queue(clientId, { op: 'connection', connection: CONNECTED, stamp: this.host.stampOf(clientId) })
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

  /** A session arrived here whole (moved, handed off, promoted): its replica starts over. Resolves when it is held. */
  resync (clientId: string): Promise<void> | undefined {
    // Storing it through the session store gave it a holder and a snapshot already (ensureHolder).
    this.ensureHolder(clientId)
    return this.host.replicatedAcks ? this.waitFor(clientId) : undefined
  }

  /** A peer's link came up: sessions that had no holder (no peer until now) get one; stale replicas there go. */
  /** Where the replica of a session (or will) made here is held, if anywhere. */
  holderOf (clientId: string): string | undefined { return this.holders.get(clientId) }

  peerUp (peer: string): void {
    clearTimeout(this.down.get(peer))
    this.down.delete(peer)
    const stale = this.former.get(peer)
    this.former.delete(peer)
    if (stale !== undefined) {
      const ops: ClientReplicaOp[] = []
      for (const clientId of stale) if (this.holders.get(clientId) !== peer) ops.push({ clientId, op: 'drop' })
      if (ops.length > 0) this.host.send(peer, { kind: 'replica', ops })
    }
    for (const clientId of this.homeSessions()) if (!this.holders.has(clientId)) this.ensureHolder(clientId)
  }

  /** The peer's link is gone for good: nothing to drop there any more. */
  forget (peer: string): void { this.former.delete(peer) }

  /** A holder no longer holds these replicas (it gave back sessions it had taken over): they start over there, or elsewhere. */
  replicasLost (peer: string, clientIds: readonly string[]): void {
    for (const clientId of clientIds) {
      if (this.holders.get(clientId) !== peer) continue
      this.holders.delete(clientId)
      this.ensureHolder(clientId)
    }
  }

  /**
   * A holder's link went down. A holder that cannot be reached holds up
   * every QoS 2 delivery of its sessions (their packet identifiers wait to
   * be held): after HOLDER_DOWN_MS without it, its sessions get another
   * holder, as if it had gone; its copies are dropped when it is back.
   */
  holderDown (peer: string): void {
    if (this.down.has(peer) || this.stopped) return
    const timer = setTimeout(() => {
      this.down.delete(peer)
      if (this.host.links.get(peer)?.state === 'up') return
      const moved = [...this.holders].filter(([, h]) => h === peer).length
      if (moved === 0) return
      this.host.log.debug({ peer, sessions: moved }, 'replica holder unreachable: its sessions get another holder')
      this.peerGone(peer)
    }, HOLDER_DOWN_MS)
    timer.unref()
    this.down.set(peer, timer)
  }

  /**
   * A peer went away (declared dead, left, restarted): the sessions it held
   * for us get a new holder and a snapshot; what waited for it waits for the
   * new holder (or nothing, when there is none).
   */
  peerGone (peer: string): void {
    const batches = [...(this.unacked.get(peer) ?? [])]
    const pending = this.outbox.get(peer)
    if (pending !== undefined) batches.push({ ...pending, seq: 0 })
    this.unacked.delete(peer)
    this.outbox.delete(peer)
    let former = this.former.get(peer)
    for (const [clientId, holder] of [...this.holders]) {
      if (holder !== peer) continue
      // It may come back as the same process, still holding the copy: dropped then (peerUp).
      if (former === undefined) { former = new Set(); this.former.set(peer, former) }
      former.add(clientId)
      this.holders.delete(clientId)
      this.ensureHolder(clientId)
    }
    for (const b of batches) {
      for (const w of b.waiters) {
        const moved = [...b.clientIds].map((id) => this.holders.get(id)).find((h) => h !== undefined)
        if (moved !== undefined) this.batchOf(moved).waiters.push(w)
        else this.waitForAnyHolder(b.clientIds, w)
      }
    }
    // The last live peer went: alone in the cluster now, nothing waits for a holder.
    if (this.noHolder.length > 0 && !this.cutOff()) this.releaseNoHolder()
  }

  /** Client ids with state here worth replicating. */
  private homeSessions (): Set<string> {
    const ids = new Set<string>()
    for (const [id, subs] of this.subscriptions) if (subs.size > 0) ids.add(id)
    for (const id of this.wills.keys()) ids.add(id)
    for (const id of this.incoming) ids.add(id)
    return ids
  }

  /**
   * Makes sure the session has a holder; a new holder gets a snapshot of the
   * whole session, which already contains the change being made.
   */
  private ensureHolder (clientId: string): 'existing' | 'new' | 'none' {
    if (this.holders.has(clientId)) return 'existing'
    const peers = this.host.links.upPeers()
    if (peers.length === 0 || this.stopped) return 'none'
    const holder = rendezvous(clientId, peers)
    this.holders.set(clientId, holder)
    this.host.log.debug({ client: clientId, holder }, 'session replica holder chosen')
    this.holderFound(clientId, holder)
    this.holderChosen?.(clientId, holder)
    const c = this.connections.get(clientId) ?? { connected: false }
    const { queue, ledger } = this.host.store.exportQueue(clientId)
    this.queue(clientId, {
      op: 'snapshot',
      snapshot: {
        ...c,
        stamp: this.host.stampOf(clientId),
        subscriptions: [...(this.subscriptions.get(clientId)?.values() ?? [])],
        queue: queue.map(transferable),
        ledger,
        incoming: this.host.store.incomingPackets(clientId).map(transferable),
        will: this.wills.get(clientId) ?? null,
        home: this.host.identity(),
        ...(this.host.promoted(clientId) ? { promoted: true } : {})
      }
    })
    return 'new'
  }

  /** Resolves when the session's pending operations are with its holder (undefined: nothing to wait for). */
  private waitFor (clientId: string): Promise<void> | undefined {
    if (!this.host.replicatedAcks) return undefined
    const holder = this.holders.get(clientId)
    if (holder !== undefined) return new Promise((resolve) => this.batchOf(holder).waiters.push(resolve))
    if (!this.cutOff()) return undefined
    return new Promise((resolve) => this.waitForAnyHolder(new Set([clientId]), resolve))
  }

  /** Peers are alive but none can hold a replica now (every link down). */
  private cutOff (): boolean {
    return !this.stopped && this.host.links.upPeers().length === 0 && this.host.links.alivePeers().length > 0
  }

  /**
   * No holder for these sessions: a change that must be held by a second
   * node (a QoS 2 packet identifier, a PUBREL, a queued message) waits for
   * one while the node is cut off from live peers, at most
   * cluster.ack_timeout; alone in the cluster, it goes at once.
   */
  private waitForAnyHolder (clientIds: ReadonlySet<string>, release: () => void): void {
    if (!this.cutOff()) { release(); return }
    this.noHolder.push({ clientIds, release })
    if (this.noHolderTimer === undefined) {
      this.noHolderTimer = setTimeout(() => {
        this.host.log.warn({ waiting: this.noHolder.length, timeoutMs: this.host.ackTimeoutMs }, 'no peer reachable to hold session changes within cluster.ack_timeout: going on without a replica')
        this.releaseNoHolder()
      }, this.host.ackTimeoutMs)
      this.noHolderTimer.unref()
    }
  }

  private releaseNoHolder (): void {
    clearTimeout(this.noHolderTimer)
    this.noHolderTimer = undefined
    for (const w of this.noHolder.splice(0)) w.release()
  }

  /** A session got a holder (its snapshot carries every change so far): what waited for one waits for that holder. */
  private holderFound (clientId: string, holder: string): void {
    if (this.noHolder.length === 0) return
    const batch = this.batchOf(holder)
    // In their order: a PUBREL waiting here goes before the next PUBLISH.
    const still = this.noHolder.filter((w) => {
      if (!w.clientIds.has(clientId)) return true
      batch.waiters.push(w.release)
      return false
    })
    this.noHolder.splice(0, this.noHolder.length, ...still)
    if (this.noHolder.length === 0) { clearTimeout(this.noHolderTimer); this.noHolderTimer = undefined }
  }

  private batchOf (holder: string): Batch {
    let batch = this.outbox.get(holder)
    if (batch === undefined) {
      batch = { ops: [], waiters: [], clientIds: new Set() }
      this.outbox.set(holder, batch)
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => this.flush())
    }
    return batch
  }

  private queue (clientId: string, op: Op, wait = false): Promise<void> | undefined {
    const holder = this.holders.get(clientId)
    if (holder === undefined) return undefined
    const batch = this.batchOf(holder)
    batch.ops.push({ ...op, clientId } as ClientReplicaOp)
    batch.clientIds.add(clientId)
    if (!wait) return undefined
    return new Promise((resolve) => batch.waiters.push(resolve))
  }

  /** Everything changed in one turn of the event loop leaves in one message per holder. */
  private flush (): void {
    this.flushScheduled = false
    const outbox = [...this.outbox]
    this.outbox.clear()
    for (const [peer, batch] of outbox) {
      this.counters.opsSent += batch.ops.length
      // In order, on one link: the last chunk's acknowledgement covers them all.
      let seq: number | undefined
      for (const ops of replicaChunks(batch.ops)) {
        seq = this.host.send(peer, { kind: 'replica', ops })
        if (seq === undefined) break
      }
      const link = this.host.links.get(peer)
      if (seq === undefined || link === undefined) {
        // Nothing to wait for (no ops), or the holder is gone already: peerGone moves or releases its waiters.
        if (batch.ops.length === 0) for (const w of batch.waiters) w()
        else this.peerGoneLater(peer, batch)
        continue
      }
      if (batch.waiters.length === 0) continue
      const sent = { ...batch, seq }
      let list = this.unacked.get(peer)
      if (list === undefined) { list = []; this.unacked.set(peer, list) }
      list.push(sent)
      link.whenAcked(seq).then((acked) => {
        const l = this.unacked.get(peer)
        const i = l?.indexOf(sent) ?? -1
        if (i < 0) return // moved to another holder meanwhile
        l!.splice(i, 1)
        if (acked) for (const w of sent.waiters) w()
        else this.peerGoneLater(peer, sent)
      }, () => {})
    }
  }

  /** A batch whose holder vanished before it was acknowledged: its waiters follow the sessions' new holder. */
  private peerGoneLater (peer: string, batch: Batch): void {
    for (const w of batch.waiters) {
      const holders = [...batch.clientIds].map((id) => this.holders.get(id)).filter((h) => h !== undefined && h !== peer)
      if (holders.length === 0) w()
      else this.batchOf(holders[0]!).waiters.push(w)
    }
  }

  // ---- the holder side ---------------------------------------------------------------------

  /** Operations from a home node, in order. */
  apply (from: string, ops: ClientReplicaOp[]): void {
    for (const op of ops) {
      if (op.op === 'snapshot' || op.op === 'drop') this.host.log.debug({ client: op.clientId, from, op: op.op }, 'session replica op')
      this.replicas.apply(from, op)
    }
    this.counters.opsApplied += ops.length
  }

  /** The stored subscriptions of a session at home here. */
  subscriptionsOf (clientId: string): TransferredSubscription[] {
    return [...(this.subscriptions.get(clientId)?.values() ?? [])]
  }

  /** The will replicated for a session at home here (promotion stores it when taking a session over). */
  willOf (clientId: string): TransferredPacket | undefined { return this.wills.get(clientId) }

  /** Connection state of a session at home here (for a promoted session: ended at its home's death). */
  setConnection (clientId: string, c: ReplicaConnection): void { this.connections.set(clientId, c) }
  setWill (clientId: string, will: TransferredPacket | null): void {
    if (will === null) this.wills.delete(clientId)
    else this.wills.set(clientId, will)
  }
}

/** The peer ranking highest for the client id (rendezvous hashing): stable while the peer set is. */
export function rendezvous (clientId: string, peers: string[]): string {
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
  for (const k of ['topic', 'payload', 'qos', 'retain', 'dup', 'messageId', 'brokerId', 'brokerCounter', 'properties', 'messageExpiry', 'clientId', 'released'] as const) {
    const v = p[k]
    if (v !== undefined && v !== null) (out as Record<string, unknown>)[k] = v
  }
  if (typeof out.payload === 'string') out.payload = Buffer.from(out.payload)
  return out
}

/** Splits operations into runs of about CHUNK_BYTES (an operation is never split). */
export function replicaChunks (ops: ClientReplicaOp[]): ClientReplicaOp[][] {
  const out: ClientReplicaOp[][] = []
  let run: ClientReplicaOp[] = []
  let bytes = 0
  for (const op of ops) {
    const size = opBytes(op)
    if (run.length > 0 && bytes + size > CHUNK_BYTES) { out.push(run); run = []; bytes = 0 }
    run.push(op)
    bytes += size
  }
  if (run.length > 0) out.push(run)
  return out
}

/** An operation's encoded size, roughly: its payloads in base64 (replica messages are JSON) plus a little for the rest. */
function opBytes (op: ClientReplicaOp): number {
  const packetBytes = (p: TransferredPacket | null | undefined): number => 128 + Math.ceil((p?.payload?.length ?? 0) * 4 / 3)
  switch (op.op) {
    case 'enqueue': return packetBytes(op.packet)
    case 'incoming': return packetBytes(op.packet)
    case 'will': return packetBytes(op.will)
    case 'snapshot': {
      const s = op.snapshot
      let n = 256 + s.subscriptions.length * 64 + s.ledger.length * 48 + packetBytes(s.will)
      for (const p of s.queue) n += packetBytes(p)
      for (const p of s.incoming) n += packetBytes(p)
      return n
    }
    default: return 128
  }
}
