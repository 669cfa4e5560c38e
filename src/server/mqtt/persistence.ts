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
//    and in flight), with the same semantics as aedes-persistence's memory
//    store plus a bound: when a session's queue is full the oldest entry is
//    dropped and counted.
// Everything else is delegated unchanged.
import { Readable } from 'node:stream'
import { createRequire } from 'node:module'
import type { LimitName } from './metrics.js'

/** An aedes packet as the persistence sees it (aedes-packet plus MQTT fields). */
export interface StoredPacket {
  cmd?: string
  topic: string
  payload: Buffer
  qos?: number
  retain?: boolean
  messageId?: number | undefined
  brokerId?: string
  brokerCounter?: number
  properties?: Record<string, unknown>
  messageExpiry?: number
  [key: string]: unknown
}

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
  outgoingClearMessageId (client: ClientRef, packet: { messageId?: number | undefined }): Promise<StoredPacket | undefined>
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

const AedesPacket = require('aedes-packet') as new (original: StoredPacket) => StoredPacket

/**
 * A copy for the queue, as the memory store makes: aedes assigns packet
 * identifiers per delivery on the objects it holds, so a queued entry must not
 * be shared between sessions (aedes-packet also resets messageId).
 */
function queued (packet: StoredPacket): StoredPacket {
  return new AedesPacket(packet)
}

export class LimitedPersistence implements AedesPersistence {
  readonly inner: AedesPersistence
  private readonly limits: PersistenceLimits
  private readonly onReject: (limit: LimitName) => void
  private readonly retained = new Map<string, number>()
  private retainedBytesTotal = 0
  private readonly outgoing = new Map<string, StoredPacket[]>()
  private queuedTotal = 0

  constructor (options: { inner?: AedesPersistence, limits: PersistenceLimits, onReject?: (limit: LimitName) => void }) {
    this.inner = options.inner ?? memoryPersistence()
    this.limits = options.limits
    this.onReject = options.onReject ?? (() => {})
  }

  get retainedCount (): number { return this.retained.size }
  get retainedBytes (): number { return this.retainedBytesTotal }
  /** QoS 1/2 messages held for persistent sessions, in flight or waiting. */
  get queuedCount (): number { return this.queuedTotal }
  queuedFor (clientId: string): number { return this.outgoing.get(clientId)?.length ?? 0 }

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

  // --- outgoing queues (the semantics of aedes-persistence's memory store, bounded)

  private enqueue (clientId: string, packet: StoredPacket): void {
    let queue = this.outgoing.get(clientId)
    if (queue === undefined) {
      queue = []
      this.outgoing.set(clientId, queue)
    }
    const max = this.limits.maxQueuedMessages
    if (max > 0 && queue.length >= max) {
      // Oldest first: the newest state is worth more to a reconnecting
      // subscriber than the oldest backlog.
      queue.shift()
      this.queuedTotal--
      this.onReject('queued_messages')
    }
    queue.push(queued(packet))
    this.queuedTotal++
  }

  async outgoingEnqueue (sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    this.enqueue(sub.clientId, packet)
  }

