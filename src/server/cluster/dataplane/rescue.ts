// Rescue: what a node that died had received and never settled.
//
// A peer keeps every publish it sent a node until that node settles it
// (peer-link.ts, held messages), and after the node restarted, what its
// predecessor never settled (orphans, kept RESCUE_WINDOW_MS). When a node
// takes sessions over from a dead (or restarted) home, by promotion or by
// resuming a replica, it asks every peer for those messages (rescue-request)
// and queues, for each taken session whose subscriptions match, what the
// home never settled. The session's ledger (outgoing-queues.ts) drops what
// the home had queued already (a settled message reached the replica first:
// the home settles only once its replica holder has it). Each rescued
// message goes before its publisher's later messages still waiting.
//
// The takeover of a dead peer's sessions is done, as far as this node can
// tell (takeoverDone), once this node's own promotion of them is done and
// every other up peer said its own is (its promotion's rescue request,
// marked `takeover`, answered here): from then on every session of the
// dead peer that will live on is on a live node, and what is published
// for them reaches them there (queued here, or followed to the requester).
// Until then a publish that finds the dead peer's kept publishes at their
// bound waits (rescue-backpressure.ts).
import { randomUUID } from 'node:crypto'
import { topicMatches } from '../../../topic-filter.js'
import type { DataPlaneContext } from './context.js'
import { sendControl } from './context.js'
import { decodeMessage, encodeMessage, type DataPlaneMessage, type ForwardedPublish } from './messages.js'
import type { PeerLink, DeliveryInfo } from './peer-link.js'
import { inboundPacket, type InboundPacket } from './inbound.js'
import { routable } from './local-routes.js'
import { FilterTrie } from './filter-trie.js'

/** How long a restarted peer's unsettled publishes are kept for the nodes taking over its sessions. */
export const RESCUE_WINDOW_MS = 60_000

/** How long the old routes of a restarted peer keep matching local publishes (Rescue.orphanTraffic). */
const ORPHAN_ROUTES_MS = 10_000

/** Most publishes kept for the old process of a restarted (or dropped) peer. */
const MAX_ORPHANS = 100_000

/** How long a node that took sessions over waits for the rescues before delivering to them. */
export const RESCUE_ANSWER_TIMEOUT_MS = 1000

/**
 * Most filters a rescue request names; beyond it the request names none and
 * gets every unsettled publish (the requester keeps what matches).
 */
const MAX_REQUEST_FILTERS = 10_000

/** The takeover of a dead peer's sessions, as this node sees it. */
interface Takeover {
  /** This node's promotion of them is done. */
  own: boolean
  /** When this node last sent its takeover request, and for which sessions. */
  requestedAt: number
  sessions: Set<string>
  /**
   * Their subscriptions when taken (null: too many to name). A peer back
   * from the dead hears of the takeover later (announceTakeovers), when a
   * session may have moved on and its filters are no longer stored here.
   */
  filters: Set<string> | null
  /** Peers whose takeover request was answered here. */
  answered: Set<string>
}

interface Request {
  from: string
  sessions: Set<string>
  waiting: Set<string>
  done: Promise<void>
  finish: () => void
  until: number
}

export class Rescue {
  private readonly ctx: DataPlaneContext
  private readonly requests = new Map<string, Request>()
  /** Unsettled publishes of peers that restarted, kept for the nodes that take over their sessions. */
  private readonly orphans = new Map<string, { messages: Array<{ seq: number, payload: Buffer }>, until: number }>()
  /**
   * The routes a restarted peer had before: its old process's sessions wait
   * for their replica holders to take them over, and until then nobody routes
   * their filters (the new process announced its own, empty, table). A local
   * publish that matches them is kept for the rescue (ORPHAN_ROUTES_MS).
   */
  private readonly orphanRoutes = new Map<string, { filters: string[], until: number }>()
  /**
   * Rescue requests answered here, by the peer they were about: publishes
   * queued for that peer afterwards (while it is not up) follow to the
   * requester (follow), or they would be stranded on its link.
   */
  private readonly followers = new Map<string, Map<string, { link: PeerLink, wanted: FilterTrie<true> | undefined, until: number }>>()
  /** Publishes queued by rescues (broker_cluster_rescued_messages_total). */
  rescued = 0
  /**
   * By dead peer: whether this node's own promotion of its sessions is done
   * (and since when it made its takeover request), and the peers whose
   * takeover request about it was answered here.
   */
  private readonly takeovers = new Map<string, Takeover>()
  /** Set by the composition: the takeover of `dead`'s sessions progressed (rescue-backpressure.ts wakes its waiters). */
  onTakeoverProgress: ((dead: string) => void) | undefined
  /**
   * Set by the composition: sends a message after those of `clientIds` that
   * left this node lately and subscribe to it, as late copies to their new
   * homes (session-moves.ts followers: one pass over them per message);
   * resolves when they are held there. Undefined: none of them.
   */
  followMoved: ((clientIds: ReadonlySet<string>, packet: InboundPacket) => Promise<unknown> | undefined) | undefined

