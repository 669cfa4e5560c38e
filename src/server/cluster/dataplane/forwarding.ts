// Local publishes out to the peers that deliver them, and the wait that
// makes a publisher's acknowledgement mean "two nodes hold it".
//
// - aedes' `published` seam, layer 'cluster' (hooks.ts): a message from a
//   local client (or a will) goes to every peer with a matching subscription
//   (routing-table.ts peersFor), and to one node per shared subscription
//   group (pickShared, weighted round robin; this node's picks are
//   delivered here). QoS 1/2 travel as held messages (peer-link.ts).
// - The acknowledgement to the publisher (PUBACK, PUBREC) waits for aedes'
//   callback, which waits here:
//     * always while a link's buffer is full (backpressure: a slow peer slows
//       the publishers instead of growing the heap);
//     * with `cluster.ack_after: replicated`, until every peer it went to
//       settled it (queued it for its sessions, and they are held by their
//       replica holders). The local sessions' replicas are waited for by the
//       persistence observer (session-replication.ts) before this runs.
//   A peer that is declared dead or left, or that restarted, no longer
//   holds anything up: what it never settled is kept on its link for whoever
//   takes its sessions over (rescue.ts). After `cluster.ack_timeout` the
//   acknowledgement goes anyway; both are counted
//   (broker_cluster_acks_unreplicated_total) and the timeout is logged.
// - A publish for a peer declared dead whose kept publishes reached
//   cluster.dead_peer_buffer_bytes waits (rescue-backpressure.ts) until the
//   takeover of its sessions is done, and then goes to their new homes; one
//   that finds no copy kept anywhere by cluster.ack_timeout is refused, not
//   acknowledged (PublishRefusedError; publish-acks.ts answers it).
// - The 'publish' layer stamps every message entering the broker with its
//   identity (message-stamp.ts) before aedes copies it.
import type { Aedes, Client } from 'aedes'
import { MESSAGE_TARGETS } from '../../mqtt/bus-events.js'
import { toMarker } from '../../mqtt/shared-subscriptions.js'
import { brokerInternals, pauseReads, resumeReads, type DeliveredPacket } from '../../mqtt/aedes-internals.js'
import { nodeOfProcess, stampOf } from '../../mqtt/message-stamp.js'
import type { StoredPacket } from '../../mqtt/persistence.js'
import { topicMatches } from '../../../topic-filter.js'
import { routable } from './local-routes.js'
import { delay, type DataPlaneContext } from './context.js'
import { encodeMessage, type ForwardedPublish } from './messages.js'
import type { PeerLink } from './peer-link.js'
import type { Qos } from './retained-store.js'
import { PublishRefusedError, RescueBackpressure, isPublishRefused } from './rescue-backpressure.js'
import { HeldWaits, type UnreplicatedReason } from './held-waits.js'

type PublishedPacket = Parameters<Aedes['published']>[0] & { [MESSAGE_TARGETS]?: string[], brokerId?: string, brokerCounter?: number, messageExpiry?: number }

/** Longest a publish waits for the route tables of peers believed alive. */
const ROUTES_WAIT_MS = 3000
/** A peer whose table did not come within ROUTES_WAIT_MS is not waited for again for this long. */
const ROUTES_GIVE_UP_MS = 30_000

/** How long after its link went down a peer still gets every QoS 1/2 message (linkDown). */
const STALE_ROUTES_MS = 30_000

/**
 * A client with more publishes than this waiting in this layer, while some
 * wait for a dead peer's takeover, is no longer read from until it has half
 * as many: aedes does not stop reading a client whose publishes wait.
 */
const PAUSE_READS_AT = 32

/** No shared keys, no sessions: shared by every forwarded publish, never changed. */
const NONE: string[] = []