  async outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    // One entry per matching subscription, as the memory store does: aedes'
    // live delivery relies on it (see outgoingStream for the replay side).
    for (const sub of subs) this.enqueue(sub.clientId, packet)
  }

  async outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void> {
    const queue = this.outgoing.get(client.id) ?? []
    // A PUBREL carries no broker stamp: it is matched by packet identifier
    // alone and replaces its PUBLISH (QoS 2, second phase). aedes-persistence
    // matches on brokerId first, and undefined === undefined makes a PUBREL
    // match an earlier stored PUBREL and rewrite its identifier in place:
    // two PUBRECs handled back to back then send PUBREL N+1 twice and never
    // PUBREL N, and message N is never released to the subscriber.
    // On a reconnect, aedes replays a stored PUBREL through QoSPacket, which
    // stamps this broker's id and a fresh counter on it: a PUBREL is still
    // matched by its identifier alone (otherwise the replay fails with "no
    // such packet", the connection is dropped, and the QoS 2 flow never
    // completes: aedes defect, see docs/data-plane.md).
    if (packet.brokerId === undefined || packet.cmd === 'pubrel') {
      for (let i = 0; i < queue.length; i++) {
        if (queue[i]!.messageId === packet.messageId) {
          queue[i] = packet
          return
        }
      }
      throw new Error('no such packet')
    }
    for (const entry of queue) {
      // Packet identifiers wrap at 65535: only (brokerId, brokerCounter) is unique.
      if (entry.brokerId === packet.brokerId && entry.brokerCounter === packet.brokerCounter) {
        // The message got its packet identifier for this delivery.
        entry.messageId = packet.messageId
        return
      }
    }
    throw new Error('no such packet')
  }

  async outgoingClearMessageId (client: ClientRef, packet: { messageId?: number | undefined }): Promise<StoredPacket | undefined> {
    const queue = this.outgoing.get(client.id)
    if (queue === undefined) return undefined
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!
      if (entry.messageId === packet.messageId) {
        queue.splice(i, 1)
        this.queuedTotal--
        if (queue.length === 0) this.outgoing.delete(client.id)
        return entry
      }
    }
    return undefined
  }

  outgoingStream (client: ClientRef): Readable {
    const queue = this.outgoing.get(client.id)
    if (queue === undefined) return Readable.from([])
    // aedes defect: a session whose subscriptions overlap (`a/#` and `a/b`)
    // gets one queue entry per matching subscription. Live, aedes sends one
    // copy and clears the other; but a session that was offline got every
    // copy on reconnect, and one of them was never cleared. Unsent copies of
    // a message already in the queue are dropped here, before the replay.
    const seen = new Set<string>()
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!
      if (entry.brokerId === undefined || entry.brokerCounter === undefined) continue
      const key = `${entry.brokerId}\u0000${entry.brokerCounter}`
      if (seen.has(key) && entry.messageId === undefined && entry.cmd !== 'pubrel') {
        queue.splice(i--, 1)
        this.queuedTotal--
      } else {
        seen.add(key)
      }
    }
    // A snapshot: aedes clears entries while it streams them.
    return Readable.from([...queue])
  }

  // --- a session moving to another node (cluster data plane, session-transfer.ts)

  /** Copies of a session's outgoing queue (waiting and in-flight PUBLISHes, pending PUBRELs), oldest first. */
  exportQueue (clientId: string): StoredPacket[] {
    return (this.outgoing.get(clientId) ?? []).map((p) => ({ ...p }))
  }

  /**
   * Appends entries moved from another node, keeping their packet identifiers
   * (an in-flight message is resent with the same identifier, a PUBREL
   * matched by it). The queue bound applies as to any enqueue.
   */
  importQueue (clientId: string, packets: StoredPacket[]): void {
    for (const p of packets) {
      if (p.cmd === 'pubrel') {
        this.enqueue(clientId, p)
        const queue = this.outgoing.get(clientId)!
        queue[queue.length - 1] = { ...p }
        continue
      }
      this.enqueue(clientId, p)
      if (p.messageId !== undefined && p.messageId !== null) this.outgoing.get(clientId)!.at(-1)!.messageId = p.messageId
    }
  }

  /** Deletes a session's outgoing queue (it moved to another node); returns how many entries it held. */
  dropQueue (clientId: string): number {
    const n = this.outgoing.get(clientId)?.length ?? 0
    this.outgoing.delete(clientId)
    this.queuedTotal -= n
    return n
  }

  incomingStorePacket (client: ClientRef, packet: StoredPacket): Promise<void> { return this.inner.incomingStorePacket(client, packet) }
  incomingGetPacket (client: ClientRef, packet: { messageId?: number | undefined }): Promise<StoredPacket> { return this.inner.incomingGetPacket(client, packet) }
  incomingDelPacket (client: ClientRef, packet: { messageId?: number | undefined }): Promise<void> { return this.inner.incomingDelPacket(client, packet) }
  putWill (client: ClientRef, packet: StoredPacket): Promise<void> { return this.inner.putWill(client, packet) }
  getWill (client: ClientRef): Promise<StoredPacket | undefined> { return this.inner.getWill(client) }
  delWill (client: ClientRef): Promise<StoredPacket | undefined> { return this.inner.delWill(client) }
  streamWill (brokers?: Record<string, number>): Readable { return this.inner.streamWill(brokers) }
  getClientList (topic: string): Readable { return this.inner.getClientList(topic) }

  async destroy (): Promise<void> {
    this.outgoing.clear()
    this.queuedTotal = 0
    this.retained.clear()
    this.retainedBytesTotal = 0
    await this.inner.destroy()
  }
}
