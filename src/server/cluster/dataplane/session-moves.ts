// Persistent sessions moving between nodes (session-transfer.ts has the
// protocol's shapes): a resuming client gets its session wherever it
// connects, with nothing it was owed lost, duplicated or out of order.
//
// Fetch. aedes' authenticate seam, layer 'cluster': once the access layer
// accepted a resuming CONNECT (Clean Start 0), every peer whose link is up is
// asked for the session (session-request), and the newest copy is stored
// here (a home copy over a replica; a replica held here counts too) before
// aedes restores the subscriptions and answers CONNACK. Waiting after the
// access layer means an unauthenticated CONNECT never moves or drops
// anybody's session. A clean start tells the peers to drop theirs.
//
// Serve. The old home closes a live connection of the client (0x8E), sends
// a snapshot (subscriptions, queue with packet identifiers, ledger, incoming
// QoS 2 identifiers) and from then on sends every message it queues for the
// session after it, addressed to the session (a late copy). When the new
// home acknowledged the session (session-ack, sent once the new home's
// replica holder has it), the old home deletes its copy but keeps following
// it for FOLLOW_MS: a message that still reaches it for the session's
// subscriptions (a peer that has not heard of the new route yet) goes after
// the session too. The new home queues late copies once each (the ledger),
// before the publisher's later messages still waiting.
//
// Order. Delivery to the moved session waits (bounded) until every peer
// said it has nothing on the way to the old home any more (the barriers of
// delivery-gates.ts; the old home settles a message for the session only
// once its late copy is held here). Then every late copy is in the queue, in
// its publisher's order, and the session sender starts. If the old home dies
// meanwhile, what it never settled is rescued (rescue.ts).
//
// Stop. A stopping node hands every session it holds to one peer each
// (rendezvous hashing over the up peers), unasked, and waits (bounded) for
// the acknowledgements; a client reconnecting anywhere finds its session.
import { randomUUID } from 'node:crypto'
import type { Aedes, Client } from 'aedes'
import { topicMatches } from '../../../topic-filter.js'
import type { StoredPacket } from '../../mqtt/outgoing-queues.js'
import type { DataPlaneContext } from './context.js'
import { localClient, sendControl } from './context.js'
import { compareStamps, type Stamp } from './hlc.js'
import type { DataPlaneMessage } from './messages.js'
import type { PeerLink } from './peer-link.js'
import { SessionFetch, bestSession, isEmptySession, type SessionAnswer, type TransferredSession } from './session-transfer.js'
import type { SessionReplication } from './session-replication.js'
import { rendezvous, transferable } from './session-replication.js'
import type { TakenReplica } from './replica-store.js'
import type { Takeover } from './takeover.js'
import type { Promotion } from './promotion.js'
import type { Rescue } from './rescue.js'
import type { Forwarding } from './forwarding.js'
import type { LocalRoutes } from './local-routes.js'
import type { DeliveryGates } from './delivery-gates.js'

/**
 * How long a resuming CONNECT waits for a peer's link to come up before it
 * stops asking that peer (one that died, or whose link dropped).
 */
const SESSION_FETCH_TIMEOUT_MS = 2000

/**
 * How long it waits for the answers of peers whose link is up. A holder
 * answers within a round trip (plus closing a live connection), but one
 * busy with thousands of reconnecting clients takes longer; a link that
 * drops meanwhile releases the wait at once. Past this the CONNECT is
 * refused (server unavailable): starting an empty session while a peer
 * may hold the real one would lose it once the two meet.
 */
const SESSION_FETCH_PATIENCE_MS = 20_000

/** A resuming CONNECT whose peers did not say in time whether they hold its session. */
export class SessionFetchUnanswered extends Error {}

/** CONNACK return code 3 (3.1.1 §3.2.2.3), reason 0x88 on MQTT 5. */
const SERVER_UNAVAILABLE = 3

/** How long a stopping node waits for peers to acknowledge the sessions it hands them. */
const HANDOFF_ON_STOP_TIMEOUT_MS = 2000

/** How long an old home sends late copies after a session that moved away. */
const FOLLOW_MS = 60_000

