// The session store aedes runs on: aedes' persistence interface, implemented
// as aedes-persistence's memory store (retained messages, subscriptions,
// wills: delegated to it) plus what a cluster needs (outgoing-queues.ts:
// queues with a ledger per session; the incoming QoS 2 identifiers), the
// node's limits on stored state, and one observer (persistence-observer.ts)
// told about every change to a session. It passes aedes-persistence's own
// conformance suite (test/unit/mqtt/persistence-conformance.test.ts).
//
// Two things differ from the memory store, both aedes defects at their root:
// - A message matching several subscriptions of one session is queued once
//   (the memory store queues one entry per subscription, and aedes' replay
//   then sends every copy).
// - A session ends whole: cleanSubscriptions (a clean start, an expiry)
//   also drops its queue and its incoming QoS 2 state, which the memory
//   store keeps forever.
//
// With `replay: 'sender'` (the MQTT server's setting) aedes' own replay at
// CONNECT gets an empty stream: the session sender (session-sender.ts)
// sends queued messages, in order, within the client's window.
import { Readable } from 'node:stream'
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import type { LimitName } from './metrics.js'
import { OutgoingQueues, type StoredPacket } from './outgoing-queues.js'
import { stampOf } from './message-stamp.js'
import { emptyReplay } from './empty-replay.js'
import type { PersistenceObserver, StoredSubscription } from './persistence-observer.js'

export type { StoredPacket }

export interface PersistedSubscription extends StoredSubscription {
  clientId?: string
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

/** A persistent session as it leaves one node for another (or a replica). */
export interface SessionSnapshot {
  subscriptions: StoredSubscription[]
  queue: StoredPacket[]
  ledger: string[]
  /** QoS 2 PUBLISHes from the client awaiting its PUBREL, with their packet identifiers and stamps. */
  incoming: StoredPacket[]
}

/**
 * A QoS 2 PUBLISH from the client awaiting its PUBREL. `imported`: taken
 * over with its session, not published by this node. `transient`: from a
 * clean session, whose state ends with its connection: not a stored
 * session, not replicated. `releasedBy`: the connection whose PUBREL
 * released it (a released entry is remembered a while, see below).
 */
interface IncomingEntry { packet: StoredPacket, imported: boolean, transient: boolean, releasedBy?: object }

/**
 * A released QoS 2 PUBLISH is remembered (its packet carries `released`, the
 * time of its PUBREL, and a digest for its payload) for this long and at most
 * this many per session, and travels with the session. Eclipse Paho Python
 * 1.6 sends a PUBLISH again after its PUBREL when a connection attempt fails
 * before CONNACK (test/conformance/paho-resend-after-pubrel.py): its
 * reconnect reset turns "awaiting PUBCOMP" into "resend PUBREL", and a second
 * reset into "publish". What it resends on a later connection, under the
 * released identifier with the same topic and payload, is published again
 * under the message's stamp, so the subscribers that had it drop it (their
 * ledgers) instead of getting it twice. By MQTT 5 section 4.3.3 it would be a
 * new message; a client that really repeats a message under the same
 * identifier on its next connection within the window loses the repeat for
 * those subscribers (docs/mqtt.md).
 */
export const RELEASED_MEMORY_MS = 30_000
export const RELEASED_MEMORY_MAX = 200

const require = createRequire(import.meta.url)

/** aedes-persistence's in-memory store (the async class aedes 2 expects). */
export function memoryPersistence (): AedesPersistence {
  // The package's main export wraps the same class in a callback adapter that
  // aedes 2 does not need; the async class is the store itself.
  const MemoryPersistence = require('aedes-persistence/asyncPersistence.js') as new () => AedesPersistence
  return new MemoryPersistence()
}

export class SessionStore implements AedesPersistence {
  readonly inner: AedesPersistence
  /** Told about every change to a session (the cluster's session replication). */
  observer: PersistenceObserver | undefined
  /** Told when a session's queue changed (the session sender of its connection pumps). */
  onQueueChange: ((clientId: string) => void) | undefined
  /** 'sender': aedes' replay at CONNECT is the session sender's job (see the top of the file). */
  replay: 'aedes' | 'sender' = 'aedes'
  private readonly limits: PersistenceLimits
  private readonly onReject: (limit: LimitName) => void
  private readonly retained = new Map<string, number>()
  private retainedBytesTotal = 0
  private readonly outgoing: OutgoingQueues
  private readonly incoming = new Map<string, Map<number, IncomingEntry>>()
  /** Client ids with stored subscriptions (the inner store does not say cheaply). */
  private readonly subscribers = new Map<string, Set<string>>()
  /** Gives a message its stamp (message-stamp.ts) before aedes publishes it; set by the MQTT server. */
  stamp: ((packet: StoredPacket) => void) | undefined
  /** Per message stamp, what its acknowledgement waits for (takeHeld). */
  private readonly pendingHolds = new Map<string, Promise<void>>()