  constructor (ctx: DataPlaneContext) {
    this.ctx = ctx
  }

  /**
   * A peer restarted: what its old process never settled, and what is
   * published here for its old routes from now on (for a while), for
   * whoever takes its sessions.
   */
  keepOrphans (peer: string, messages: Array<{ seq: number, payload: Buffer }>, routes: string[]): void {
    const now = Date.now()
    const kept = this.orphans.get(peer)
    this.orphans.set(peer, { messages: [...(kept !== undefined && kept.until >= now ? kept.messages : []), ...messages], until: now + RESCUE_WINDOW_MS })
    if (routes.length > 0) this.orphanRoutes.set(peer, { filters: routes, until: now + ORPHAN_ROUTES_MS })
  }

  /** A local publish (encoded as it would cross): kept for the old sessions of restarted peers whose routes it matches. */
  orphanTraffic (topic: string, qos: number, encode: () => Buffer): void {
    if (this.orphanRoutes.size === 0 || qos === 0) return
    const now = Date.now()
    for (const [peer, r] of this.orphanRoutes) {
      if (r.until < now) { this.orphanRoutes.delete(peer); continue }
      if (!r.filters.some((f) => topicMatches(f, topic))) continue
      const kept = this.orphans.get(peer)
      if (kept === undefined || kept.messages.length >= MAX_ORPHANS) continue
      kept.messages.push({ seq: 0, payload: encode() })
    }
  }

  /**
   * Sessions of `dead` are now this node's: asks every up peer for what it
   * sent `dead` and `dead` never settled; this node's own unsettled messages
   * to it are taken at once. Resolves when every peer answered (bounded).
   */
  request (dead: string, clientIds: Iterable<string>, takeover = false, only?: string): Promise<void> {
    let finish!: () => void
    const done = new Promise<void>((resolve) => { finish = resolve })
    const id = randomUUID()
    const now = Date.now()
    const request: Request = { from: dead, sessions: new Set(clientIds), waiting: new Set(), done, finish, until: now + RESCUE_WINDOW_MS }
    for (const [rid, r] of this.requests) if (r.until < now) this.requests.delete(rid)
    this.requests.set(id, request)
    let filters = this.filtersOf(request.sessions)
    if (takeover) {
      const t = this.takeover(dead)
      t.requestedAt = now
      for (const id of request.sessions) t.sessions.add(id)
      if (t.filters !== null) {
        if (filters === undefined) t.filters = null
        else for (const f of filters) t.filters.add(f)
        if (t.filters !== null && t.filters.size > MAX_REQUEST_FILTERS) t.filters = null
      }
      // Told to a peer back from the dead: what the sessions subscribed to when taken.
      if (only !== undefined) filters = t.filters === null ? undefined : [...t.filters]
    }
    for (const peer of this.ctx.links.upPeers()) {
      if (peer === dead || (only !== undefined && peer !== only)) continue
      sendControl(this.ctx, peer, { kind: 'rescue-request', from: dead, requestId: id, ...(filters === undefined ? {} : { filters }), ...(takeover ? { takeover } : {}) })
      request.waiting.add(peer)
    }
    const own = this.unsettledTo(dead)
    if (own.length > 0) this.ctx.log.debug({ peer: dead, publishes: own.length }, 'rescuing what this node sent a gone peer')
    const mine = own.map((p) => this.queueRescued(id, p))
    if (request.waiting.size === 0) finish()
    this.ctx.log.debug({ peer: dead, requestId: id, sessions: request.sessions.size, asked: [...request.waiting], own: own.length, takeover }, 'rescue requested')
    const timer = setTimeout(() => {
      if (request.waiting.size > 0) this.ctx.log.debug({ peer: dead, requestId: id, waiting: [...request.waiting] }, 'rescue answers late: delivery to the sessions goes on; what comes later is queued when it comes')
      finish()
    }, RESCUE_ANSWER_TIMEOUT_MS)
    timer.unref()
    return Promise.all([done, ...mine]).then(() => clearTimeout(timer))
  }