/** How long a late copy that arrived before its session waits for it. */
const EARLY_MS = 5000

/** A CONNECT noted by preConnect that never reached authentication (refused, dropped) is forgotten after this. */
const CONNECTING_TTL_MS = 30_000

/**
 * Sets `key` as the map's last entry. Entries noted this way with one TTL sit
 * in the order they expire, so dropExpired stops at the first one alive: a
 * burst of CONNECTs costs each one what expired, not every CONNECT under way.
 */
export function noteLast<V> (map: Map<string, V>, key: string, value: V): void {
  map.delete(key)
  map.set(key, value)
}

/** Drops the expired entries at the front of a map kept by noteLast (a clock stepped back only delays a few). */
export function dropExpired (map: Map<string, { until: number }>, now: number): void {
  for (const [key, entry] of map) {
    if (entry.until >= now) return
    map.delete(key)
  }
}

/** Sessions this node serves while they move away, and follows once they left. */
interface Leaving { clientId: string, to: string, filters: string[], until: number, requestId: string, replica?: string | undefined, since?: number }

/**
 * Whether the connection whose CONNECT asked for a session is gone (its
 * client gave up waiting for the CONNACK, or the node is closing it). aedes
 * stops reading the socket while authenticate runs, so an end of stream the
 * client sent shows only in the stream's state, not as an event yet.
 */
export function connectionGone (client: Client): boolean {
  const conn = (client as Client & { conn?: { destroyed?: boolean, readableEnded?: boolean, _readableState?: { ended?: boolean } } }).conn
  return (client as Client & { closed?: boolean }).closed === true || conn?.destroyed === true ||
    conn?.readableEnded === true || conn?._readableState?.ended === true
}

export interface MovesHost {
  takeover: Takeover
  replication: SessionReplication
  promotion: Promotion
  rescue: Rescue
  forwarding: Forwarding
  routes: LocalRoutes
  gates: DeliveryGates
  /** What a session fetch waits for first, if anything (start-window.ts: the peers back after a whole-cluster restart). */
  fetchWait?: () => Promise<void> | undefined
  /** A replica read from disk whose home is absent may be taken over when the start window ends: resolves then (start-window.ts). */
  beforeTakeover?: (clientId: string) => Promise<void> | undefined
  /** Whether the session here is a copy read from disk, not connected since (session-reconcile.ts). */
  diskCopy?: (clientId: string) => boolean
  /** A session was stored here from elsewhere: it is no longer a disk copy. */
  storedHere?: (clientId: string) => void
}

export class SessionMoves {
  private readonly ctx: DataPlaneContext
  private readonly host: MovesHost
  /** Client ids whose CONNECT is on its way through aedes here, and whether they resume. */
  private readonly connectingIds = new Map<string, { resume: boolean, until: number }>()
  /**
   * When each CONNECT under way here arrived (HLC), until its session is
   * here or it failed: of two CONNECTs of one client on two nodes (a client
   * that gave up on a slow one and tried another), the later one keeps the
   * session (serve).
   */
  private readonly attempts = new Map<string, { stamp: Stamp, until: number }>()
  /** Session requests this node made and is waiting for answers to. */
  private readonly fetches = new Map<string, SessionFetch>()
  /** Sessions sent to a peer (a move, a hand-off), until it acknowledges; and after, followed: by request id. */
  private readonly leaving = new Map<string, Leaving>()
  /** Hand-offs on stop waiting for their acknowledgement. */
  private readonly handoffWaiters = new Map<string, () => void>()
  /**
   * Late copies that arrived for a session before the session itself (its
   * snapshot is still being stored): queued once it is, each once.
   */
  private readonly early = new Map<string, { packets: Array<{ packet: StoredPacket, done: () => void }>, timer: NodeJS.Timeout }>()
  /** Resuming CONNECTs refused because a peer did not say in time whether it holds the session. */
  refusedUnanswered = 0
  /** Sessions on their way here (a fetch under way). */
  private readonly arriving = new Set<string>()
  /** Sessions that came here from a peer's home copy, and until when (movedAwayFrom). */
  private readonly recentlyFrom = new Map<string, Map<string, number>>()
  /** A client connecting here is fetching its session (or being handed it) right now. */
  isArriving (clientId: string): boolean { return this.arriving.has(clientId) }

