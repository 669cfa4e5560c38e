// What the session store tells whoever keeps a copy of its sessions (the
// cluster's session replication): one typed interface, in the spirit of
// hashicorp/memberlist's delegate.go. The store calls it after each change
// it made, in order; a method that returns a promise makes the aedes
// operation behind the change wait for it (that is how an acknowledgement
// to a publisher, or a QoS 2 packet to a subscriber, waits until a second
// node holds the state it depends on). Nothing here may throw.
import type { StoredPacket } from './outgoing-queues.js'

export interface StoredSubscription {
  topic: string
  qos: number
  [key: string]: unknown
}

export interface PersistenceObserver {
  /** A local retained write (or clear) was stored; the PUBACK waits for the promise. */
  retained (packet: StoredPacket): Promise<void> | undefined
  /** Subscriptions a persistent session stored (added or replaced); the SUBACK waits for the promise. */
  subscribed (clientId: string, subs: readonly StoredSubscription[]): Promise<void> | undefined
  /** The UNSUBACK waits for the promise. */
  unsubscribed (clientId: string, topics: readonly string[]): Promise<void> | undefined
  /** Everything of a session is gone from the store: a clean start, its expiry, or it moved to another node. */
  ended (clientId: string): Promise<void> | undefined
  /**
   * A message was queued for a session at position `at` (undefined: at the
   * end). Resolves when the message may be delivered and acknowledged to its
   * publisher.
   */
  queued (clientId: string, entry: StoredPacket, at: number | undefined): Promise<void> | undefined
  /** An entry got its packet identifier and is about to be sent; for QoS 2 the send waits for the promise. */
  sent (clientId: string, entry: StoredPacket): Promise<void> | undefined
  /** The client answered PUBREC: the entry under `messageId` is now a PUBREL, which waits for the promise. */
  released (clientId: string, messageId: number): Promise<void> | undefined
  /** An entry left the queue: acknowledged (messageId), or dropped (stamp) by a limit or a refused forward. */
  cleared (clientId: string, ref: { messageId?: number | undefined, stamp?: string | undefined }): void
  willStored (clientId: string, will: StoredPacket): void
  willDeleted (clientId: string): void
  /** A QoS 2 PUBLISH from the client was received, stamped (it is published, and PUBREC follows, once the promise resolves). */
  incomingStored (clientId: string, packet: StoredPacket): Promise<void> | undefined
  /**
   * Its PUBREL arrived: the identifier is free again. `kept`: the entry as it
   * is remembered a while (persistence.ts, RELEASED_MEMORY_MS), to be held
   * in its place; without it, the entry is gone.
   */
  incomingReleased (clientId: string, messageId: number, kept?: StoredPacket): void
}

/**
 * Two observers as one, told in order (the cluster's first, then the
 * store on disk); what the change waits for is what both ask to wait for.
 */
export function bothObservers (a: PersistenceObserver, b: PersistenceObserver): PersistenceObserver {
  const both = (x: Promise<void> | undefined, y: Promise<void> | undefined): Promise<void> | undefined =>
    x === undefined ? y : y === undefined ? x : Promise.all([x, y]).then(() => {})
  return {
    retained: (packet) => both(a.retained(packet), b.retained(packet)),
    subscribed: (id, subs) => both(a.subscribed(id, subs), b.subscribed(id, subs)),
    unsubscribed: (id, topics) => both(a.unsubscribed(id, topics), b.unsubscribed(id, topics)),
    ended: (id) => both(a.ended(id), b.ended(id)),
    queued: (id, entry, at) => both(a.queued(id, entry, at), b.queued(id, entry, at)),
    sent: (id, entry) => both(a.sent(id, entry), b.sent(id, entry)),
    released: (id, messageId) => both(a.released(id, messageId), b.released(id, messageId)),
    cleared: (id, ref) => { a.cleared(id, ref); b.cleared(id, ref) },
    willStored: (id, will) => { a.willStored(id, will); b.willStored(id, will) },
    willDeleted: (id) => { a.willDeleted(id); b.willDeleted(id) },
    incomingStored: (id, packet) => both(a.incomingStored(id, packet), b.incomingStored(id, packet)),
    incomingReleased: (id, messageId, kept) => { a.incomingReleased(id, messageId, kept); b.incomingReleased(id, messageId, kept) }
  }
}