  constructor (options: { inner?: AedesPersistence, limits: PersistenceLimits, onReject?: (limit: LimitName) => void }) {
    this.inner = options.inner ?? memoryPersistence()
    this.limits = options.limits
    this.onReject = options.onReject ?? (() => {})
    this.outgoing = new OutgoingQueues(this.limits.maxQueuedMessages, (clientId, entry) => {
      this.onReject('queued_messages')
      this.observer?.cleared(clientId, { stamp: stampOf(entry) })
    })
  }

  get retainedCount (): number { return this.retained.size }
  get retainedBytes (): number { return this.retainedBytesTotal }
  /** QoS 1/2 messages held for persistent sessions, in flight or waiting. */
  get queuedCount (): number { return this.outgoing.count }
  queuedFor (clientId: string): number { return this.outgoing.countFor(clientId) }
  /** The queue, for the session sender and introspection (the live array: read only). */
  queue (clientId: string): readonly StoredPacket[] { return this.outgoing.entries(clientId) }
  /** Whether the session's ledger holds this stamp: the message was queued for it lately (maybe sent already). */
  seen (clientId: string, stamp: string): boolean { return this.outgoing.seen(clientId, stamp) }
  /** Whether this node holds state of the session: stored subscriptions, or queued messages. */
  hasSession (clientId: string): boolean { return this.subscribers.has(clientId) || this.outgoing.countFor(clientId) > 0 || this.storedIncoming(clientId) }
  /** Client ids of the sessions held here. */
  sessions (): string[] { return [...new Set([...this.subscribers.keys(), ...this.outgoing.sessions(), ...[...this.incoming.keys()].filter((id) => this.storedIncoming(id))])] }
  /** A persistent session's own QoS 2 PUBLISHes await their PUBREL (a clean session's do not make it stored). */
  private storedIncoming (clientId: string): boolean {
    for (const e of this.incoming.get(clientId)?.values() ?? []) if (!e.transient && e.packet.released === undefined) return true
    return false
  }
  /** Stored subscription filters of a session (shared-subscription markers included). */
  storedFilters (clientId: string): ReadonlySet<string> { return this.subscribers.get(clientId) ?? new Set() }

  /** The aedes id of this process: a retained publish stamped by another one came from a peer. */
  private localId: string | undefined
  /** The broker given to setup() (aedes-persistence's interface exposes it). */
  broker: unknown

  // aedes checks that setup is a native async function.
  async setup (broker: unknown): Promise<void> {
    this.broker = broker
    this.localId = (broker as { id?: string }).id
    await this.inner.setup(broker)
  }

  // ---- retained messages ------------------------------------------------------------------

  /**
   * A retained publish. One that came from a peer (stamped by another
   * process) is not stored: the cluster applies its replicated entry, last
   * writer wins (applyRetained), and an older publish must not undo that.
   */
  async storeRetained (packet: StoredPacket): Promise<void> {
    if (packet.brokerId !== undefined && this.localId !== undefined && packet.brokerId !== this.localId && !packet.topic.startsWith('$SYS/')) return
    await this.applyRetained(packet)
    const wait = packet.topic.startsWith('$SYS/') ? undefined : this.observer?.retained(packet)
    if (wait !== undefined) await wait
  }