export class Forwarding {
  private readonly ctx: DataPlaneContext
  /** Waits for a peer's settlement, released when the peer goes (dead, left, restarted). */
  private readonly heldWaits: HeldWaits
  /** Forwarding waits for the route tables of peers believed alive (awaitRoutes). */
  private routesWait: Promise<void> | undefined
  /** Peers whose link went down, since when (linkDown). */
  private readonly staleSince = new Map<string, number>()
  /** Peers whose table did not come in time, and until when nobody waits for it again. */
  private readonly noTableFrom = new Map<string, number>()
  /** Set by the composition: local publishes for the old routes of restarted peers (rescue.ts). */
  orphanTraffic: ((topic: string, qos: number, encode: () => Buffer) => void) | undefined
  /**
   * Set by the composition: a publish queued for a peer that is not up goes
   * also to the nodes that took its sessions over and asked for its
   * publishes already (rescue.ts follow); resolves when they hold it.
   */
  followGone: ((peer: string, buf: Buffer) => Promise<void> | undefined) | undefined
  /** Set by the composition: whether publishes wait for the route tables of the members expected back after a restart (storage). */
  startPending: (() => boolean) | undefined
  /** Set by the composition: whether every session of a dead peer that lives on is on a live node (rescue.ts). */
  takeoverDone: ((peer: string) => boolean) | undefined
  /**
   * Set by the composition: queues a publish for a dead peer, that waited,
   * for the sessions this node took over from it meanwhile (rescue.ts).
   */
  rescueHere: ((peer: string, buf: Buffer) => Promise<void> | undefined) | undefined
  /** Set by the composition: keeps a publish for a peer whose link was dropped, for the rescue (rescue.ts). */
  keepOrphan: ((peer: string, buf: Buffer) => boolean) | undefined
  /** Publishes waiting for a dead peer's takeover (keepForRescue). */
  readonly backpressure = new RescueBackpressure()
  /**
   * Most a link to a peer declared dead holds past its usual bound
   * (cluster.dead_peer_buffer_bytes): its unsettled publishes, kept for
   * whoever takes its sessions over (rescue.ts).
   */
  private readonly parkedMaxBytes: number

  /** Publishes waiting in the 'published' layer, by client; and the clients not read from meanwhile. */
  private readonly waitingOf = new Map<Client, number>()
  private readonly paused = new Set<Client>()

  constructor (ctx: DataPlaneContext) {
    this.ctx = ctx
    this.parkedMaxBytes = ctx.config.cluster.dead_peer_buffer_bytes
    const timeoutMs = ctx.config.cluster.ack_timeout
    this.heldWaits = new HeldWaits(timeoutMs, (peer, count) => {
      this.ctx.warn('warn', { peer, timeoutMs, count }, 'acknowledgement sent without the peer confirming it holds the message: it did not answer within cluster.ack_timeout')
    })
  }

  /** The 'publish' layer: every message entering aedes gets its stamp now, so `published` sees it too. */
  stampLayer (next: Aedes['publish']): Aedes['publish'] {
    const aedes = brokerInternals(this.ctx.aedes)
    return ((packet: { brokerId?: string | null, brokerCounter?: number }, ...rest: unknown[]) => {
      if (packet.brokerCounter === undefined || packet.brokerCounter === 0) {
        packet.brokerId = aedes.id
        packet.brokerCounter = ++aedes.counter
      }
      return (next as (...a: unknown[]) => void)(packet, ...rest)
    }) as Aedes['publish']
  }

  /** The 'published' layer: see the top of the file. */
  publishedLayer (next: Aedes['published']): Aedes['published'] {
    return (packet, client, done) => {
      if (client === null || client === undefined || packet.topic.startsWith('$SYS/')) return next(packet, client, done)
      const forwarded = this.forward(packet as PublishedPacket)
      // Its copies queued here for stored sessions, held by their replica holders (persistence.ts takeHeld).
      const queued = this.ctx.store.takeHeld(stampOf(packet as PublishedPacket))
      const waits = forwarded === undefined ? queued : queued === undefined ? forwarded : Promise.all([forwarded, queued])
      if (waits === undefined) return next(packet, client, done)
      // The inner layers (the bus event naming the peers) run now; the acknowledgement waits.
      const waiting = (this.waitingOf.get(client) ?? 0) + 1
      this.waitingOf.set(client, waiting)
      if (waiting > PAUSE_READS_AT && this.backpressure.waiting > 0 && !this.paused.has(client)) {
        this.paused.add(client)
        pauseReads(client)
      }
      next(packet, client, (err) => {
        waits.then(() => {
          this.settled(client)
          done(err)
        }, (e: unknown) => {
          this.settled(client)
          if (!isPublishRefused(e)) return done(err)
          // Not acknowledged. A QoS 2 publish is forgotten, or its resend would be taken for a duplicate (PUBREC, not published).
          if (packet.qos === 2) this.ctx.store.incomingDelPacket({ id: client.id }, packet).catch(() => {}).finally(() => done(e))
          else done(e)
        })
      })
    }
  }