  constructor (ctx: DataPlaneContext, host: MovesHost) {
    this.ctx = ctx
    this.host = host
  }

  connecting (clientId: string): boolean { return this.connectingIds.has(clientId) }

  // ---- aedes seams ----------------------------------------------------------------------

  /** preConnect, layer 'cluster': notes who is connecting and whether it resumes. */
  preConnectLayer (next: Aedes['preConnect']): Aedes['preConnect'] {
    return (client, packet, callback) => {
      if (typeof packet.clientId === 'string' && packet.clientId !== '') {
        const now = Date.now()
        dropExpired(this.connectingIds, now)
        dropExpired(this.attempts, now)
        noteLast(this.connectingIds, packet.clientId, { resume: packet.clean !== true, until: now + CONNECTING_TTL_MS })
        noteLast(this.attempts, packet.clientId, { stamp: this.ctx.clock.now(), until: now + CONNECTING_TTL_MS })
      }
      next(client, packet, callback)
    }
  }

  /** authenticate, layer 'cluster': once access accepted the CONNECT, the session comes here (or is dropped elsewhere). */
  authenticateLayer (next: Aedes['authenticate']): Aedes['authenticate'] {
    return (client, username, password, callback) => {
      next(client, username, password, (err, ok) => {
        const c = this.connectingIds.get(client.id)
        this.connectingIds.delete(client.id)
        if (err !== null && err !== undefined) { this.attempts.delete(client.id); return callback(err, ok) }
        if (ok !== true || c === undefined || !this.ctx.running()) { this.attempts.delete(client.id); return callback(err, ok) }
        if (!c.resume) {
          this.discardElsewhere(client.id)
          this.attempts.delete(client.id)
          return callback(null, true)
        }
        this.fetch(client.id, () => connectionGone(client)).then(() => callback(null, true), (e: Error) => {
          if (e instanceof SessionFetchUnanswered) {
            this.refusedUnanswered++
            this.ctx.warn('warn', { client: client.id, err: e.message }, 'resuming CONNECT refused (server unavailable): peers did not say whether they hold the session')
            return callback(Object.assign(new Error('server unavailable'), { returnCode: SERVER_UNAVAILABLE }), false)
          }
          this.ctx.warn('warn', { client: client.id, err: e.message }, 'session not fetched from peers')
          callback(null, true)
        })
      })
    }
  }

  // ---- fetching a session ------------------------------------------------------------------

  /**
   * A resuming CONNECT here: asks every up peer for the client's session,
   * stores the newest copy, and acknowledges every copy so its holder
   * deletes it.
   */
  private async fetch (clientId: string, gone: () => boolean = () => false): Promise<void> {
    this.arriving.add(clientId)
    try {
      await this.fetchFromPeers(clientId, gone)
    } finally {
      this.arriving.delete(clientId)
      this.attempts.delete(clientId)
      void this.takeEarly(clientId)
    }
  }