  /** Stores a retained message (or clears it: empty payload) within the limits, telling nobody. */
  async applyRetained (packet: StoredPacket): Promise<void> {
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

  // ---- subscriptions ---------------------------------------------------------------------------

  async addSubscriptions (client: ClientRef, subs: PersistedSubscription[]): Promise<void> {
    await this.inner.addSubscriptions(client, subs)
    let mine = this.subscribers.get(client.id)
    if (mine === undefined) { mine = new Set(); this.subscribers.set(client.id, mine) }
    for (const s of subs) mine.add(s.topic)
    // With storage.sync always, the SUBACK waits for the subscription on disk.
    await this.observer?.subscribed(client.id, subs.map(({ clientId: _c, ...sub }) => sub))
  }

  async removeSubscriptions (client: ClientRef, topics: string[]): Promise<void> {
    await this.inner.removeSubscriptions(client, topics)
    const mine = this.subscribers.get(client.id)
    for (const t of topics) mine?.delete(t)
    if (mine?.size === 0) this.subscribers.delete(client.id)
    await this.observer?.unsubscribed(client.id, topics)
  }

  subscriptionsByClient (client: ClientRef): Promise<PersistedSubscription[]> { return this.inner.subscriptionsByClient(client) }
  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> { return await this.inner.countOffline() }
  subscriptionsByTopic (topic: string): Promise<PersistedSubscription[]> { return this.inner.subscriptionsByTopic(topic) }

  /** The end of a session (a clean start, its expiry): its subscriptions, queue and incoming state go. */
  async cleanSubscriptions (client: ClientRef): Promise<void> {
    await this.inner.cleanSubscriptions(client)
    this.subscribers.delete(client.id)
    this.outgoing.drop(client.id)
    this.incoming.delete(client.id)
    // With storage.sync always, a clean start's CONNACK waits for the old session's deletion on disk.
    await this.observer?.ended(client.id)
  }

  // ---- outgoing queues (outgoing-queues.ts) ----------------------------------------------------

  async outgoingEnqueue (sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    await this.enqueueFor(sub.clientId, packet).held
  }

  /**
   * aedes queues a message for the stored sessions whose subscriptions match
   * it, before it delivers it live. The message may be delivered at once;
   * what the observer asks to wait for (a second node holding it) is kept by
   * the message's stamp for whoever acknowledges it (takeHeld): waiting here
   * would hold up its live delivery to everybody behind one slow replica.
   */
  async outgoingEnqueueCombi (subs: Array<{ clientId: string, nl?: boolean }>, packet: StoredPacket): Promise<void> {
    if (subs.length === 0) return
    // Once per session, however many of its subscriptions match; not for a
    // no-local subscription's own message unless another subscription wants it.
    const wanted = new Map<string, boolean>()
    for (const sub of subs) {
      const own = sub.nl === true && packet.clientId === sub.clientId
      wanted.set(sub.clientId, (wanted.get(sub.clientId) ?? false) || !own)
    }
    const waits: Array<Promise<void>> = []
    for (const [clientId, want] of wanted) {
      if (!want) continue
      const { held } = this.enqueueFor(clientId, packet)
      if (held !== undefined) waits.push(held)
    }
    const stamp = stampOf(packet)
    if (waits.length === 0 || stamp === undefined) return
    const all = Promise.all(waits).then(() => { if (this.pendingHolds.get(stamp) === all) this.pendingHolds.delete(stamp) })
    this.pendingHolds.set(stamp, all)
  }

  /**
   * What acknowledging the message with this stamp must wait for: its
   * queued copies held by a second node (see outgoingEnqueueCombi), or
   * undefined when nothing is pending.
   */
  takeHeld (stamp: string | undefined): Promise<void> | undefined {
    if (stamp === undefined) return undefined
    const p = this.pendingHolds.get(stamp)
    this.pendingHolds.delete(stamp)
    return p
  }

  /**
   * Queues a message for a session unless its ledger says it was queued
   * already, in its sender's order (outgoing-queues.ts). `held`: what the
   * observer asks to wait for before the message may be delivered.
   */
  enqueueFor (clientId: string, packet: StoredPacket): { queued: boolean, held: Promise<void> | undefined } {
    const entry = this.outgoing.enqueue(clientId, packet)
    if (entry === undefined) return { queued: false, held: undefined }
    const entries = this.outgoing.entries(clientId)
    const at = entries[entries.length - 1] === entry ? undefined : entries.indexOf(entry)
    const held = this.observer?.queued(clientId, entry, at)
    this.onQueueChange?.(clientId)
    return { queued: true, held }
  }

  /**
   * A queued message (by stamp) gets packet identifier `messageId` for its
   * delivery. Resolves when it may be written (a QoS 2 identifier is held by
   * a second node first); rejects with "no such packet" when it is not queued.
   */
  async assign (clientId: string, stamp: string, messageId: number): Promise<StoredPacket> {
    const entry = this.outgoing.assign(clientId, stamp, messageId)
    if (entry === undefined) throw new Error('no such packet')
    const wait = this.observer?.sent(clientId, entry)
    if (wait !== undefined) await wait
    return entry
  }

  async outgoingUpdate (client: ClientRef, packet: StoredPacket): Promise<void> {
    // A PUBREL (QoS 2, second phase) replaces its PUBLISH, matched by packet
    // identifier alone: on a reconnect aedes replays a stored PUBREL through
    // QoSPacket, which stamps this broker's id and a fresh counter on it.
    // None is queued under it for a QoS 2 message that was never queued (a
    // retained message sent on SUBSCRIBE): nothing to record, and aedes
    // still answers the client's PUBREC with the PUBREL it waits for
    // (rejecting would close the connection, the message undelivered).
    if (packet.cmd === 'pubrel') {
      if (packet.messageId === undefined) throw new Error('no such packet')
      if (!this.outgoing.release(client.id, packet)) return
      const wait = this.observer?.released(client.id, packet.messageId)
      if (wait !== undefined) await wait
      return
    }
    const stamp = stampOf(packet)
    if (stamp === undefined || packet.messageId === undefined) throw new Error('no such packet')
    const current = this.outgoing.find(client.id, stamp)
    if (current === undefined) throw new Error('no such packet')
    if (current.messageId === packet.messageId) return
    await this.assign(client.id, stamp, packet.messageId)
  }

  async outgoingClearMessageId (client: ClientRef, packet: { messageId?: number | undefined, brokerId?: string, brokerCounter?: number }): Promise<StoredPacket | undefined> {
    const entry = this.outgoing.clear(client.id, packet)
    if (entry !== undefined) {
      this.observer?.cleared(client.id, packet.messageId === undefined ? { stamp: stampOf(packet) } : { messageId: packet.messageId })
      this.onQueueChange?.(client.id)
    }
    return entry
  }

  outgoingStream (client: ClientRef): Readable {
    if (this.replay === 'sender') return emptyReplay()
    return Readable.from(this.outgoing.entries(client.id).map((p) => ({ ...p })))
  }

  // ---- a session leaving or arriving (cluster data plane) -----------------------------------------

  /** A session's queue (copies) and ledger, now (replica snapshots). */
  exportQueue (clientId: string): { queue: StoredPacket[], ledger: string[] } { return this.outgoing.export(clientId) }

  /** Packet identifiers of the client's QoS 2 PUBLISHes awaiting PUBREL. */
  incomingIds (clientId: string): number[] { return [...(this.incoming.get(clientId) ?? [])].filter(([, e]) => e.packet.released === undefined).map(([id]) => id) }
  /**
   * The client's QoS 2 PUBLISHes awaiting PUBREL, stamped, and those released
   * lately (`released` set, payload a digest): what travels with the session
   * (the live entries: read only).
   */
  incomingPackets (clientId: string): StoredPacket[] { return [...(this.incoming.get(clientId)?.values() ?? [])].map((e) => e.packet) }

  /** Everything of a session that travels, read from the store. */
  async exportSession (clientId: string): Promise<SessionSnapshot> {
    const subscriptions = (await this.inner.subscriptionsByClient({ id: clientId })).map(({ clientId: _c, ...sub }) => sub)
    const { queue, ledger } = this.outgoing.export(clientId)
    return { subscriptions, queue, ledger, incoming: this.incomingPackets(clientId) }
  }

  /**
   * Stores a session that moved here (replacing any copy held), through the
   * observer like any change: its queue first, so a message arriving while
   * its subscriptions are added finds the ledger complete.
   */
  async importSession (clientId: string, session: SessionSnapshot): Promise<void> {
    // What was queued here for the copy being replaced and the arriving copy
    // never had (a stale copy still routed to while the newer one was made
    // elsewhere) is queued again after the import: replacing a copy must not
    // drop a message only it held. The ledgers keep anything from coming twice.
    const leftover = this.outgoing.unknownTo(clientId, session.ledger)
    if (this.hasSession(clientId) || this.incoming.has(clientId)) await this.cleanSubscriptions({ id: clientId })
    this.outgoing.import(clientId, session.queue, session.ledger)
    if (session.incoming.length > 0) {
      this.incoming.set(clientId, new Map(session.incoming.map((packet) => [packet.messageId!, { packet, imported: true, transient: false }])))
    }
    if (session.subscriptions.length > 0) await this.addSubscriptions({ id: clientId }, session.subscriptions)
    for (const p of leftover) this.enqueueFor(clientId, p)
    this.onQueueChange?.(clientId)
  }

  // ---- incoming QoS 2 ---------------------------------------------------------------------------

  async incomingStorePacket (client: ClientRef, packet: StoredPacket): Promise<void> {
    if (packet.messageId === undefined) return
    let mine = this.incoming.get(client.id)
    if (mine === undefined) { mine = new Map(); this.incoming.set(client.id, mine) }
    // The stamp is the message's identity from here on (aedes publishes the
    // packet object stored here, keeping it). A resend of a publish that came
    // with its session from another node keeps that node's stamp: it may have
    // died before passing the message on, so it is published again, and the
    // subscribers' ledgers drop it where it arrived already. The DUP flag is
    // not asked for: until its PUBREL, a PUBLISH under the identifier is the
    // same message (MQTT 5 section 4.3.3), and Paho 1.6 may resend one
    // without it (RELEASED_MEMORY_MS).
    const before = mine.get(packet.messageId)
    if (before !== undefined && before.packet.released !== undefined) {
      if (resentAfterRelease(before, client, packet)) {
        packet.brokerId = before.packet.brokerId
        packet.brokerCounter = before.packet.brokerCounter
      } else {
        this.stamp?.(packet)
      }
    } else if (before?.imported === true && sameMessage(before.packet, packet)) {
      packet.brokerId = before.packet.brokerId
      packet.brokerCounter = before.packet.brokerCounter
    } else {
      this.stamp?.(packet)
    }
    const entry: StoredPacket = { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: 2, messageId: packet.messageId, retain: packet.retain === true, dup: packet.dup === true, brokerId: packet.brokerId, brokerCounter: packet.brokerCounter, ...(packet.properties === undefined ? {} : { properties: packet.properties }) }
    // A clean session's state ends with its connection: nothing to keep
    // elsewhere, and it does not make the session stored (hasSession; the
    // session sender would otherwise wait for a queue that never fills).
    const transient = (client as { clean?: boolean }).clean === true
    mine.set(packet.messageId, { packet: entry, imported: false, transient })
    if (transient) return
    const wait = this.observer?.incomingStored(client.id, entry)
    if (wait !== undefined) await wait
  }

  /**
   * aedes asks before it publishes a client's QoS 2 PUBLISH (a resend it
   * holds already is only acknowledged) and at its PUBREL. A PUBLISH held
   * only because its session came from another node is "not here" to the
   * first question: it is published again (incomingStorePacket).
   */
  async incomingGetPacket (client: ClientRef, packet: { cmd?: string, messageId?: number | undefined }): Promise<StoredPacket> {
    const stored = packet.messageId === undefined ? undefined : this.incoming.get(client.id)?.get(packet.messageId)
    if (stored === undefined || stored.packet.released !== undefined || (stored.imported && packet.cmd === 'publish')) throw new Error('no such packet')
    return { ...stored.packet }
  }

  async incomingDelPacket (client: ClientRef, packet: { messageId?: number | undefined }): Promise<void> {
    const id = packet.messageId
    const mine = this.incoming.get(client.id)
    const entry = id === undefined ? undefined : mine?.get(id)
    if (id === undefined || mine === undefined || entry === undefined || entry.packet.released !== undefined) throw new Error('no such packet')
    if (entry.transient) {
      mine.delete(id)
      if (mine.size === 0) this.incoming.delete(client.id)
      return
    }
    // Kept, released, with a digest for its payload (see RELEASED_MEMORY_MS);
    // re-inserted so the map stays in release order for the pruning.
    const kept: StoredPacket = { ...entry.packet, payload: payloadDigest(entry.packet.payload), released: Date.now() }
    mine.delete(id)
    mine.set(id, { packet: kept, imported: entry.imported, transient: false, releasedBy: client })
    this.observer?.incomingReleased(client.id, id, kept)
    this.pruneReleased(client.id, mine)
  }

  /** Forgets released entries past RELEASED_MEMORY_MS or RELEASED_MEMORY_MAX (oldest first), telling the observer. */
  private pruneReleased (clientId: string, mine: Map<number, IncomingEntry>): void {
    const now = Date.now()
    let released = 0
    for (const e of mine.values()) if (e.packet.released !== undefined) released++
    for (const [id, e] of mine) {
      const at = e.packet.released
      if (at === undefined) continue
      if (released <= RELEASED_MEMORY_MAX && now - (at as number) <= RELEASED_MEMORY_MS) break
      mine.delete(id)
      released--
      this.observer?.incomingReleased(clientId, id)
    }
    if (mine.size === 0) this.incoming.delete(clientId)
  }

  // ---- wills ---------------------------------------------------------------------------------------

  async putWill (client: ClientRef, packet: StoredPacket): Promise<void> {
    await this.inner.putWill(client, packet)
    this.observer?.willStored(client.id, packet)
  }

  getWill (client: ClientRef): Promise<StoredPacket | undefined> { return this.inner.getWill(client) }

  async delWill (client: ClientRef): Promise<StoredPacket | undefined> {
    const will = await this.inner.delWill(client)
    if (will !== undefined) this.observer?.willDeleted(client.id)
    return will
  }

  streamWill (brokers?: Record<string, number>): Readable { return this.inner.streamWill(brokers) }
  getClientList (topic: string): Readable { return this.inner.getClientList(topic) }

  async destroy (): Promise<void> {
    this.outgoing.clearAll()
    this.incoming.clear()
    this.subscribers.clear()
    this.retained.clear()
    this.retainedBytesTotal = 0
    await this.inner.destroy()
  }
}

/** Payloads of released entries are kept as a SHA-256 digest (what identifies them, in 32 bytes). */
function payloadDigest (payload: StoredPacket['payload']): Buffer {
  return createHash('sha256').update(Buffer.isBuffer(payload) ? payload : Buffer.from(String(payload ?? ''))).digest()
}

/**
 * Whether a PUBLISH under a released identifier is the released message sent
 * again by a client that forgot its PUBREL (RELEASED_MEMORY_MS): on a later
 * connection than the one that released it, within the window, same topic
 * and payload.
 */
function resentAfterRelease (released: IncomingEntry, client: ClientRef, packet: StoredPacket): boolean {
  const at = released.packet.released
  if (typeof at !== 'number' || Date.now() - at > RELEASED_MEMORY_MS) return false
  if (released.releasedBy === client) return false
  const digest = released.packet.payload
  return released.packet.topic === packet.topic && Buffer.isBuffer(digest) && digest.equals(payloadDigest(packet.payload))
}

/** Whether a resent PUBLISH is the one held under its packet identifier (same topic and payload). */
function sameMessage (held: StoredPacket, resent: StoredPacket): boolean {
  const a = typeof held.payload === 'string' ? Buffer.from(held.payload) : held.payload
  const b = typeof resent.payload === 'string' ? Buffer.from(resent.payload) : resent.payload
  return held.topic === resent.topic && a !== undefined && b !== undefined && Buffer.compare(a, b) === 0
}