  /** A publish of `client` waiting in the 'published' layer is done: read from it again once few wait. */
  private settled (client: Client): void {
    const n = (this.waitingOf.get(client) ?? 1) - 1
    if (n <= 0) this.waitingOf.delete(client)
    else this.waitingOf.set(client, n)
    if (this.paused.has(client) && (n <= PAUSE_READS_AT / 2 || this.backpressure.waiting === 0)) {
      this.paused.delete(client)
      resumeReads(client)
    }
  }

  /**
   * Sends a local publish to the peers with a matching subscription (a
   * retained one reached every peer already as a replicated entry).
   * Returns what the acknowledgement waits for, or undefined.
   */
  forward (packet: PublishedPacket): Promise<unknown> | undefined {
    if ((this.ctx.links.size === 0 && this.startPending?.() !== true) || !this.ctx.running()) return this.forwardNow(packet)
    const routes = this.awaitRoutes()
    if (routes === undefined) return this.forwardNow(packet)
    return routes.then(async () => await Promise.all([this.queueForArrivals(packet), this.forwardNow(packet)]))
  }

  /**
   * After a wait for routes: stored sessions that arrived here meanwhile (a
   * client whose node died reconnected here) and match get the message too;
   * their old home never will (it was not routed there). The ledger keeps
   * sessions that had it from getting it twice.
   */
  private async queueForArrivals (packet: PublishedPacket): Promise<void> {
    const stamp = stampOf(packet)
    if ((packet.qos ?? 0) === 0 || stamp === undefined) return
    const store = this.ctx.store
    const waits: Array<Promise<void>> = []
    for (const clientId of store.sessions()) {
      if (store.seen(clientId, stamp)) continue
      let matches = false
      for (const filter of store.storedFilters(clientId)) {
        if (routable(filter) && topicMatches(filter, packet.topic)) { matches = true; break }
      }
      if (!matches) continue
      // Before its publisher's later messages, queued here while it waited.
      const { held } = store.enqueueFor(clientId, packet as unknown as StoredPacket)
      if (held !== undefined) waits.push(held)
    }
    await Promise.all(waits)
  }

  /**
   * Resolves when every peer believed alive sent its route table (bounded by
   * ROUTES_WAIT_MS); undefined when they all did. A node that just started,
   * or a peer that just joined, would otherwise see no subscriber there and
   * acknowledge a message nobody delivers. After a restart with storage,
   * also until the members expected back sent theirs (startPending, bounded
   * by the storage's wait for peers at start): the first node back of a
   * whole-cluster restart does not know the others yet, and their sessions
   * are on their disks. Messages waiting here go out in their order: they
   * all wait on the same promise.
   */
  private awaitRoutes (): Promise<void> | undefined {
    if (this.routesWait !== undefined) return this.routesWait
    if (this.startPending?.() !== true && this.tablesMissing().length === 0) return undefined
    const deadline = Date.now() + ROUTES_WAIT_MS
    this.routesWait = (async () => {
      while (this.ctx.running() && ((this.tablesMissing().length > 0 && Date.now() < deadline) || this.startPending?.() === true)) await delay(10)
      const missing = this.tablesMissing()
      if (missing.length > 0) {
        const until = Date.now() + ROUTES_GIVE_UP_MS
        for (const peer of missing) this.noTableFrom.set(peer, until)
        this.ctx.warn('warn', { peers: missing, waitedMs: ROUTES_WAIT_MS }, 'publishing without the route tables of peers believed alive: their subscribers may miss these messages')
      }
    })().finally(() => { this.routesWait = undefined })
    return this.routesWait
  }