  /**
   * `gone`: whether the CONNECT that asked was abandoned. A fetched session
   * is stored here, or left where it was, whatever happens to that CONNECT:
   * a client that gave up on a slow CONNECT (the fetch waited for the peers
   * after a whole-cluster restart) and reconnected elsewhere must not find
   * its session moved to a node it left, where its new node's fetch may not
   * reach it and its connect announcement then removes it as stale (the
   * session lost in the 5-node restart-all chaos run, seed 16). So once the
   * CONNECT is gone nothing is asked for, taken or acknowledged, and a copy
   * stored here meanwhile goes again, unacknowledged: its holders keep theirs.
   */
  private async fetchFromPeers (clientId: string, gone: () => boolean = () => false): Promise<void> {
    await this.host.fetchWait?.()
    // A replica of it here, of a home that did not come back: taken over here, then fetched against.
    await this.host.beforeTakeover?.(clientId)
    await this.host.promotion.promoting.get(clientId)
    if (gone()) {
      this.ctx.log.info({ client: clientId }, 'session fetch: its CONNECT was abandoned before the peers were asked: the session stays where it is')
      return
    }
    // Every member believed alive is asked, as soon as its link is up: a
    // node that just started may hold no link yet, and its peers hold the
    // session or its replica.
    const peers = this.ctx.links.alivePeers()
    const requestId = randomUUID()
    let answers: SessionAnswer[] = []
    if (peers.length > 0) {
      const fetch = new SessionFetch(requestId, clientId, peers, SESSION_FETCH_PATIENCE_MS)
      this.fetches.set(requestId, fetch)
      const since = this.attempts.get(clientId)?.stamp
      const request: DataPlaneMessage = { kind: 'session-request', requestId, clientId, stamp: this.ctx.clock.now(), resume: true, ...(since === undefined ? {} : { since }) }
      for (const peer of peers) {
        void this.ctx.links.whenUp(peer, SESSION_FETCH_TIMEOUT_MS).then((up) => {
          if (up) sendControl(this.ctx, peer, request)
          else fetch.forget(peer)
        })
      }
      answers = await fetch.done
      this.fetches.delete(requestId)
      // Nothing is taken or acknowledged: every copy stays where it is for the client's next try.
      if (fetch.unanswered.length > 0) throw new SessionFetchUnanswered(`no answer from ${fetch.unanswered.join(', ')} within ${SESSION_FETCH_PATIENCE_MS / 1000} s`)
    }
    if (gone()) {
      // Unacknowledged, the copies stay with their holders (serve() keeps them until an ack).
      this.ctx.log.info({ client: clientId, copies: answers.map((a) => a.peer) }, 'session fetch: its CONNECT was abandoned meanwhile: the session stays where it was')
      return
    }
    // A replica held here counts like a peer's, after any home copy: its home
    // may be dead and not declared so yet. The session lives here from now
    // on, so a replica of it here has no more use either way.
    const replicas = this.host.replication.replicas
    // A replica read back from disk and not confirmed by its home stays out of it (and where it is).
    const local = replicas.isUnconfirmed(clientId) ? undefined : replicas.take(clientId)
    const candidates = local === undefined || isEmptySession(local.session)
      ? answers
      : [...answers, { peer: this.ctx.name, session: local.session, replica: true }]
    const best = bestSession(candidates)
    this.ctx.log.debug({ client: clientId, asked: peers, copies: candidates.map((c) => `${c.peer}${c.replica ? '(replica)' : ''}:${c.session.queue.length}`), chosen: best?.peer }, 'session fetched')
    if (best !== undefined && await this.store(clientId, best.peer, best.session)) {
      if (best.peer !== this.ctx.name && gone()) {
        // Abandoned while the copy was being stored: ours goes, theirs stay (not acknowledged).
        this.ctx.log.info({ client: clientId, from: best.peer }, 'session fetch: its CONNECT was abandoned while the session was stored: it stays where it was')
        await this.remove(clientId)
        return
      }
      if (best.replica && best.session.rescueFrom !== undefined && best.session.rescueFrom !== this.ctx.name) {
        // Its home may be dead: what peers sent it and it never settled comes as rescues first.
        this.host.gates.hold([clientId], this.host.rescue.request(best.session.rescueFrom, [clientId]))
      } else if (!best.replica && best.peer !== this.ctx.name) {
        this.host.gates.hold([clientId], this.host.gates.barrier(clientId, best.peer))
        this.movedFrom(best.peer, clientId)
      }
    }
    // Older copies are acknowledged too: they are stale, their holders drop them.
    const ack: DataPlaneMessage = { kind: 'session-ack', requestId, clientId }
    for (const a of answers) sendControl(this.ctx, a.peer, ack)
    // The session lives here: what this node lent to fetches that never
    // acknowledged (their CONNECT was abandoned) is not followed any more.
    if (this.ctx.store.hasSession(clientId)) {
      for (const [id, l] of this.leaving) if (l.clientId === clientId && l.until === 0 && !id.startsWith('handoff-')) this.leaving.delete(id)
    }
  }