  /** The sessions' subscriptions, which is all a peer needs to send back; undefined: too many to name. */
  private filtersOf (clientIds: ReadonlySet<string>): string[] | undefined {
    const filters = new Set<string>()
    for (const clientId of clientIds) {
      for (const f of this.ctx.store.storedFilters(clientId)) {
        if (!routable(f)) continue
        filters.add(f)
        if (filters.size > MAX_REQUEST_FILTERS) return undefined
      }
    }
    return [...filters]
  }

  /**
   * A peer took over sessions of `dead`: it gets what `dead` never settled
   * from us (what matches `filters`, when the request names them), then
   * rescue-done. A full link is waited for, never skipped: a rescue dropped
   * here is a message lost after its publisher was acknowledged.
   */
  async answer (link: PeerLink, dead: string, requestId: string, filters?: readonly string[], takeover = false): Promise<void> {
    let wanted: FilterTrie<true> | undefined
    if (filters !== undefined) {
      wanted = new FilterTrie()
      for (const f of filters) wanted.add(f, true)
    }
    // From now on, what this node queues for `dead` goes to the requester too
    // (a request that names no filter wants nothing: a takeover that took
    // none). Before the snapshot below, not after sending it: sending it may
    // wait for room on the requester's link for seconds, and a publish queued
    // for `dead` meanwhile (one that waited for room on its link, woken by
    // its death) would be in neither.
    if (wanted === undefined || wanted.size > 0) {
      let followers = this.followers.get(dead)
      if (followers === undefined) { followers = new Map(); this.followers.set(dead, followers) }
      followers.set(requestId, { link, wanted, until: Date.now() + RESCUE_WINDOW_MS })
    }
    const unsettled = this.unsettledTo(dead)
    this.ctx.log.debug({ peer: dead, to: link.peerName, requestId, filters: filters?.length, unsettled: unsettled.length, takeover }, 'answering a rescue request')
    let n = 0
    // Past the link's bound, up to cluster.dead_peer_buffer_bytes per answer:
    // these publishes were acknowledged already, while the publishes that
    // fill the link (a firehose into the taken sessions) were not and can
    // wait. Behind them, the answer of a starved node got a slot now and
    // then, and came 141 s late in the 64 KiB reconnect storm; the requester
    // had handed its sessions on long before. Past that budget (a restarted
    // peer's orphans are counted, not bounded in bytes) it waits for room.
    let budget = this.ctx.config.cluster.dead_peer_buffer_bytes
    const stopped = (): boolean => link.state === 'stopped'
    for (const publish of unsettled) {
      if (wanted !== undefined && !wanted.matches(publish.topic)) continue
      const buf = encodeMessage({ kind: 'rescue', requestId, publish })
      if (stopped()) return
      if (budget >= buf.length) {
        link.send(buf, 'held', true)
        budget -= buf.length
      } else {
        while (link.send(buf, 'held') === 'backpressure') {
          await link.whenWritable()
          if (stopped()) return
        }
      }
      n++
    }
    if (stopped()) return
    sendControl(this.ctx, link.peerName, { kind: 'rescue-done', requestId })
    if (takeover) {
      this.takeover(dead).answered.add(link.peerName)
      this.onTakeoverProgress?.(dead)
    }
    if (n > 0) this.ctx.log.info({ peer: dead, to: link.peerName, publishes: n }, 'sent the publishes a gone peer never settled to the node taking its sessions over')
    else this.ctx.log.debug({ peer: dead, to: link.peerName, requestId }, 'rescue request answered: nothing it wants was left unsettled')
  }

