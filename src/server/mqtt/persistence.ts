// The persistence seam between aedes and our storage: a wrapper that puts the
// node's resource limits on stored state (retained messages and bytes, queued
// messages per persistent session) in front of an inner aedes persistence
// (aedes-persistence's in-memory one by default). The cluster work wraps or
// replaces the inner store; the limits stay here.
//
// What the wrapper owns itself:
//  - the retained index (topic -> payload bytes), to answer "how many, how
//    big" without asking the inner store, and to refuse a *new* retained topic
//    over the limit (replacing or clearing an existing one always works);
//  - the outgoing queues (QoS 1/2 messages for persistent sessions, queued
//    and in flight: outgoing-queues.ts), bounded: when a session's queue is
//    full the oldest entry is dropped and counted.
// Everything else is delegated unchanged.
import { Readable } from 'node:stream'
import { createRequire } from 'node:module'
import type { LimitName } from './metrics.js'
import { OutgoingQueues, type StoredPacket } from './outgoing-queues.js'

export type { StoredPacket }

export interface PersistedSubscription {
  clientId?: string
  topic: string
  qos: number
  [key: string]: unknown
}

interface ClientRef { id: string, [key: string]: unknown }

/** The async persistence interface aedes 2.0.0-beta.1 calls. */
export interface AedesPersistence {
  setup (broker: unknown): Promise<void>
  storeRetained (packet: StoredPacket): Promise<void>
  createRetainedStream (pattern: string): Readable
  createRetainedStreamCombi (patterns: string[]): Readable
  addSubscriptions (client: ClientRef, subs: PersistedSubscription[]): Promise<void>
  removeSubscriptions (client: ClientRef, topics: string[]): Promise<void>
  subscriptionsByClient (client: ClientRef): Promise<PersistedSubscription[]>
  countOffline (): Promise<{ subsCount: number, clientsCount: number }>
  subscriptionsByTopic (topic: string): Promise<PersistedSubscription[]>
  cleanSubscriptions (client: ClientRef): Promise<void>
  outgoingEnqueue (sub: { clientId: string }, packet: StoredPacket): Promise<void>
  outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: StoredPacket): Promise<void>
  outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void>
  outgoingClearMessageId (client: ClientRef, packet: { messageId?: number | undefined, brokerId?: string, brokerCounter?: number }): Promise<StoredPacket | undefined>
  outgoingStream (client: ClientRef): Readable
  incomingStorePacket (client: ClientRef, packet: StoredPacket): Promise<void>
  incomingGetPacket (client: ClientRef, packet: { messageId?: number | undefined }): Promise<StoredPacket>
  incomingDelPacket (client: ClientRef, packet: { messageId?: number | undefined }): Promise<void>
  putWill (client: ClientRef, packet: StoredPacket): Promise<void>
  getWill (client: ClientRef): Promise<StoredPacket | undefined>
  delWill (client: ClientRef): Promise<StoredPacket | undefined>
  streamWill (brokers?: Record<string, number>): Readable
  getClientList (topic: string): Readable
  destroy (): Promise<void>
}

export interface PersistenceLimits {
  /** 0: unlimited. */
  maxRetainedMessages: number
  /** Payload bytes; 0: unlimited. */
  maxRetainedBytes: number
  /** Per persistent session; 0: unlimited. */
  maxQueuedMessages: number
}

const require = createRequire(import.meta.url)

/** aedes-persistence's in-memory store (the async class aedes 2 expects). */
export function memoryPersistence (): AedesPersistence {
  // The package's main export wraps the same class in a callback adapter that
  // aedes 2 does not need; the async class is the store itself.
  const MemoryPersistence = require('aedes-persistence/asyncPersistence.js') as new () => AedesPersistence
  return new MemoryPersistence()
}

export class LimitedPersistence implements AedesPersistence {
  readonly inner: AedesPersistence
  private readonly limits: PersistenceLimits
  private readonly onReject: (limit: LimitName) => void
  private readonly retained = new Map<string, number>()
  private retainedBytesTotal = 0
  private readonly outgoing: OutgoingQueues

  constructor (options: { inner?: AedesPersistence, limits: PersistenceLimits, onReject?: (limit: LimitName) => void }) {
    this.inner = options.inner ?? memoryPersistence()
    this.limits = options.limits
    this.onReject = options.onReject ?? (() => {})
    this.outgoing = new OutgoingQueues(this.limits.maxQueuedMessages, () => this.onReject('queued_messages'))
  }

  get retainedCount (): number { return this.retained.size }
  get retainedBytes (): number { return this.retainedBytesTotal }
  /** QoS 1/2 messages held for persistent sessions, in flight or waiting. */
  get queuedCount (): number { return this.outgoing.count }
  queuedFor (clientId: string): number { return this.outgoing.countFor(clientId) }
  /** Where a session's queue holds this message (by stamp) not yet sent: its index, or -1. */
  waitingAt (clientId: string, packet: { brokerId?: string | undefined, brokerCounter?: number | undefined }): number { return this.outgoing.waiting(clientId, packet) }

  // aedes checks that setup is a native async function.
  async setup (broker: unknown): Promise<void> {
    await this.inner.setup(broker)
  }