  /**
   * Stores a transferred session here unless the copy held here is newer;
   * resolves true when stored, once its new replica holder has it (so the
   * old copy may go).
   */
  async store (clientId: string, from: string, session: TransferredSession, promoted = false): Promise<boolean> {
    const store = this.ctx.store
    const mine = this.host.takeover.stampOf(clientId)
    // A copy taken over from a peer believed dead yields to any other; so
    // does a copy read from disk and not connected since (bestSession ranks
    // it below any copy that answered with it), even when the incoming copy
    // is unstamped too: a replica promoted from a session that was itself
    // read from disk, which got what was published while this node was down.
    const yields = (!promoted && this.host.promotion.isPromoted(clientId)) || (!promoted && this.host.diskCopy?.(clientId) === true)
    if (store.hasSession(clientId) && compareStamps(session.stamp, mine) <= 0 && !yields) return false
    this.host.storedHere?.(clientId)
    if (!promoted) this.host.promotion.forget(clientId)
    // Before the import: its replication starts there, and a replica holder
    // keeps the copy with the newer stamp.
    this.host.takeover.setStamp(clientId, session.stamp)
    await store.importSession(clientId, {
      subscriptions: session.subscriptions,
      queue: session.queue as StoredPacket[],
      ledger: session.ledger,
      incoming: session.incoming as StoredPacket[]
    })
    // Back here: no more late copies follow it to where it was.
    for (const [id, l] of this.leaving) if (l.clientId === clientId && l.until !== 0) this.leaving.delete(id)
    void this.takeEarly(clientId)
    this.ctx.log.info({ client: clientId, from, subscriptions: session.subscriptions.length, queued: session.queue.length }, 'persistent session moved here from another node')
    const held = this.host.replication.resync(clientId)
    if (held !== undefined) await held
    return true
  }

  /**
   * Queues a late copy for a session that moved here; one that comes before
   * the session is stored waits for it (EARLY_MS at most). Resolves when it
   * is queued and held.
   */
  async queueLate (clientId: string, packet: StoredPacket): Promise<void> {
    if (this.ctx.store.hasSession(clientId)) {
      await this.ctx.store.enqueueFor(clientId, packet).held
      return
    }
    // Not coming here (any more): nothing to queue it for.
    if (!this.arriving.has(clientId)) return
    let e = this.early.get(clientId)
    if (e === undefined) {
      const timer = setTimeout(() => {
        const gone = this.early.get(clientId)
        this.early.delete(clientId)
        for (const p of gone?.packets ?? []) p.done()
      }, EARLY_MS)
      timer.unref()
      e = { packets: [], timer }
      this.early.set(clientId, e)
    }
    await new Promise<void>((resolve) => e.packets.push({ packet, done: resolve }))
  }

  /**
   * The session's arrival here is decided: the late copies that came before
   * it join its queue (when it is held here), or go (when it is not).
   */
  private takeEarly (clientId: string): Promise<void> | undefined {
    const e = this.early.get(clientId)
    if (e === undefined) return undefined
    this.early.delete(clientId)
    clearTimeout(e.timer)
    const waits: Array<Promise<void>> = []
    const here = this.ctx.store.hasSession(clientId)
    for (const { packet, done } of e.packets) {
      if (!here) { done(); continue }
      const { held } = this.ctx.store.enqueueFor(clientId, packet)
      if (held === undefined) done()
      else { held.then(done, done); waits.push(held) }
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => {})
  }

  /** Stores a promoted replica (promotion.ts). */
  async storeReplica (clientId: string, from: string, replica: TakenReplica): Promise<boolean> {
    if (isEmptySession(replica.session)) return false
    return await this.store(clientId, from, replica.session, true)
  }

  /** A clean start on this node: the client's old session is discarded wherever it is. */
  private discardElsewhere (clientId: string): void {
    const since = this.attempts.get(clientId)?.stamp
    const m: DataPlaneMessage = { kind: 'session-request', requestId: randomUUID(), clientId, stamp: this.ctx.clock.now(), resume: false, ...(since === undefined ? {} : { since }) }
    for (const peer of this.ctx.links.peers) sendControl(this.ctx, peer, m)
  }