  private tablesMissing (): string[] {
    const now = Date.now()
    return this.ctx.links.alivePeers().filter((p) => this.ctx.routing.peerVersion(p) === undefined && (this.noTableFrom.get(p) ?? 0) < now)
  }

  private forwardNow (packet: PublishedPacket): Promise<unknown> | undefined {
    const ctx = this.ctx
    let sharedFor: Map<string, string[]> | undefined
    for (const pick of ctx.routing.pickShared(packet.topic)) {
      const key = `$share/${pick.group}/${pick.filter}`
      if (pick.node === ctx.name) {
        this.deliverShared(key, packet)
        continue
      }
      sharedFor ??= new Map()
      const keys = sharedFor.get(pick.node)
      if (keys === undefined) sharedFor.set(pick.node, [key])
      else keys.push(key)
    }
    if (ctx.links.size === 0 || !ctx.running()) return undefined
    this.orphanTraffic?.(packet.topic, packet.qos ?? 0, () => encodeMessage({ kind: 'publish', publish: this.toForward(packet) }))
    const plain = ctx.routing.peersFor(packet.topic)
    const targets = sharedFor === undefined ? plain : [...new Set([...plain, ...sharedFor.keys()])].sort()
    packet[MESSAGE_TARGETS] = targets as string[]
    // Plain (for the peer's ordinary subscribers), no shared keys.
    const base = this.toForward(packet)
    let plainBuf: Buffer | undefined
    if (this.staleSince.size > 0 && base.qos > 0) {
      for (const name of this.staleTargets(targets)) {
        const link = ctx.links.get(name)
        // Not waited for, and dropped rather than queued once its buffer is full.
        if (link !== undefined) link.send(plainBuf ??= encodeMessage({ kind: 'publish', publish: base }), 'held')
      }
    }
    if (targets.length === 0) return undefined
    let wait: Promise<void> | undefined
    let waits: Array<Promise<void>> | undefined
    for (const name of targets) {
      const link = ctx.links.get(name)
      if (link === undefined) continue
      const keys = sharedFor?.get(name)
      const buf = keys === undefined
        ? (plainBuf ??= encodeMessage({ kind: 'publish', publish: base }))
        : encodeMessage({ kind: 'publish', publish: { ...base, plain: plain.includes(name), shared: keys } })
      const w = this.send(link, buf, base.qos)
      if (w === undefined) continue
      if (wait === undefined) wait = w
      else (waits ??= [wait]).push(w)
    }
    return waits === undefined ? wait : Promise.all(waits)
  }

  /**
   * Sends a copy of a queued message to the node a session moved to, for
   * that session only (session-moves.ts); resolves when it is held there
   * (or that node is gone).
   */
  forwardToSession (peer: string, packet: DeliveredPacket, clientId: string): Promise<void> | undefined {
    const link = this.ctx.links.get(peer)
    if (link === undefined || link.state === 'stopped') return undefined
    const buf = encodeMessage({ kind: 'publish', publish: { ...this.toForward(packet as PublishedPacket), plain: false, sessions: [clientId] } })
    return this.send(link, buf, (packet.qos ?? 1) as Qos, true)
  }

  /** A message as it crosses to a peer, stamp and expiry included. */
  toForward (packet: PublishedPacket): ForwardedPublish {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    const brokerId = packet.brokerId ?? this.ctx.process
    const props = packet.properties as Record<string, unknown> | undefined
    let messageExpiry = packet.messageExpiry
    if (messageExpiry === undefined && typeof props?.messageExpiryInterval === 'number' && props.messageExpiryInterval > 0) {
      messageExpiry = Date.now() + props.messageExpiryInterval * 1000
    }
    return {
      origin: nodeOfProcess(brokerId),
      brokerId,
      brokerCounter: packet.brokerCounter ?? 0,
      topic: packet.topic,
      payload,
      qos: (packet.qos ?? 0) as Qos,
      retain: packet.retain === true,
      plain: true,
      shared: NONE,
      sessions: NONE,
      properties: props,
      messageExpiry
    }
  }

