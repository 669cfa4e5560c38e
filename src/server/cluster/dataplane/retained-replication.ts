// Retained messages, the same on every node (docs/data-plane.md).
//
// A local retained write (the session store tells the persistence observer)
// is stamped by the hybrid logical clock into the last-writer-wins store
// (retained-store.ts) and sent to every peer as a held message; with
// replicated acknowledgements, the publisher's PUBACK waits until every peer
// not declared dead settled it. An entry from a peer, or from an
// anti-entropy round (retained-sync.ts: on every link up and every
// cluster.retained_sync_interval with one random peer), that wins in our
// store is written into aedes' own retained store, which SUBSCRIBE reads.
// Tombstones are collected after cluster.retained_tombstone_ttl.
import type { Qos, RetainedEntry } from './retained-store.js'
import { RetainedStore } from './retained-store.js'
import { RetainedSync } from './retained-sync.js'
import type { DataPlaneContext } from './context.js'
import { sendControl } from './context.js'
import { encodeMessage, type DataPlaneMessage } from './messages.js'
import type { PeerLink, DeliveryInfo } from './peer-link.js'
import type { Forwarding } from './forwarding.js'
import type { StoredPacket } from '../../mqtt/outgoing-queues.js'

export class RetainedReplication {
  readonly store: RetainedStore
  readonly sync: RetainedSync
  private readonly ctx: DataPlaneContext
  private readonly forwarding: Forwarding
  private syncTimer: NodeJS.Timeout | undefined
  private gcTimer: NodeJS.Timeout | undefined

  constructor (ctx: DataPlaneContext, forwarding: Forwarding) {
    this.ctx = ctx
    this.forwarding = forwarding
    const { config } = ctx
    this.store = new RetainedStore({
      clock: ctx.clock,
      tombstoneTtlMs: config.cluster.retained_tombstone_ttl,
      maxCount: config.mqtt.max_retained_messages,
      maxBytes: config.mqtt.max_retained_bytes
    })
    this.sync = new RetainedSync(this.store, { onApplied: (entry) => this.applyLocally(entry) })
  }

  start (): void {
    const every = this.ctx.config.cluster.retained_sync_interval
    if (every > 0) {
      this.syncTimer = setInterval(() => this.syncWithRandomPeer(), every)
      this.syncTimer.unref()
    }
    const ttl = this.ctx.config.cluster.retained_tombstone_ttl
    this.gcTimer = setInterval(() => this.store.gc(), Math.min(Math.max(1000, ttl / 10), 3600_000))
    this.gcTimer.unref()
  }

  stop (): void {
    clearInterval(this.syncTimer)
    clearInterval(this.gcTimer)
  }

  /**
   * Entries read back from this node's store at start, before any peer link:
   * merged like a peer's (the clock moves past their stamps) and written into
   * aedes' store. Returns the topics not taken (tombstones past their TTL).
   */
  restore (entries: Iterable<RetainedEntry>): string[] {
    const dropped: string[] = []
    for (const entry of entries) {
      if (this.store.merge(entry) === 'applied') this.applyLocally(entry)
      else dropped.push(entry.topic)
    }
    return dropped
  }

  /** A peer's link came up: compare digests (a joining node gets what it lacks, and we what we lack). */
  linkUp (link: PeerLink): void {
    sendControl(this.ctx, link.peerName, this.sync.begin())
  }

  /** A local retained write (persistence observer): stamped, and sent to every peer. */
  written (packet: StoredPacket): Promise<void> | undefined {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    const entry = payload.length === 0
      ? this.store.clear(packet.topic)
      : this.store.set(packet.topic, { payload, qos: (packet.qos ?? 0) as Qos, ...(packet.properties === undefined ? {} : { properties: packet.properties as Record<string, unknown> }) })
    if (entry === undefined) return undefined
    return this.replicate(entry)
  }

  /** A retained entry from a peer (settled once merged). */
  received (link: PeerLink, entry: RetainedEntry, info: DeliveryInfo): void {
    if (this.store.merge(entry) === 'applied') this.applyLocally(entry)
    if (info.hold === true && info.source !== undefined) link.settle(info.source)
  }

  /** An anti-entropy message. */
  handleSync (link: PeerLink, m: DataPlaneMessage): void {
    for (const reply of this.sync.handle(m as never)) sendControl(this.ctx, link.peerName, reply)
  }

  private syncWithRandomPeer (): void {
    const up = [...this.ctx.links.all()].filter((l) => l.state === 'up')
    if (up.length === 0) return
    sendControl(this.ctx, up[Math.floor(Math.random() * up.length)]!.peerName, this.sync.begin())
  }

  /** Sends a local retained write to every peer; resolves when they hold it (replicated acks), or at once. */
  private replicate (entry: RetainedEntry): Promise<void> | undefined {
    const ctx = this.ctx
    if (!ctx.running() || ctx.links.size === 0) return undefined
    const buf = encodeMessage({ kind: 'retained', entry })
    const waits: Array<Promise<void>> = []
    for (const link of ctx.links.all()) {
      if (link.state === 'stopped') continue
      const parked = ctx.links.isParked(link.peerName)
      if (link.send(buf, 'held') === 'backpressure') {
        if (!parked) waits.push(this.sendWhenWritable(link, buf))
        continue
      }
      if (ctx.replicatedAcks && !parked) waits.push(this.forwarding.held(link, link.lastQueuedSeq))
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => {})
  }

  private async sendWhenWritable (link: PeerLink, buf: Buffer): Promise<void> {
    for (;;) {
      await link.whenWritable()
      if (link.state === 'stopped') return
      if (link.send(buf, 'held') !== 'backpressure') break
    }
    if (this.ctx.replicatedAcks) await this.forwarding.held(link, link.lastQueuedSeq)
  }

  /** Makes aedes' retained store (what SUBSCRIBE reads) follow an entry that won in ours. */
  private applyLocally (entry: RetainedEntry): void {
    const packet: StoredPacket = {
      cmd: 'publish',
      topic: entry.topic,
      payload: entry.payload,
      qos: entry.qos,
      retain: true,
      dup: false,
      ...(entry.properties === undefined ? {} : { properties: entry.properties })
    }
    this.ctx.store.applyRetained(packet).catch((err: Error) => this.ctx.warn('warn', { topic: entry.topic, err: err.message }, 'replicated retained message not stored'))
  }
}