  /** An answer to one of our session requests; false when it is not one (a hand-off from a stopping peer). */
  answered (peer: string, requestId: string, session: TransferredSession | null, replica: boolean): boolean {
    return this.fetches.get(requestId)?.answer(peer, session, replica) === true
  }

  /** A session came here from `peer`'s home copy (a fetch, or its hand-off on stop). */
  private movedFrom (peer: string, clientId: string): void {
    let ids = this.recentlyFrom.get(peer)
    if (ids === undefined) { ids = new Map(); this.recentlyFrom.set(peer, ids) }
    const now = Date.now()
    // In expiry order (one FOLLOW_MS for all): the expired ones are first.
    ids.delete(clientId)
    ids.set(clientId, now + FOLLOW_MS)
    for (const [id, until] of ids) {
      if (until >= now) break
      ids.delete(id)
    }
  }

  /**
   * A peer that sessions left for here lately is gone (left, dead or
   * restarted) before it could send everything it got for them afterwards
   * as late copies: what peers sent it and it never settled (kept on their
   * links, or as orphans once a link was dropped) is rescued for them.
   */
  movedAwayFrom (peer: string): void {
    const ids = this.recentlyFrom.get(peer)
    this.recentlyFrom.delete(peer)
    if (ids === undefined) return
    const now = Date.now()
    const here = [...ids].filter(([id, until]) => until >= now && this.ctx.store.hasSession(id)).map(([id]) => id)
    if (here.length > 0) this.host.gates.hold(here, this.host.rescue.request(peer, here))
  }

  /** A link dropped for good: its peer's answers are not waited for. */
  peerGone (peer: string): void {
    for (const f of this.fetches.values()) f.forget(peer)
    for (const [id, l] of this.leaving) if (l.to === peer && l.until === 0) this.leaving.delete(id)
    this.host.gates.peerGone(peer)
  }

  // ---- serving a request ----------------------------------------------------------------------

  /**
   * A peer asks for a session: a live connection here is closed first (0x8E,
   * as a takeover), so the snapshot taken after it is final; the copy here
   * is deleted only when the peer acknowledged storing it.
   */
  async serve (link: PeerLink, m: Extract<DataPlaneMessage, { kind: 'session-request' }>): Promise<void> {
    const { clientId } = m
    try { this.ctx.clock.observe(m.stamp) } catch { /* too far ahead: compared by stamp anyway */ }
    await this.host.beforeTakeover?.(clientId)
    await this.host.promotion.promoting.get(clientId)
    await this.host.gates.gate(clientId)
    const local = localClient(this.ctx, clientId)
    if (local !== undefined) {
      const mine = this.host.takeover.connectedStamp(local)
      if (mine !== undefined && compareStamps(mine, m.stamp) > 0) {
        // Connected here after the request was made: this connection is the newer one.
        if (m.resume) sendControl(this.ctx, link.peerName, { kind: 'session-transfer', requestId: m.requestId, clientId, session: null })
        return
      }
      if (!this.host.takeover.isClosing(local)) this.ctx.log.debug({ client: clientId, peer: link.peerName }, 'client id connecting on another node: closing the connection here')
      await this.host.takeover.close(local, link.peerName)
    }
    const here = this.attempts.get(clientId)
    if (here !== undefined && here.until >= Date.now() && compareStamps(here.stamp, m.since ?? m.stamp) > 0) {
      // A CONNECT of this client arrived here after the one that asks: the
      // client gave up on that one (or will), and this one gets the session.
      this.ctx.log.info({ client: clientId, peer: link.peerName }, 'session request of an older CONNECT than one under way here: the session stays for the newer one')
      if (m.resume) sendControl(this.ctx, link.peerName, { kind: 'session-transfer', requestId: m.requestId, clientId, session: null })
      return
    }
    const store = this.ctx.store
    if (!m.resume) {
      if (store.hasSession(clientId)) await store.cleanSubscriptions({ id: clientId })
      this.host.replication.replicas.delete(clientId)
      return
    }
    if (!store.hasSession(clientId)) {
      // Not at home here; a replica is sent (and dropped once acknowledged)
      // for the case its home is dead and not declared so yet. Never the
      // asker's own session back: it is that session's home.
      const replicas = this.host.replication.replicas
      const replica = replicas.peek(clientId)
      // One read back from disk whose home has not confirmed it may be of a session ended since: not offered.
      if (replica !== undefined && replica.owner !== link.peerName && !isEmptySession(replica.session) && !replicas.isUnconfirmed(clientId)) {
        this.leaving.set(m.requestId, { clientId, to: link.peerName, filters: [], until: 0, requestId: m.requestId, replica: replica.owner, since: Date.now() })
        sendControl(this.ctx, link.peerName, { kind: 'session-transfer', requestId: m.requestId, clientId, session: replica.session, replica: true })
      } else {
        sendControl(this.ctx, link.peerName, { kind: 'session-transfer', requestId: m.requestId, clientId, session: null })
      }
      return
    }
    const session = await this.snapshot(clientId)
    this.leaving.set(m.requestId, { clientId, to: link.peerName, filters: [...this.host.routes.storedOf(clientId)], until: 0, requestId: m.requestId, since: Date.now() })
    // A copy taken over from a peer believed dead counts as a replica: the original, if it answers, wins.
    const promoted = this.host.promotion.isPromoted(clientId)
    sendControl(this.ctx, link.peerName, { kind: 'session-transfer', requestId: m.requestId, clientId, session, ...(promoted ? { replica: true } : {}) })
  }