  /** Queues a message on a link; returns what its acknowledgement waits for. */
  private send (link: PeerLink, buf: Buffer, qos: Qos, mustHold = false): Promise<void> | undefined {
    const ctx = this.ctx
    if (qos === 0) {
      link.send(buf, 'unreliable')
      return undefined
    }
    if (ctx.links.isParked(link.peerName)) return this.keepForRescue(link, buf, qos, mustHold)
    const r = link.send(buf, 'held')
    if (r === 'backpressure') return this.sendWhenWritable(link, buf, qos, mustHold)
    const followed = link.state === 'up' ? undefined : this.followGone?.(link.peerName, buf)
    if (!ctx.replicatedAcks && !mustHold) return followed
    const held = this.held(link, link.lastQueuedSeq)
    return followed === undefined ? held : Promise.all([held, followed]).then(() => {})
  }

  /**
   * A QoS 1/2 publish for a peer declared dead. It must not be lost: it is
   * kept on the peer's link for whoever takes the peer's sessions over
   * (rescue.ts), past the link's usual bound up to parkedMaxBytes, and goes
   * at once to the nodes that took some over already. The acknowledgement
   * waits for those copies only. Past the bound it waits for the takeover
   * (waitForTakeover).
   */
  private keepForRescue (link: PeerLink, buf: Buffer, qos: Qos, mustHold: boolean): Promise<void> | undefined {
    if (link.bufferedBytes + buf.length > this.parkedMaxBytes) return this.waitForTakeover(link, buf, qos, mustHold)
    const followed = this.followGone?.(link.peerName, buf)
    link.send(buf, 'held', true)
    return followed
  }

  /**
   * A publish for a dead peer whose kept publishes are at their bound: no
   * copy of it is kept for the peer's sessions yet, so its acknowledgement
   * waits (and with it its publisher) until one of these, checked whenever
   * the takeover progresses:
   * - the takeover is done (rescue.ts takeoverDone): the sessions that live
   *   on are on live nodes; it goes to those that asked for the dead peer's
   *   publishes (followGone), or was queued here already;
   * - there is room again, the peer is back, or its link was dropped: as
   *   for any publish then.
   * None by cluster.ack_timeout: refused (PublishRefusedError), counted
   * and logged; its publisher sends it again.
   */
  private async waitForTakeover (link: PeerLink, buf: Buffer, qos: Qos, mustHold: boolean): Promise<void> {
    const peer = link.peerName
    const timeoutMs = this.ctx.config.cluster.ack_timeout
    const deadline = Date.now() + timeoutMs
    let waited = false
    for (;;) {
      if (!this.ctx.links.isParked(peer) && link.state !== 'stopped') return await this.send(link, buf, qos, mustHold)
      if (this.takeoverDone?.(peer) === true || link.state === 'stopped' || link.bufferedBytes + buf.length <= this.parkedMaxBytes) {
        // aedes queued it for the sessions here when it was published: those
        // this node took over while it waited get it now.
        const here = waited && link.state !== 'stopped' ? this.rescueHere?.(peer, buf) : undefined
        const there = link.state === 'stopped'
          ? this.keepDropped(peer, buf)
          : this.takeoverDone?.(peer) === true ? this.followGone?.(peer, buf) : this.keepForRescue(link, buf, qos, mustHold)
        await Promise.all([here, there])
        return
      }
      if (!waited) { waited = true; this.backpressure.waited++ }
      if (!await this.backpressure.wait(peer, buf.length, deadline - Date.now())) break
    }
    this.backpressure.refused++
    this.ctx.warn('warn', { peer, keptBytes: link.bufferedBytes, timeoutMs }, 'publish refused (not acknowledged): the publishes kept for a peer declared dead are at cluster.dead_peer_buffer_bytes and the takeover of its sessions was not done within cluster.ack_timeout')
    throw new PublishRefusedError(`no node keeps a copy of this publish for the sessions of ${peer}, declared dead, within cluster.ack_timeout`)
  }