  async storeRetained (packet: StoredPacket): Promise<void> {
    const topic = packet.topic
    const size = packet.payload.length
    const previous = this.retained.get(topic)
    if (size === 0) {
      // Clearing always works. [MQTT-3.3.1-6]
      if (previous !== undefined) {
        this.retained.delete(topic)
        this.retainedBytesTotal -= previous
      }
      return await this.inner.storeRetained(packet)
    }
    if (previous === undefined) {
      // A new topic: refused (not stored, but still delivered live by aedes)
      // when it would cross a limit. Resolving rather than rejecting matters:
      // a rejection would fail the client's PUBLISH and drop its connection.
      const { maxRetainedMessages, maxRetainedBytes } = this.limits
      if (maxRetainedMessages > 0 && this.retained.size >= maxRetainedMessages) {
        this.onReject('retained_messages')
        return
      }
      if (maxRetainedBytes > 0 && this.retainedBytesTotal + size > maxRetainedBytes) {
        this.onReject('retained_bytes')
        return
      }
    }
    // Replacing an existing topic always works, even if it grows past the
    // byte limit: an operator would rather see a fresh value than a stale one.
    this.retained.set(topic, size)
    this.retainedBytesTotal += size - (previous ?? 0)
    await this.inner.storeRetained(packet)
  }

  // Plain delegations return the inner promise itself: an async wrapper would
  // add promise allocations and microtask hops to every QoS 1/2 publish.
  createRetainedStream (pattern: string): Readable { return this.inner.createRetainedStream(pattern) }
  createRetainedStreamCombi (patterns: string[]): Readable { return this.inner.createRetainedStreamCombi(patterns) }
  addSubscriptions (client: ClientRef, subs: PersistedSubscription[]): Promise<void> { return this.inner.addSubscriptions(client, subs) }
  removeSubscriptions (client: ClientRef, topics: string[]): Promise<void> { return this.inner.removeSubscriptions(client, topics) }
  subscriptionsByClient (client: ClientRef): Promise<PersistedSubscription[]> { return this.inner.subscriptionsByClient(client) }
  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> { return await this.inner.countOffline() }
  subscriptionsByTopic (topic: string): Promise<PersistedSubscription[]> { return this.inner.subscriptionsByTopic(topic) }
  cleanSubscriptions (client: ClientRef): Promise<void> { return this.inner.cleanSubscriptions(client) }

  // --- outgoing queues (outgoing-queues.ts)

  async outgoingEnqueue (sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    this.outgoing.enqueue(sub.clientId, packet)
  }

  async outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    // One entry per matching subscription, as the memory store does: aedes'
    // live delivery relies on it (see OutgoingQueues.replay).
    for (const sub of subs) this.outgoing.enqueue(sub.clientId, packet)
  }

  async outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void> {
    this.outgoing.update(client.id, packet)
  }

  async outgoingClearMessageId (client: ClientRef, packet: { messageId?: number | undefined, brokerId?: string, brokerCounter?: number }): Promise<StoredPacket | undefined> {
    return this.outgoing.clear(client.id, packet)
  }

  outgoingStream (client: ClientRef): Readable {
    return Readable.from(this.outgoing.replay(client.id))
  }

  // --- a session moving to another node (cluster data plane, session-transfer.ts)

  /** Copies of a session's outgoing queue (waiting and in-flight PUBLISHes, pending PUBRELs), oldest first. */
  exportQueue (clientId: string): StoredPacket[] { return this.outgoing.export(clientId) }

  /** Queues a message for a session before the first entry `before` accepts (at the end if none does). */
  enqueueBefore (clientId: string, packet: StoredPacket, before: (entry: StoredPacket) => boolean): void { this.outgoing.enqueue(clientId, packet, before) }

  /** Appends entries moved from another node, keeping their packet identifiers (OutgoingQueues.import). */
  importQueue (clientId: string, packets: StoredPacket[]): void { this.outgoing.import(clientId, packets) }

  /** Deletes a session's outgoing queue (it moved to another node); returns how many entries it held. */
  dropQueue (clientId: string): number { return this.outgoing.drop(clientId) }

  incomingStorePacket (client: ClientRef, packet: StoredPacket): Promise<void> { return this.inner.incomingStorePacket(client, packet) }
  incomingGetPacket (client: ClientRef, packet: { messageId?: number | undefined }): Promise<StoredPacket> { return this.inner.incomingGetPacket(client, packet) }
  incomingDelPacket (client: ClientRef, packet: { messageId?: number | undefined }): Promise<void> { return this.inner.incomingDelPacket(client, packet) }
  putWill (client: ClientRef, packet: StoredPacket): Promise<void> { return this.inner.putWill(client, packet) }
  getWill (client: ClientRef): Promise<StoredPacket | undefined> { return this.inner.getWill(client) }
  delWill (client: ClientRef): Promise<StoredPacket | undefined> { return this.inner.delWill(client) }
  streamWill (brokers?: Record<string, number>): Readable { return this.inner.streamWill(brokers) }
  getClientList (topic: string): Readable { return this.inner.getClientList(topic) }

  async destroy (): Promise<void> {
    this.outgoing.clearAll()
    this.retained.clear()
    this.retainedBytesTotal = 0
    await this.inner.destroy()
  }
}