  private async snapshot (clientId: string): Promise<TransferredSession> {
    const s = await this.ctx.store.exportSession(clientId)
    return {
      stamp: this.host.takeover.stampOf(clientId),
      subscriptions: s.subscriptions,
      queue: s.queue.map(transferable),
      ledger: s.ledger,
      incoming: s.incoming.map(transferable)
    }
  }

  /**
   * The session store queued a message for a session: if the session is on
   * its way to another node, the message goes after it (a late copy).
   */
  queued (clientId: string, entry: StoredPacket): Promise<void> | undefined {
    let waits: Array<Promise<void>> | undefined
    const now = Date.now()
    // A replica lent to a resuming client's node may have become a session
    // here since (its home died): what is queued for it follows it too.
    for (const l of this.leaving.values()) {
      if (l.clientId !== clientId || l.until !== 0) continue
      // Never acknowledged (the asker's CONNECT was abandoned): not followed for ever.
      if (l.since !== undefined && l.since + FOLLOW_MS < now) { this.leaving.delete(l.requestId); continue }
      const w = this.host.forwarding.forwardToSession(l.to, entry as never, clientId)
      if (w !== undefined) (waits ??= []).push(w)
    }
    return waits === undefined ? undefined : Promise.all(waits).then(() => {})
  }

  /** Sessions that left this node lately and whose subscriptions match: late copies follow them. */
  followers (topic: string): Array<{ clientId: string, to: string }> {
    if (this.leaving.size === 0) return []
    const now = Date.now()
    const out: Array<{ clientId: string, to: string }> = []
    for (const [id, l] of this.leaving) {
      if (l.until === 0) continue
      if (l.until < now) { this.leaving.delete(id); continue }
      if (l.filters.some((f) => topicMatches(f, topic))) out.push({ clientId: l.clientId, to: l.to })
    }
    return out
  }