  /**
   * A publish for a peer whose link was dropped (it left, or stayed dead
   * longer than its link is kept) while it waited to be queued there: it
   * goes to the sessions this node took over from the peer meanwhile, to the
   * nodes that asked for that peer's publishes, and is kept with what the
   * link never settled, for those that ask later. Refused when none of
   * these (too many kept).
   */
  private async keepDropped (peer: string, buf: Buffer): Promise<void> {
    const here = this.rescueHere?.(peer, buf)
    const followed = this.followGone?.(peer, buf)
    const kept = this.keepOrphan?.(peer, buf) === true
    if (here !== undefined || followed !== undefined) { await Promise.all([here, followed]); return }
    if (kept) return
    this.backpressure.refused++
    this.ctx.warn('warn', { peer }, 'publish refused (not acknowledged): the link of the peer it was for is gone and too many of its publishes are kept already')
    throw new PublishRefusedError(`the link to ${peer} is gone and no node keeps a copy of this publish for its sessions`)
  }

  private async sendWhenWritable (link: PeerLink, buf: Buffer, qos: Qos, mustHold: boolean): Promise<void> {
    for (;;) {
      await link.whenWritable()
      // The peer left for good before there was room.
      if (link.state === 'stopped') return await this.keepDropped(link.peerName, buf)
      // Declared dead while this waited (the link woke it): kept for the rescue.
      if (this.ctx.links.isParked(link.peerName)) return await this.keepForRescue(link, buf, qos, mustHold)
      if (link.send(buf, 'held') !== 'backpressure') break
    }
    if (this.ctx.replicatedAcks || mustHold) await this.held(link, link.lastQueuedSeq)
  }

  /**
   * Resolves when the peer settled message `seq`, or is gone, or after
   * cluster.ack_timeout; never rejects.
   */
  held (link: PeerLink, seq: number): Promise<void> {
    return this.heldWaits.wait(link, seq)
  }

  /**
   * A peer's link went down. Until its route table comes again, we do not
   * know where its subscriptions are: a session may move there meanwhile
   * (from a third node). So for up to STALE_ROUTES_MS every QoS 1/2 message
   * goes to it too, held on its link for when it is back; its node delivers
   * what matches. The acknowledgement does not wait for these copies.
   */
  linkDown (peer: string): void {
    if (!this.staleSince.has(peer)) this.staleSince.set(peer, Date.now())
  }

  /** The peer's route table arrived: its routes are known again. */
  tableArrived (peer: string): void {
    this.staleSince.delete(peer)
  }

  /** The peer's link is gone for good. */
  forget (peer: string): void {
    this.staleSince.delete(peer)
    this.noTableFrom.delete(peer)
  }

  private staleTargets (targets: readonly string[]): string[] {
    const now = Date.now()
    const out: string[] = []
    for (const [peer, since] of this.staleSince) {
      if (since + STALE_ROUTES_MS < now) this.staleSince.delete(peer)
      else if (!targets.includes(peer)) out.push(peer)
    }
    return out
  }

  /** The peer was declared dead, left, or restarted: nothing waits for it any more. */
  peerGone (peer: string): void {
    this.heldWaits.peerGone(peer)
  }

  /** Acknowledgements that went without a peer's confirmation, by reason (broker_cluster_acks_unreplicated_total). */
  get unreplicated (): Record<UnreplicatedReason, number> { return this.heldWaits.unreplicated }

  /** Something changed for a dead peer's takeover: publishes waiting for it decide again. */
  takeoverProgress (peer: string): void {
    this.backpressure.wake(peer)
  }

  /** Hands a message to this node's member of shared subscription `key` (`$share/g/f`), picked for it cluster-wide. */
  deliverShared (key: string, message: { topic: string, payload: Buffer | string, qos?: number, properties?: unknown, brokerId?: string, brokerCounter?: number }): void {
    const marker = toMarker(key)
    if (marker === undefined) return
    const packet: DeliveredPacket = {
      cmd: 'publish',
      topic: message.topic,
      payload: typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload,
      qos: message.qos ?? 0,
      retain: false,
      dup: false,
      ...(message.brokerId === undefined ? {} : { brokerId: message.brokerId, brokerCounter: message.brokerCounter }),
      ...(message.properties === undefined ? {} : { properties: message.properties as Record<string, unknown> })
    }
    this.ctx.mqtt.shared.deliverTo(marker, packet, () => {})
  }
}