  /**
   * A QoS 1/2 publish (`buf`, as queued on the link) was queued for `dead`,
   * which is not up, after this node answered rescue requests about it: it
   * goes to each requester whose sessions subscribe to it, as a rescue of
   * that request. Resolves when they hold it (`hold`); undefined when no
   * requester wants it.
   */
  follow (dead: string, buf: Buffer, hold: (link: PeerLink, seq: number) => Promise<void>): Promise<void> | undefined {
    const followers = this.followers.get(dead)
    if (followers === undefined) return undefined
    const now = Date.now()
    let publish: ForwardedPublish | undefined
    const waits: Array<Promise<void>> = []
    for (const [requestId, f] of followers) {
      if (f.until < now || f.link.state === 'stopped') { followers.delete(requestId); continue }
      if (publish === undefined) {
        let m: DataPlaneMessage
        try { m = decodeMessage(buf) } catch { return undefined }
        if (m.kind !== 'publish' || m.publish.qos === 0) return undefined
        publish = m.publish
      }
      if (f.wanted !== undefined && !f.wanted.matches(publish.topic)) continue
      // Small and rare (a dead peer's traffic between its death and the new routes): past the link's bound rather than waiting.
      f.link.send(encodeMessage({ kind: 'rescue', requestId, publish }), 'held', true)
      waits.push(hold(f.link, f.link.lastQueuedSeq))
    }
    if (followers.size === 0) this.followers.delete(dead)
    if (waits.length === 0) return undefined
    return Promise.all(waits).then(() => {})
  }

  /**
   * This node's promotion of `dead`'s sessions (started at `since`) is done.
   * Peers learn it from its takeover request; one that took nothing still
   * says so, with a request that names no filter.
   */
  tookOver (dead: string, since: number): void {
    const t = this.takeover(dead)
    if (t.requestedAt < since) this.request(dead, [], true).catch(() => {})
    t.own = true
    this.onTakeoverProgress?.(dead)
  }

  /**
   * Whether every session of `dead` that lives on is on a live node: this
   * node's promotion is done, and every other up peer's takeover request was
   * answered here.
   */
  takeoverDone (dead: string): boolean {
    const t = this.takeovers.get(dead)
    if (t === undefined || !t.own) return false
    return this.ctx.links.upPeers().every((p) => p === dead || t.answered.has(p))
  }

  /** `peer` is alive again, or its link was dropped: a later death is a new takeover. */
  forgetTakeover (peer: string): void {
    if (this.takeovers.delete(peer)) this.onTakeoverProgress?.(peer)
  }

  private takeover (dead: string): Takeover {
    let t = this.takeovers.get(dead)
    if (t === undefined) { t = { own: false, requestedAt: 0, sessions: new Set(), filters: new Set(), answered: new Set() }; this.takeovers.set(dead, t) }
    return t
  }

  /**
   * `peer` is back after this node declared it dead: it did not hear of the
   * takeovers this node did meanwhile (a request goes to up peers only), and
   * may be waiting for them. Told now, with the sessions taken.
   */
  announceTakeovers (peer: string): void {
    for (const [dead, t] of this.takeovers) {
      if (dead === peer || !t.own || !this.ctx.links.isParked(dead)) continue
      this.request(dead, t.sessions, true, peer).catch(() => {})
    }
  }

  /**
   * A QoS 1/2 publish for `peer`, whose link was dropped before it could be
   * queued there: kept with what that link never settled, for whoever takes
   * its sessions over. False when too many are kept already.
   */
  keepOrphan (peer: string, buf: Buffer): boolean {
    const now = Date.now()
    let kept = this.orphans.get(peer)
    if (kept === undefined || kept.until < now) { kept = { messages: [], until: now + RESCUE_WINDOW_MS }; this.orphans.set(peer, kept) }
    if (kept.messages.length >= MAX_ORPHANS) return false
    kept.messages.push({ seq: 0, payload: buf })
    return true
  }