  /** The peer stored a session we sent: our copy goes (and is followed), unless the client came back here meanwhile. */
  async acknowledged (requestId: string, peer: string): Promise<void> {
    const l = this.leaving.get(requestId)
    if (l === undefined || l.to !== peer) return
    const waiter = this.handoffWaiters.get(requestId)
    this.handoffWaiters.delete(requestId)
    waiter?.()
    if (l.replica !== undefined) {
      this.leaving.delete(requestId)
      // The requester resumed from our replica or from the home copy: either
      // way this one is spent, unless a new home replicated it here since.
      if (this.host.replication.replicas.ownerOf(l.clientId) === l.replica) this.host.replication.replicas.delete(l.clientId)
      // Promoted here meanwhile (its home died while the requester waited):
      // what it got since followed as late copies; this copy goes.
      if (!this.ctx.store.hasSession(l.clientId) || localClient(this.ctx, l.clientId) !== undefined) return
      this.leaving.set(requestId, { ...l, replica: undefined, until: Date.now() + FOLLOW_MS, filters: [...this.host.routes.storedOf(l.clientId)] })
      await this.remove(l.clientId)
      return
    }
    if (localClient(this.ctx, l.clientId) !== undefined) {
      this.leaving.delete(requestId)
      return
    }
    l.until = Date.now() + FOLLOW_MS
    await this.remove(l.clientId)
  }

  /** Deletes a session held here (it moved, expired, or a copy elsewhere won). */
  async remove (clientId: string): Promise<void> {
    await this.ctx.store.cleanSubscriptions({ id: clientId })
    this.host.takeover.forget(clientId)
    this.host.promotion.forget(clientId)
  }

  /** A stopping peer hands us a session (or an answer came after its CONNECT went on without it): stored, acknowledged. */
  async adopt (link: PeerLink, requestId: string, clientId: string, session: TransferredSession): Promise<void> {
    if (localClient(this.ctx, clientId) !== undefined) return
    if (this.host.takeover.announcedAfter(clientId, session.stamp)) {
      // Its client connected on another node since this copy's connection
      // (the fetch that asked for it was abandoned, and the client resumed
      // elsewhere): stale, as announced() would have found it had it been
      // here. Stored, it collected messages the client got elsewhere and
      // gave them again when the client came back (QoS 2 twice, chaos
      // seed 9 with gossip, kill and pause faults). Acknowledged, so its
      // sender drops it too.
      this.ctx.log.info({ client: clientId, peer: link.peerName }, 'late session copy not taken: its client connected on another node since')
      sendControl(this.ctx, link.peerName, { kind: 'session-ack', requestId, clientId })
      return
    }
    this.arriving.add(clientId)
    try {
      if (await this.store(clientId, link.peerName, session) && session.rescueFrom !== undefined) {
        this.host.gates.hold([clientId], this.host.rescue.request(session.rescueFrom, [clientId]))
        if (session.rescueFrom === link.peerName) this.movedFrom(link.peerName, clientId)
      }
    } finally {
      this.arriving.delete(clientId)
      this.attempts.delete(clientId)
      void this.takeEarly(clientId)
    }
    sendControl(this.ctx, link.peerName, { kind: 'session-ack', requestId, clientId })
  }

  // ---- stop ------------------------------------------------------------------------------------

  /**
   * On stop: every persistent session held here goes to one peer whose link
   * is up, and this node waits (bounded) for the acknowledgements.
   */
  async handOff (): Promise<void> {
    const up = this.ctx.links.upPeers()
    // Every stored session, shared-subscription-only ones included.
    const ids = this.ctx.store.sessions()
    if (up.length === 0 || ids.length === 0) return
    await Promise.all(ids.map(async (id) => await this.host.gates.gate(id)))
    const waits: Array<Promise<void>> = []
    for (const clientId of ids) {
      const peer = rendezvous(clientId, up)
      // What peers sent here and this node will not settle any more (a cut
      // link, a stop mid-flight) is rescued by the new home; the ledger
      // drops what reached it through here as well.
      const session = { ...await this.snapshot(clientId), rescueFrom: this.ctx.name }
      const requestId = `handoff-${randomUUID()}`
      this.leaving.set(requestId, { clientId, to: peer, filters: [...this.host.routes.storedOf(clientId)], until: 0, requestId })
      sendControl(this.ctx, peer, { kind: 'session-transfer', requestId, clientId, session })
      waits.push(new Promise<void>((resolve) => { this.handoffWaiters.set(requestId, resolve) }))
    }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, HANDOFF_ON_STOP_TIMEOUT_MS) })
    await Promise.race([Promise.all(waits), timeout])
    clearTimeout(timer)
    this.handoffWaiters.clear()
  }
}