  /**
   * A QoS 1/2 publish for `dead` (as queued on its link) that waited, past
   * this node's own rescue requests about it: queued now for the sessions
   * this node took over from `dead` that subscribe to it, as a rescue would
   * have (the ledger keeps a session from getting it twice). Resolves when
   * they hold it; undefined when none took it.
   */
  rescueHere (dead: string, buf: Buffer): Promise<void> | undefined {
    let publish: ForwardedPublish | undefined
    const waits: Array<Promise<void>> = []
    const now = Date.now()
    for (const [id, r] of this.requests) {
      if (r.from !== dead || r.until < now || r.sessions.size === 0) continue
      if (publish === undefined) {
        let m: DataPlaneMessage
        try { m = decodeMessage(buf) } catch { return undefined }
        if (m.kind !== 'publish' || m.publish.qos === 0) return undefined
        publish = m.publish
      }
      waits.push(this.queueRescued(id, publish))
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => {})
  }

  done (peer: string, requestId: string): void {
    const r = this.requests.get(requestId)
    if (r !== undefined && r.waiting.delete(peer) && r.waiting.size === 0) r.finish()
  }

  /** A rescued publish from a peer: queued for the request's sessions, then settled. */
  received (link: PeerLink, requestId: string, publish: ForwardedPublish, info: DeliveryInfo): void {
    const settle = (): void => { if (info.hold === true && info.source !== undefined) link.settle(info.source) }
    this.queueRescued(requestId, publish).then(settle, settle)
  }

  /** QoS 1/2 publishes sent to `peer` and never settled: by its old process if it restarted, else on its link. */
  private unsettledTo (peer: string): ForwardedPublish[] {
    const now = Date.now()
    const orphans = this.orphans.get(peer)
    if (orphans !== undefined && orphans.until < now) this.orphans.delete(peer)
    const messages = [...(this.orphans.get(peer)?.messages ?? []), ...(this.ctx.links.get(peer)?.unheld() ?? [])]
    const out: ForwardedPublish[] = []
    for (const { payload } of messages) {
      let m: DataPlaneMessage
      try { m = decodeMessage(payload) } catch { continue }
      // Plain deliveries, and late copies for sessions that had moved there (session-moves.ts).
      if (m.kind === 'publish' && m.publish.qos > 0 && (m.publish.plain || m.publish.sessions.length > 0)) out.push(m.publish)
    }
    return out
  }

  private async queueRescued (requestId: string, publish: ForwardedPublish): Promise<void> {
    const request = this.requests.get(requestId)
    if (request === undefined) {
      this.ctx.log.debug({ requestId, topic: publish.topic }, 'rescued publish for a request this node no longer keeps: dropped')
      return
    }
    const packet = inboundPacket(publish)
    if (packet === undefined) return
    const waits: Array<Promise<unknown>> = []
    // Sessions taken over here, then moved on before this answer came (their
    // client resumed on another node, which fetched them from here): the
    // publish follows them, or it is lost, since its publisher was
    // acknowledged when the dead home was declared dead. A new home's ledger
    // drops a copy it had already (this node queued it before it left).
    const followed = this.followMoved?.(publish.plain ? request.sessions : new Set(publish.sessions.filter((id) => request.sessions.has(id))), packet)
    if (followed !== undefined) waits.push(followed)
    for (const clientId of request.sessions) {
      // A late copy is for the sessions it names only.
      if (!publish.plain && !publish.sessions.includes(clientId)) continue
      let matches = false
      for (const topic of this.ctx.store.storedFilters(clientId)) {
        if (routable(topic) && topicMatches(topic, publish.topic)) { matches = true; break }
      }
      if (!matches) continue
      const { queued, held } = this.ctx.store.enqueueFor(clientId, packet)
      if (queued) {
        this.rescued++
        this.ctx.log.debug({ client: clientId, from: request.from, topic: publish.topic }, 'rescued publish queued')
      }
      if (held !== undefined) waits.push(held)
    }
    if (waits.length > 0) await Promise.all(waits)
  }
}
