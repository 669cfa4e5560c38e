// The cluster data plane wired into a node: one peer link per live member on
// the cluster port, subscription-aware routing of publishes between nodes,
// and the bus channels that show what leaves and arrives. The building
// blocks (links, routing table, wire messages) are in ./dataplane/, described
// in docs/data-plane.md; this file is their composition and the seams into
// aedes.
//
// Seams into aedes (why these):
// - Outbound publishes: aedes' `published` handler. It is aedes' documented
//   hook, called once per accepted publish from a client or a will (client
//   set) and for our own deliveries from peers and aedes' $SYS traffic
//   (client null), and aedes answers the publisher (PUBACK / PUBREC) only
//   when it calls back. So a reliable send that meets backpressure simply
//   delays that callback: a slow peer slows the publisher instead of growing
//   the heap, and a QoS 1/2 message is never dropped. A cluster-aware
//   mqemitter would see every delivery, $SYS and peer traffic included, and
//   would have to tell them apart again.
// - Messages from peers go to aedes.publish() without a client, so the
//   `published` hook never forwards them again (no client can publish without
//   one: the marker is structural, not a packet field a client could set).
// - Routes: every live subscription reaches aedes.subscribe/unsubscribe
//   (client subscriptions and the local shared-subscription groups), and a
//   persistent session's subscriptions reach the persistence
//   (add/remove/cleanSubscriptions), where they stay while the client is
//   offline; a filter is routed while either source holds it, so messages
//   reach the node that queues them for an offline session.
// - Retained: the persistence's storeRetained (aedes calls it for every
//   retained publish before delivering), so the LWW store and aedes' own
//   retained store, which SUBSCRIBE reads, move together.
// - aedes' mq.emit, only to learn when a message from a peer reached its
//   subscribers (see pumpInbound); aedes' 'client' event for takeovers;
//   SharedSubscriptions.clusterMode/deliverTo for cluster-wide groups.
// - Session move (dataplane/session-transfer.ts): aedes' preConnect notes a
//   connecting client id and whether it resumes; the persistence's
//   subscriptionsByClient, which aedes calls for a resuming client after
//   authentication and before it restores the session and answers CONNACK,
//   first fetches the session from the peer that holds it. A clean start
//   reaches cleanSubscriptions instead, which tells the peers to drop theirs.
//   Hooking after authenticate means an unauthenticated CONNECT never moves
//   or drops anybody's session.
import { randomUUID } from 'node:crypto'
import { connect as netConnect, isIP, Socket as NetSocket, type Socket } from 'node:net'
import type { Aedes, Client } from 'aedes'
import type { Registry } from 'prom-client'
import type { Config } from '../../../config/index.js'
import type { Logger } from '../../../log.js'
import { rateLimited } from '../../../log.js'
import type { Bus } from '../../bus.js'
import type { MqttServer } from '../../mqtt/index.js'
import { MESSAGE_TARGETS } from '../../mqtt/bus-events.js'
import { displayTopic, isMarker, toMarker } from '../../mqtt/shared-subscriptions.js'
import type { DeliveredPacket } from '../../mqtt/aedes-internals.js'
import { Keyring } from '../keyring.js'
import type { Member, Membership } from '../membership/membership.js'
import type { LinkStreamHandler } from '../membership/net-transport.js'
import type { LinkFaults } from '../fault-injection.js'
import {
  HybridLogicalClock, LinkAcceptor, compareStamps, PeerLink, RetainedStore, RetainedSync, RoutingTable, decodeMessage, encodeMessage, registerDataPlaneMetrics,
  SessionFetch, bestSession, isEmptySession, queueKey,
  type DataPlaneMessage, type DeliveryInfo, type ForwardedPublish, type SessionAnswer, type TransferredPacket, type Qos, type RetainedEntry, type RouteDelta, type Stamp, type TransferredSession
} from './index.js'
import type { StoredPacket } from '../../mqtt/persistence.js'
import { SessionReplication, rendezvous, transferable } from './session-replication.js'
import type { TakenReplica } from './replica-store.js'
import { topicMatches } from '../../../topic-filter.js'
import { AedesPacket } from '../../mqtt/outgoing-queues.js'

/**
 * Messages from peers queued for aedes above which the link they arrive on
 * stops reading (resumed at half): a local subscriber that stalls aedes must
 * slow the remote publishers, not grow this node's heap.
 */
const INBOUND_HIGH_WATER = 10_000

/** Messages from peers being written out by aedes at once (see pumpInbound). */
const INBOUND_PIPELINE = 64

interface InboundMessage {
  packet: { topic: string, payload: Buffer, qos: number, properties?: unknown }
  plain: boolean
  shared: string[]
  /** Which send it was, for reliable ones: the link (`peer/incarnation`), its sequence number (see sourceOf) and the message's name (StoredPacket.msgId). */
  source?: InboundSource | undefined
}

interface InboundSource { link: string, seq: number, msgId?: string | undefined }

/** A session that moved here lately (DataPlane.movedIn). */
interface MovedIn {
  /** Names of the messages queued for it here (StoredPacket.msgId). */
  ids: Set<string>
  /** Stamps of live copies of those not queued again: aedes must not send them either (authorizeForward). */
  suppressed: Set<string>
  until: number
}

const stampKey = (p: { brokerId?: string | undefined, brokerCounter?: number | undefined }): string => `${p.brokerId}\u0000${p.brokerCounter}`

/** A message's name across the cluster (StoredPacket.msgId): the process it was published on and aedes' number for it there. */
const messageName = (process: string, id: number): string => `${process}/${id}`

/** Sessions taken over from a dead home and what they may still be owed from it (DataPlane.rescue). */
interface RescueRequest {
  id: string
  from: string
  /** Peers that have not said they sent everything (rescue-done); `done` resolves when none is left, or after RESCUE_ANSWER_TIMEOUT_MS. */
  waiting: Set<string>
  done: Promise<void>
  finish: () => void
  /** `from` is alive, handing its sessions over (not dead or restarted). */
  live: boolean
  until: number
  sessions: Map<string, { seen: Set<string>, after: Record<string, number> }>
}

/** A replica as a session to resume from: its home may be dead, so what was on the way there is to be rescued. */
function rescuable (r: TakenReplica): TransferredSession {
  return { ...r.session, rescue: { from: r.owner, seen: r.seen, after: r.after } }
}

/** `a/b/n` -> [`a/b`, n]: a link source (`peer/incarnation/seq`) or a message name (`process/number`). */
function splitLast (name: string): [string, number] {
  const cut = name.lastIndexOf('/')
  return [name.slice(0, cut), Number(name.slice(cut + 1))]
}

/**
 * How long a message a peer acknowledged stays available for a rescue. A
 * peer acknowledges on receipt, then queues it for its sessions and
 * replicates that within a few event-loop turns, so a death in between can
 * lose it; but rescuing acknowledged messages also re-queues ones the dead
 * node had already delivered before its replica heard of them (QoS 2 twice:
 * 10 in a 10-minute 5-node chaos run). Exactly-once wins: only what the
 * dead node never acknowledged is rescued (0).
 */
const RETAIN_ACKED_MS = 0

/** How long a session that was just taken over waits for its rescues before it moves on again (a session request for it). */
const RESCUE_ANSWER_TIMEOUT_MS = 1000

/**
 * Longest a client whose session moved here from a living node waits for that
 * node's tail before live deliveries flow (settled): the tail usually comes
 * within a few milliseconds; messages arriving meanwhile wait in the queue,
 * which is bounded.
 */
const TAIL_TIMEOUT_MS = 250

/** How long a session taken from a dead home accepts rescued publishes, and a restarted peer's unacknowledged ones are kept for it. */
const RESCUE_WINDOW_MS = 60_000

/** aedes counters of messages from peers mapped to their sources, at most this many (the oldest go). */
const MAX_SOURCES = 100_000

/** How long a session that moved here remembers which messages it was queued (DataPlane.movedIn), and at most how many. */
const MOVED_IN_MS = RESCUE_WINDOW_MS
const MOVED_IN_MAX_IDS = 20_000

/** MQTT 5 DISCONNECT reason: another connection with the same client id took the session over. */
const SESSION_TAKEN_OVER = 0x8E

/**
 * How long a resuming CONNECT waits for its peers to say whether they hold
 * its session. A holder answers within a round trip (plus closing a live
 * connection); this bounds the wait when one died or its link dropped, after
 * which the CONNECT goes on with what this node holds.
 */
const SESSION_FETCH_TIMEOUT_MS = 2000

/** How long a stopping node waits for peers to acknowledge the sessions it hands them. */
const HANDOFF_ON_STOP_TIMEOUT_MS = 2000

/** A CONNECT noted by preConnect that never reached the session step (refused, dropped) is forgotten after this. */
const CONNECTING_TTL_MS = 30_000

/**
 * A remote stamp further ahead of our wall clock is merged by its stamp but
 * not adopted by our clock (see hlc.ts): one node with a clock set to next
 * year must not drag every clock, and every retained entry, with it.
 */
const MAX_CLOCK_DRIFT_MS = 60_000

/**
 * brokerId of the packets we hand aedes for messages from peers. aedes keeps
 * it through its packet copies (aedes-packet), so the storeRetained hook can
 * tell a peer's retained publish (already stored from its replicated entry)
 * from a local client's write. No client can set it: aedes stamps its own id
 * on every client publish.
 */
const PEER_BROKER_SUFFIX = '/peer'

/** The membership as the data plane needs it: the SWIM one can lend its TCP listener. */
export type DataPlaneMembership = Membership & { setLinkHandler?: (handler: LinkStreamHandler | undefined) => boolean }

export interface DataPlaneOptions {
  config: Config
  log: Logger
  registry: Registry
  bus: Bus
  membership: DataPlaneMembership
  mqtt: MqttServer
  /** The chaos hook (`serve --chaos-control` only): partitions and link cuts reach the data plane too. */
  faults?: LinkFaults | undefined
  /** Opens a connection to a peer's cluster port (default TCP; the simulation's in-memory network). */
  dial?: (peer: Member, localAddress: string | undefined) => Socket
}

type PublishedPacket = Parameters<Aedes['published']>[0] & { [MESSAGE_TARGETS]?: string[] }
type Deliver = Parameters<Aedes['subscribe']>[1]

/** The seed's `cluster:message_from` body. */
export interface MessageFromEvent {
  Payload: string
  Topic: string
  Retain: boolean
  Qos: number
}

export class DataPlane {
  readonly name: string
  readonly routing: RoutingTable
  readonly clock: HybridLogicalClock
  /** Every retained message of the cluster, last writer wins; aedes' retained store follows it. */
  readonly retained: RetainedStore
  readonly sync: RetainedSync
  /** Copies of sessions to one other node each, and the replicas held here for others (session-replication.ts). */
  readonly replication: SessionReplication
  private readonly peerBrokerId: string
  private syncTimer: NodeJS.Timeout | undefined
  private gcTimer: NodeJS.Timeout | undefined
  /** The persistence's subscriptionsByClient below our session-fetch hook. */
  private storedSubscriptions!: (client: { id: string }) => Promise<Array<{ topic: string, qos: number, [key: string]: unknown }>>
  /** aedes' own retained write (the limits wrapper), below our replication hook. */
  private storeRetainedLocally!: (packet: Record<string, unknown>) => Promise<void>
  private readonly opts: DataPlaneOptions
  private readonly log: Logger
  private readonly warn: ReturnType<typeof rateLimited>
  private readonly cipher: Keyring
  private readonly acceptor: LinkAcceptor
  private readonly links = new Map<string, PeerLink>()
  /** Links of members declared dead, kept until their timer runs out or the member is back. */
  private readonly parked = new Map<string, NodeJS.Timeout>()
  /** Live subscriptions per aedes deliver function (a function may hold several topics). */
  private readonly liveRoutes = new WeakMap<Deliver, Set<string>>()
  /** Persistent sessions' subscriptions, by client id: routed also while the client is offline. */
  private readonly storedRoutes = new Map<string, Set<string>>()
  private running = false
  /** When each local connection registered (HLC): of two connections with one id, the later one wins cluster-wide. */
  private readonly connectedAt = new WeakMap<Client, Stamp>()
  /** Local connections being closed because their client id connected elsewhere. */
  private readonly closing = new WeakMap<Client, Promise<void>>()
  /** Links paused because the inbound queue reached INBOUND_HIGH_WATER. */
  private readonly pausedLinks = new Set<PeerLink>()
  private readonly inbound: InboundMessage[] = []
  /** Messages from peers started in aedes and not yet called back. */
  private inflight = 0
  /** The message from a peer started in aedes and not yet emitted to subscribers. */
  private waitingEmit: InboundMessage | undefined
  private emitted = false
  private pumping = false
  /** When each client id was last connected here (HLC): of two copies of a session, the newer wins. */
  private readonly sessionStamps = new Map<string, Stamp>()
  /** Client ids whose CONNECT is on its way through aedes (preConnect), and whether they resume their session. */
  private readonly connecting = new Map<string, { resume: boolean, until: number }>()
  /** Session requests this node made and is waiting for answers to. */
  private readonly fetches = new Map<string, SessionFetch>()
  /** Sessions this node sent to a peer and deletes once the peer acknowledged them, by request id. */
  private readonly handoffs = new Map<string, { clientId: string, peer: string, replica?: string, sent?: Set<string> }>()
  /** This process's id in link HELLOs, and the last one seen from each peer: a change is a restart. */
  private readonly process = randomUUID()
  private readonly peerProcesses = new Map<string, string>()
  /** aedes counters of messages from peers -> their sources (rememberSource). */
  private readonly sources = new Map<number, InboundSource>()
  /**
   * Sessions stored here lately by a move or a takeover, with the names
   * (StoredPacket.msgId) of the messages queued for them here since, their
   * snapshot's included. A message reaches such a session by several paths
   * (live from its publisher's node, in the old home's tail, in a rescue),
   * each with its own stamp: this is how it is queued once.
   */
  private readonly movedIn = new Map<string, MovedIn>()
  /** Sessions fetched from their living old home whose tail has not arrived yet (expectTail). */
  private readonly tails = new Map<string, { done: Promise<void>, arrived: () => void }>()
  /** The counter aedes stamped on each publish, by the packet object `published` gets (hookAedes). */
  private readonly publishCounters = new WeakMap<object, number>()
  /** Rescue requests of sessions taken over from a dead home, open to its rescued publishes (rescue). */
  private readonly rescues = new Map<string, RescueRequest>()
  /**
   * Sessions this node took over from a peer it believed dead, until their
   * client connects somewhere: if that peer was only cut off (a partition),
   * it still holds them, and its copy wins.
   */
  private readonly promotedFrom = new Map<string, string>()
  private rescuedCount = 0
  /** Per peer link (`peer/incarnation`), the last message handed to aedes (ReplicaSnapshot.after). */
  private readonly pumped = new Map<string, number>()
  /** Unacknowledged publishes of peers that restarted, kept for the nodes that take over their sessions. */
  private readonly orphans = new Map<string, { incarnation: string, messages: Array<{ seq: number, payload: Buffer }>, until: number }>()
  /** Replicas being promoted to sessions of this node (their home died), by client id. */
  private readonly promoting = new Map<string, Promise<void>>()
  /** Sessions handed off on stop, resolved when acknowledged. */
  private readonly handoffWaiters = new Map<string, () => void>()
  private readonly onJoin = (m: Member): void => { this.ensureLink(m) }
  private readonly onUpdate = (m: Member): void => { if (m.state === 'alive') this.ensureLink(m) }
  private readonly onLeave = (m: Member): void => {
    // A member declared dead may only be on the other side of a partition:
    // keep its link (which keeps redialling) and its routes for
    // gossip_to_the_dead_time, so what its subscribers are owed meanwhile is
    // buffered and retransmitted after the heal. One that left is gone.
    if (m.state === 'dead' && this.links.has(m.name)) this.park(m.name)
    else this.dropLink(m.name)
    // Its sessions are ours now: those it handed off on a graceful stop are
    // gone from our replicas already, what is left it could not hand off.
    this.promoteReplicas(m.name).catch((err: Error) => this.log.warn({ peer: m.name, err: err.message }, 'sessions of a dead node not taken over'))
  }

  constructor (options: DataPlaneOptions) {
    this.opts = options
    this.log = options.log
    this.warn = rateLimited(options.log, 10_000)
    this.name = options.membership.self.name
    const cc = options.config.cluster.config
    this.cipher = new Keyring([cc.secret_key, ...cc.secondary_keys])
    this.routing = new RoutingTable(this.name)
    this.clock = new HybridLogicalClock(this.name, { maxForwardDriftMs: MAX_CLOCK_DRIFT_MS })
    this.retained = new RetainedStore({
      clock: this.clock,
      tombstoneTtlMs: options.config.cluster.retained_tombstone_ttl,
      maxCount: options.config.mqtt.max_retained_messages,
      maxBytes: options.config.mqtt.max_retained_bytes
    })
    this.sync = new RetainedSync(this.retained, { onApplied: (entry) => this.applyRetained(entry) })
    this.peerBrokerId = options.mqtt.aedes.id + PEER_BROKER_SUFFIX
    this.replication = new SessionReplication({
      log: options.log,
      maxQueuedPerSession: options.config.mqtt.max_queued_messages,
      host: {
        upPeers: () => [...this.links.values()].filter((l) => l.state === 'up' && !this.parked.has(l.peerName)).map((l) => l.peerName),
        send: (peer, m) => { const link = this.links.get(peer); if (link !== undefined) this.sendControl(link, m) },
        queueOf: (clientId) => options.mqtt.persistence.exportQueue(clientId),
        stampOf: (clientId) => this.sessionStamps.get(clientId) ?? { wall: 0, logical: 0, node: this.name },
        watermarks: () => Object.fromEntries(this.pumped),
        connectedHere: (clientId) => this.localClient(clientId) !== undefined,
        publishWill: (_clientId, will) => this.publishOrphanWill(will),
        expire: async (clientId) => await this.removeSession(clientId)
      }
    })
    this.acceptor = new LinkAcceptor({
      localName: this.name,
      cipher: this.cipher,
      lookup: (peer) => this.linkForInbound(peer),
      onError: (err) => this.warn('warn', { err: err.message }, 'peer link connection refused')
    })
    registerDataPlaneMetrics(options.registry, {
      links: () => [...this.links].map(([peer, link]) => [peer, link.stats()]),
      refused: () => ({ ...this.acceptor.refused }) as Record<string, number>,
      routes: () => this.routing.size,
      retained: () => ({ count: this.retained.count, bytes: this.retained.bytes, tombstones: this.retained.tombstones, refused: this.retained.refused }),
      sync: () => this.sync.stats,
      sessions: () => ({ ...this.replication.stats(), rescued: this.rescuedCount })
    })
    this.hookAedes(options.mqtt.aedes)
  }

  /** Peers we hold a link to, sorted. */
  get peers (): string[] { return [...this.links.keys()].sort() }

  /** The link to a peer (tests, diagnostics). */
  link (peer: string): PeerLink | undefined { return this.links.get(peer) }

  async start (): Promise<void> {
    const { membership } = this.opts
    const faults = this.opts.faults
    const accept: LinkStreamHandler = faults === undefined
      ? (socket, head) => this.acceptor.handle(socket, head)
      : (socket, head) => {
          // A partitioned or cut peer's dial fails as it would on a real network.
          if (faults.linksBlocked({ host: socket.remoteAddress ?? '', port: 0 })) socket.destroy()
          else this.acceptor.handle(socket, head)
        }
    faults?.onChange(() => this.applyFaults())
    if (membership.setLinkHandler?.(accept) !== true) {
      this.log.warn('the membership transport has no TCP listener of ours: peers cannot dial this node\'s data plane')
    }
    membership.on('join', this.onJoin)
    membership.on('update', this.onUpdate)
    membership.on('leave', this.onLeave)
    this.running = true
    this.opts.mqtt.settled = (clientId) => this.settled(clientId)
    for (const m of membership.members()) if (m.name !== this.name && m.state === 'alive') this.ensureLink(m)
    const every = this.opts.config.cluster.retained_sync_interval
    if (every > 0) {
      this.syncTimer = setInterval(() => this.syncWithRandomPeer(), every)
      this.syncTimer.unref()
    }
    const ttl = this.opts.config.cluster.retained_tombstone_ttl
    this.gcTimer = setInterval(() => this.retained.gc(), Math.min(Math.max(1000, ttl / 10), 3600_000))
    this.gcTimer.unref()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    // MQTT stopped before us: every client is gone, its session still here.
    // Hand each persistent session to a peer, so a client reconnecting
    // anywhere after this node is gone still finds it.
    await this.handOffSessions().catch((err: Error) => this.log.warn({ err: err.message }, 'sessions not handed off on stop'))
    this.replication.stop()
    // The last changes (sessions dropped after their handoff, routes) reach
    // the peers before the links close: a replica left behind would be
    // taken over as if this node had died.
    await this.flushLinks(HANDOFF_ON_STOP_TIMEOUT_MS / 2)
    this.running = false
    this.opts.mqtt.settled = undefined
    const { membership } = this.opts
    membership.off('join', this.onJoin)
    membership.off('update', this.onUpdate)
    membership.off('leave', this.onLeave)
    membership.setLinkHandler?.(undefined)
    clearInterval(this.syncTimer)
    clearInterval(this.gcTimer)
    this.acceptor.stop()
    for (const name of [...this.links.keys()]) this.dropLink(name)
  }

  // ---- links -------------------------------------------------------------------------

  /** Waits (at most `timeoutMs`) until every up link's peer acknowledged what was queued on it. */
  private async flushLinks (timeoutMs: number): Promise<void> {
    const waits = [...this.links.values()].filter((l) => l.state === 'up').map(async (l) => await l.whenAcked(l.lastQueuedSeq))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    await Promise.race([Promise.all(waits), timeout])
    clearTimeout(timer)
  }

  /** The acceptor asks for a peer that dialled us: membership may know it before its join event reached us. */
  private linkForInbound (peer: string): PeerLink | undefined {
    const existing = this.links.get(peer)
    if (existing !== undefined || !this.running) return existing
    const m = this.opts.membership.members().find((x) => x.name === peer && x.state === 'alive')
    return m === undefined ? undefined : this.ensureLink(m)
  }

  private ensureLink (m: Member): PeerLink | undefined {
    if (!this.running || m.name === this.name) return undefined
    const existing = this.links.get(m.name)
    if (existing !== undefined) {
      this.unpark(m.name)
      return existing
    }
    const bind = this.opts.config.cluster.bind
    // Dial from our bind address, so a peer sees the address we advertise (loopback aliases).
    const localAddress = bind !== '0.0.0.0' && bind !== '::' && isIP(bind) === isIP(m.addr) ? bind : undefined
    const link: PeerLink = new PeerLink({
      localName: this.name,
      process: this.process,
      // A peer acknowledges what it received before acting on it: kept a
      // moment longer for whoever takes over its sessions if it dies (rescue).
      retainAckedMs: RETAIN_ACKED_MS,
      peerName: m.name,
      cipher: this.cipher,
      connect: () => this.opts.faults?.linksBlocked({ host: m.addr, port: m.port }) === true
        ? refusedSocket()
        : this.opts.dial !== undefined ? this.opts.dial(m, localAddress) : netConnect({ host: m.addr, port: m.port, localAddress }) as Socket,
      onMessage: (payload, info) => this.onMessage(link, payload, info),
      onUp: () => this.onLinkUp(link),
      onError: (err) => this.log.debug({ peer: m.name, err: err.message }, 'peer link error')
    })
    this.links.set(m.name, link)
    link.start()
    this.log.debug({ peer: m.name, addr: m.addr, port: m.port, dialer: link.dialer }, 'peer link started')
    return link
  }

  /** Chaos only: cuts the live connections of links whose peer is now blocked (they redial, and fail, until healed). */
  private applyFaults (): void {
    const faults = this.opts.faults
    if (faults === undefined) return
    for (const m of this.opts.membership.members()) {
      const link = this.links.get(m.name)
      if (link !== undefined && faults.linksBlocked({ host: m.addr, port: m.port })) link.dropConnection()
    }
  }

  private park (name: string): void {
    if (this.parked.has(name)) return
    const keepMs = Math.max(1000, this.opts.config.cluster.config.gossip_to_the_dead_time)
    const timer = setTimeout(() => this.dropLink(name), keepMs)
    timer.unref()
    this.parked.set(name, timer)
    this.replication.peerGone(name)
    this.log.debug({ peer: name, keepMs }, 'peer declared dead: link and routes kept for its return')
  }

  private unpark (name: string): void {
    const timer = this.parked.get(name)
    if (timer === undefined) return
    clearTimeout(timer)
    this.parked.delete(name)
    // The link may be deep in its redial backoff after a long absence; until
    // it is up, takeover announcements and routes cannot flow.
    const link = this.links.get(name)
    link?.redialNow()
    // Back while its link never dropped (a pause): the same process, which
    // still holds the sessions taken over from it. (A dropped link decides
    // this when it is up again: onLinkUp.)
    if (link?.state === 'up' && link.remoteProcess !== undefined && link.remoteProcess === this.peerProcesses.get(name)) this.undoPromotions(name)
    this.log.debug({ peer: name }, 'peer back: parked link in use again')
  }

  private dropLink (name: string): void {
    this.unpark(name)
    const link = this.links.get(name)
    if (link === undefined) return
    this.links.delete(name)
    this.pausedLinks.delete(link)
    for (const f of this.fetches.values()) f.forget(name)
    for (const [id, h] of this.handoffs) if (h.peer === name) this.handoffs.delete(id)
    link.stop()
    this.routing.removePeer(name)
    this.replication.peerGone(name)
    this.log.debug({ peer: name }, 'peer link stopped')
  }

  private onLinkUp (link: PeerLink): void {
    // A peer that restarted before the membership declared it dead lost
    // every session it held: its replicas here are all that is left of them.
    const proc = link.remoteProcess
    const before = this.peerProcesses.get(link.peerName)
    if (proc !== undefined) this.peerProcesses.set(link.peerName, proc)
    if (before !== undefined && proc !== undefined && before === proc) this.undoPromotions(link.peerName)
    if (before !== undefined && proc !== undefined && before !== proc) {
      this.log.info({ peer: link.peerName }, 'peer restarted: taking over its sessions held here as replicas, replicating ours to it afresh')
      // What it never acknowledged goes to the new process, which holds none
      // of the old sessions: kept for the nodes that take them over (rescue).
      this.orphans.set(link.peerName, { incarnation: link.incarnation, messages: link.recentMessages(), until: Date.now() + RESCUE_WINDOW_MS })
      this.promoteReplicas(link.peerName).catch((err: Error) => this.log.warn({ peer: link.peerName, err: err.message }, 'sessions of a restarted node not taken over'))
      this.replication.peerGone(link.peerName)
    }
    // Every (re)connect sends the whole table: it supersedes any delta the
    // peer missed, and is how a 'gap' gets repaired.
    this.sendControl(link, { kind: 'route-table', table: this.routing.localTable() })
    // A new or returning peer gets what it lacks, and we what we lack, by
    // digest comparison (docs/data-plane.md, retained-sync).
    this.sendControl(link, this.sync.begin())
    // Sessions that had no peer to hold their replica get one.
    if (!this.parked.has(link.peerName)) this.replication.peerUp()
  }

  /** Anti-entropy: compares digests with one random peer whose link is up. */
  private syncWithRandomPeer (): void {
    const up = [...this.links.values()].filter((l) => l.state === 'up')
    if (up.length === 0) return
    this.sendControl(up[Math.floor(Math.random() * up.length)]!, this.sync.begin())
  }

  private sendControl (link: PeerLink, m: DataPlaneMessage): void {
    if (link.state === 'stopped') return
    link.send(encodeMessage(m), true, true)
  }

  private onMessage (link: PeerLink, payload: Buffer, info: DeliveryInfo = { reliable: false }): void {
    let m: DataPlaneMessage
    try {
      m = decodeMessage(payload)
    } catch (err) {
      this.warn('warn', { peer: link.peerName, err: (err as Error).message }, 'undecodable data-plane message dropped')
      return
    }
    switch (m.kind) {
      case 'publish':
        this.deliverFromPeer(m.publish, info.source === undefined ? undefined : { link: `${link.peerName}/${info.source.incarnation}`, seq: info.source.seq, msgId: msgIdFrom(link, m.publish) })
        if (this.inbound.length >= INBOUND_HIGH_WATER && !this.pausedLinks.has(link)) {
          this.pausedLinks.add(link)
          link.pauseReading()
        }
        return
      case 'route-table':
        this.routing.applyTable(link.peerName, m.table)
        return
      case 'route-delta': {
        const r = this.routing.applyDelta(link.peerName, m.delta)
        // No table yet: one is on its way (every link start sends one). A
        // skipped version with a table: reconnect to get a fresh one.
        if (r === 'gap' && this.routing.peerVersion(link.peerName) !== undefined) link.dropConnection()
        return
      }
      case 'client-connected':
        this.takeOver(m.clientId, m.stamp, link.peerName)
        return
      case 'session-request':
        this.serveSession(link, m).catch((err: Error) => this.warn('warn', { client: m.clientId, peer: link.peerName, err: err.message }, 'session request not served'))
        return
      case 'session-transfer':
        if (this.fetches.get(m.requestId)?.answer(link.peerName, m.session, m.replica === true) !== true && m.session !== null && m.replica !== true) {
          // Not an answer we wait for: a stopping peer hands us the session, or
          // an answer came after its CONNECT went on without it.
          this.adoptSession(link, m.requestId, m.clientId, m.session).catch((err: Error) => this.warn('warn', { client: m.clientId, err: err.message }, 'handed-off session not stored'))
        }
        return
      case 'session-ack':
        this.completeHandoff(m.requestId, link.peerName).catch((err: Error) => this.warn('warn', { client: m.clientId, err: err.message }, 'moved session not removed here'))
        return
      case 'replica':
        this.replication.apply(link.peerName, m.ops)
        return
      case 'rescue-request':
        this.answerRescueRequest(link, m.from, m.requestId, m.live === true)
        return
      case 'session-tail':
        this.appendTail(m.clientId, m.packets, m.sources).catch((err: Error) => this.warn('warn', { client: m.clientId, err: err.message }, 'moved session: late messages not queued'))
        return
      case 'rescue-done': {
        const request = this.rescues.get(m.requestId)
        if (request !== undefined && request.waiting.delete(link.peerName) && request.waiting.size === 0) request.finish()
        return
      }
      case 'rescue':
        this.rescue(m.requestId, m.source, m.publish, msgIdFrom(link, m.publish)).catch((err: Error) => this.warn('warn', { peer: link.peerName, err: err.message }, 'rescued publish not queued'))
        return
      case 'retained':
        if (this.retained.merge(m.entry) === 'applied') this.applyRetained(m.entry)
        return
      default:
        for (const reply of this.sync.handle(m)) this.sendControl(link, reply)
    }
  }

  /**
   * A client with this id connected on a peer: an older connection here is
   * closed as aedes closes a local one it takes over (MQTT 5: DISCONNECT
   * 0x8E; the will as aedes handles it). A resuming client's session
   * moved already, before its CONNACK (serveSession): this closes what
   * is left, e.g. a clean-session connection.
   */
  private takeOver (clientId: string, stamp: Stamp, peer: string): void {
    try { this.clock.observe(stamp) } catch { /* too far ahead: compared by stamp anyway */ }
    // A will owed here for this client (its node died) is cancelled: it is back.
    this.replication.clientSeen(clientId, false)
    const local = this.localClient(clientId)
    if (local === undefined) {
      // An offline copy older than that connection is stale: the client took
      // its session from another copy (this node did not answer in time) or
      // started clean. Kept, it would keep attracting messages for nobody.
      const held = this.sessionStamps.get(clientId)
      if (this.holdsSession(clientId) && held !== undefined && compareStamps(held, stamp) < 0 && !this.connecting.has(clientId)) {
        this.log.info({ client: clientId, peer }, 'client connected on another node with a newer session: stale copy here removed')
        this.removeSession(clientId).catch((err: Error) => this.warn('warn', { client: clientId, err: err.message }, 'stale session not removed'))
      }
      return
    }
    const mine = this.connectedAt.get(local)
    if (mine !== undefined && compareStamps(mine, stamp) >= 0) return // ours is the newer connection
    if (this.closing.has(local)) return
    this.log.info({ client: clientId, peer }, 'client id connected on another node: closing the older connection here')
    void this.closeTakenOver(local)
  }

  /**
   * Closes a local connection whose client id connected elsewhere (MQTT 5:
   * DISCONNECT 0x8E), once: the client-connected announcement and a session
   * request may both ask, and a second DISCONNECT would race the first.
   */
  private closeTakenOver (local: Client): Promise<void> {
    let closing = this.closing.get(local)
    if (closing === undefined) {
      closing = new Promise<void>((resolve) => {
        (local as Client & { disconnect: (opts: { reasonCode: number }, done: () => void) => void }).disconnect({ reasonCode: SESSION_TAKEN_OVER }, () => resolve())
      })
      this.closing.set(local, closing)
    }
    return closing
  }

  // ---- sessions moving between nodes ----------------------------------------------------

  /** Whether this node holds state of a persistent session (subscriptions or queued messages). */
  private holdsSession (clientId: string): boolean {
    return this.storedRoutes.has(clientId) || this.opts.mqtt.persistence.queuedFor(clientId) > 0
  }

  /**
   * A resuming CONNECT on this node: asks every peer whose link is up for the
   * client's session, waits for their answers (bounded), stores the newest
   * copy (subscriptions, so routed from here; the outgoing queue with its
   * in-flight packet identifiers and PUBRELs) unless the one held here is
   * newer, and acknowledges every copy so its holder deletes it.
   */
  private async fetchSession (clientId: string): Promise<void> {
    const peers = [...this.links.values()].filter((l) => l.state === 'up').map((l) => l.peerName)
    const requestId = randomUUID()
    let answers: SessionAnswer[] = []
    if (peers.length > 0) {
      const fetch = new SessionFetch(requestId, clientId, peers, SESSION_FETCH_TIMEOUT_MS)
      this.fetches.set(requestId, fetch)
      const request: DataPlaneMessage = { kind: 'session-request', requestId, clientId, stamp: this.clock.now(), resume: true }
      for (const peer of peers) this.sendControl(this.links.get(peer)!, request)
      answers = await fetch.done
      this.fetches.delete(requestId)
    }
    // A replica held here counts like a peer's, after any home copy: its
    // home may be dead and not declared so yet. The session lives here from
    // now on, so a replica of it here has no more use either way.
    const local = this.replication.replicas.take(clientId)
    const candidates = local === undefined || isEmptySession(local.session)
      ? answers
      : [...answers, { peer: this.name, session: rescuable(local), replica: true }]
    const best = bestSession(candidates)
    // Its old home, alive and handing it over, sends what it queued after the snapshot once acknowledged (completeHandoff).
    if (best !== undefined && best.replica !== true && best.peer !== this.name) this.expectTail(clientId)
    // What was on the way to its old home (dead, or handing it over) comes as rescues.
    if (best !== undefined) await this.storeWithRescue(clientId, best.peer, best.session)
    // Older copies are acknowledged too: they are stale, their holders drop them.
    const ack: DataPlaneMessage = { kind: 'session-ack', requestId, clientId }
    for (const a of answers) {
      const link = this.links.get(a.peer)
      if (link !== undefined) this.sendControl(link, ack)
    }
  }

  /**
   * Stores a session a peer sent unasked (it is stopping), newest copy wins,
   * and acknowledges it so the peer may forget it. Not while the client is
   * connected here: its live session is the newer one and stays as it is.
   */
  private async adoptSession (link: PeerLink, requestId: string, clientId: string, session: TransferredSession): Promise<void> {
    if (this.localClient(clientId) !== undefined) return
    await this.storeWithRescue(clientId, link.peerName, session)
    this.sendControl(link, { kind: 'session-ack', requestId, clientId })
  }

  /**
   * Stores a transferred session and, when it says publishes sent to its
   * old home lately may have missed it (its home died, or is handing it
   * over), asks for them: right before storing (with its routes), and this
   * node's own once stored (see requestRescues).
   */
  private async storeWithRescue (clientId: string, from: string, session: TransferredSession): Promise<void> {
    const rescue = session.rescue
    const request = rescue === undefined || rescue.from === this.name ? undefined : this.requestRescues(rescue.from, [{ clientId, seen: rescue.seen, after: rescue.after }], rescue.live === true)
    await this.storeSession(clientId, from, session)
    if (request !== undefined) await this.rescueOwn(request)
  }

  /** Writes a transferred session into the persistence unless the copy here is newer. */
  private async storeSession (clientId: string, from: string, session: TransferredSession): Promise<void> {
    const p = this.opts.mqtt.persistence
    const mine = this.sessionStamps.get(clientId)
    // A copy taken over from a peer believed dead yields to any other.
    if (this.holdsSession(clientId) && mine !== undefined && compareStamps(session.stamp, mine) <= 0 && !this.promotedFrom.has(clientId)) return
    if (this.holdsSession(clientId)) {
      await p.cleanSubscriptions({ id: clientId })
      p.dropQueue(clientId)
    }
    const now = Date.now()
    for (const [id, w] of this.movedIn) if (w.until < now) this.movedIn.delete(id)
    this.movedIn.set(clientId, { ids: new Set(session.queue.flatMap((e) => e.msgId === undefined ? [] : [e.msgId])), suppressed: new Set(), until: now + MOVED_IN_MS })
    // The queue before the subscriptions: a message arriving while they are
    // added is queued after the snapshot's, or not at all if the snapshot
    // holds it (found by chaos: one QoS 2 message twice in 373,000).
    p.importQueue(clientId, session.queue as StoredPacket[])
    // Through the hooked persistence: the subscriptions are routed from here now.
    if (session.subscriptions.length > 0) await p.addSubscriptions({ id: clientId }, session.subscriptions)
    this.sessionStamps.set(clientId, session.stamp)
    this.replication.resync(clientId)
    this.log.info({ client: clientId, from, subscriptions: session.subscriptions.length, queued: session.queue.length }, 'persistent session moved here from another node')
  }

  /**
   * On stop: every persistent session held here goes to one peer whose link
   * is up (rendezvous hashing of client id and peer name, so the sessions of
   * a stopping node spread over the others), and this node waits (bounded)
   * for the acknowledgements, deleting each acknowledged copy.
   */
  private async handOffSessions (): Promise<void> {
    const up = [...this.links.values()].filter((l) => l.state === 'up')
    if (up.length === 0 || this.storedRoutes.size === 0) return
    const p = this.opts.mqtt.persistence
    const waits: Array<Promise<unknown>> = []
    // A session taken over moments ago is complete once its rescues came.
    await Promise.all([...this.storedRoutes.keys()].map(async (id) => await this.rescuesOf(id)))
    for (const clientId of [...this.storedRoutes.keys()]) {
      const link = this.links.get(rendezvous(clientId, up.map((l) => l.peerName)))!
      const subscriptions = (await this.storedSubscriptions({ id: clientId })).map(({ clientId: _c, ...sub }) => sub)
      const session: TransferredSession = {
        stamp: this.sessionStamps.get(clientId) ?? { wall: 0, logical: 0, node: this.name },
        subscriptions,
        queue: p.exportQueue(clientId).map(transferable),
        rescue: { from: this.name, seen: [], after: Object.fromEntries(this.pumped), live: true }
      }
      const requestId = `handoff-${randomUUID()}`
      this.handoffs.set(requestId, { clientId, peer: link.peerName, sent: new Set(session.queue.map(queueKey)) })
      this.sendControl(link, { kind: 'session-transfer', requestId, clientId, session })
      waits.push(new Promise<void>((resolve) => { this.handoffWaiters.set(requestId, resolve) }))
    }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, HANDOFF_ON_STOP_TIMEOUT_MS) })
    await Promise.race([Promise.all(waits), timeout])
    clearTimeout(timer)
    this.handoffWaiters.clear()
  }

  /** A clean start on this node: the client's old session is discarded wherever it is. */
  private discardSessionElsewhere (clientId: string): void {
    const m: DataPlaneMessage = { kind: 'session-request', requestId: randomUUID(), clientId, stamp: this.clock.now(), resume: false }
    for (const link of this.links.values()) this.sendControl(link, m)
  }

  /**
   * A peer asks for a session: a live connection here is closed first (0x8E,
   * as a takeover), so the snapshot taken after it is final; the copy here
   * is deleted only when the peer acknowledged storing it.
   */
  private async serveSession (link: PeerLink, m: Extract<DataPlaneMessage, { kind: 'session-request' }>): Promise<void> {
    try { this.clock.observe(m.stamp) } catch { /* too far ahead: compared by stamp anyway */ }
    await this.promoting.get(m.clientId)
    await this.rescuesOf(m.clientId)
    const local = this.localClient(m.clientId)
    if (local !== undefined) {
      const mine = this.connectedAt.get(local)
      if (mine !== undefined && compareStamps(mine, m.stamp) > 0) {
        // Connected here after the request was made: this connection is the newer one.
        if (m.resume) this.sendControl(link, { kind: 'session-transfer', requestId: m.requestId, clientId: m.clientId, session: null })
        return
      }
      if (!this.closing.has(local)) this.log.info({ client: m.clientId, peer: link.peerName }, 'client id connecting on another node: closing the connection here')
      await this.closeTakenOver(local)
    }
    if (!m.resume) {
      if (this.holdsSession(m.clientId)) await this.removeSession(m.clientId)
      this.replication.replicas.delete(m.clientId)
      return
    }
    let session: TransferredSession | null = null
    if (!this.holdsSession(m.clientId)) {
      // Not at home here; a replica is sent (and dropped once acknowledged)
      // for the case its home is dead and not declared so yet.
      // Never the asker's own session back: it is that session's home (a
      // request and a fresh snapshot from it can cross).
      const replica = this.replication.replicas.peek(m.clientId)
      if (replica !== undefined && replica.owner !== link.peerName && !isEmptySession(replica.session)) {
        this.handoffs.set(m.requestId, { clientId: m.clientId, peer: link.peerName, replica: replica.owner })
        const session = rescuable(replica)
        this.sendControl(link, { kind: 'session-transfer', requestId: m.requestId, clientId: m.clientId, session, replica: true })
        return
      }
    } else {
      const p = this.opts.mqtt.persistence
      const subscriptions = (await this.storedSubscriptions({ id: m.clientId })).map(({ clientId: _c, ...sub }) => sub)
      session = {
        stamp: this.sessionStamps.get(m.clientId) ?? { wall: 0, logical: 0, node: this.name },
        subscriptions,
        queue: p.exportQueue(m.clientId).map(transferable),
        // What reaches this node for it after this snapshot stays in the copy deleted here: the new home asks for it.
        rescue: { from: this.name, seen: [], after: Object.fromEntries(this.pumped), live: true }
      }
      this.handoffs.set(m.requestId, { clientId: m.clientId, peer: link.peerName, sent: new Set(session.queue.map(queueKey)) })
    }
    // A copy taken over from a peer believed dead counts as a replica: the original, if it answers, wins.
    const promoted = session !== null && this.promotedFrom.has(m.clientId)
    this.sendControl(link, { kind: 'session-transfer', requestId: m.requestId, clientId: m.clientId, session, ...(promoted ? { replica: true } : {}) })
  }

  /** The peer stored a session we sent: delete our copy (and its routes), unless the client came back here meanwhile. */
  private async completeHandoff (requestId: string, peer: string): Promise<void> {
    const h = this.handoffs.get(requestId)
    if (h === undefined || h.peer !== peer) return
    this.handoffs.delete(requestId)
    if (h.replica !== undefined) {
      // The requester resumed from our replica or from the home copy: either
      // way this one is spent, unless a new home replicated it here since.
      if (this.replication.replicas.ownerOf(h.clientId) === h.replica) this.replication.replicas.delete(h.clientId)
      return
    }
    const waiter = this.handoffWaiters.get(requestId)
    this.handoffWaiters.delete(requestId)
    waiter?.()
    if (this.localClient(h.clientId) !== undefined) return
    // Queued here after the snapshot went (a local publish, a peer's send in
    // the instant of the move): it follows the session instead of going with this copy.
    const link = this.links.get(peer)
    const tail = this.opts.mqtt.persistence.exportQueue(h.clientId).filter((e) => e.cmd !== 'pubrel' && h.sent?.has(queueKey(e)) !== true)
    // Sent even when empty: the new home holds live deliveries to its client until the tail came (settled).
    if (link !== undefined) {
      this.sendControl(link, { kind: 'session-tail', clientId: h.clientId, packets: tail.map(transferable), sources: tail.map((e) => this.sourceOf(e) ?? null) })
      this.log.debug({ client: h.clientId, peer, messages: tail.length }, 'moved session: what was queued here after its snapshot sent after it')
    }
    await this.removeSession(h.clientId)
  }

  /** The old home of a session that moved here sends what it queued after its snapshot: queued here, each once. */
  private async appendTail (clientId: string, packets: TransferredPacket[], sources: Array<string | null>): Promise<void> {
    try {
      await this.queueTail(clientId, packets, sources)
    } finally {
      this.tails.get(clientId)?.arrived()
    }
  }

  /**
   * For the MQTT server (DeliveryOptions.settled): resolves once a session
   * that just moved here from a living node got that node's tail (bounded:
   * TAIL_TIMEOUT_MS); undefined when none is awaited. Rescues are not
   * waited for: a peer that does not answer would hold every live message
   * for a second, past what the queue may hold.
   */
  private settled (clientId: string): Promise<void> | undefined {
    return this.tails.get(clientId)?.done
  }

  private async queueTail (clientId: string, packets: TransferredPacket[], sources: Array<string | null>): Promise<void> {
    if (!this.holdsSession(clientId) && this.localClient(clientId) === undefined) return
    const requests = [...this.rescues.values()].filter((r) => r.sessions.has(clientId))
    for (const [i, packet] of packets.entries()) {
      const source = sources[i] ?? null
      if (source !== null) {
        // Also rescued from its publisher's node, or about to be: once.
        if (requests.some((r) => r.sessions.get(clientId)!.seen.has(source))) continue
        for (const r of requests) r.sessions.get(clientId)!.seen.add(source)
      }
      const copy = new AedesPacket({ ...packet, messageId: undefined } as StoredPacket)
      if (packet.msgId !== undefined) copy.msgId = packet.msgId
      await this.queueTakenOver(clientId, copy)
    }
  }

  /** A session fetched from its living old home: its tail is on the way (settled waits for it, bounded). */
  private expectTail (clientId: string): void {
    this.tails.get(clientId)?.arrived()
    let arrived!: () => void
    const done = new Promise<void>((resolve) => { arrived = resolve })
    const timer = setTimeout(() => arrived(), TAIL_TIMEOUT_MS)
    timer.unref()
    const entry = { done, arrived: () => { clearTimeout(timer); arrived() } }
    this.tails.set(clientId, entry)
    void done.then(() => { if (this.tails.get(clientId) === entry) this.tails.delete(clientId) })
  }


  private async removeSession (clientId: string): Promise<void> {
    const p = this.opts.mqtt.persistence
    await p.cleanSubscriptions({ id: clientId }) // hooked: unroutes
    p.dropQueue(clientId)
    this.sessionStamps.delete(clientId)
    this.promotedFrom.delete(clientId)
    this.movedIn.delete(clientId)
    for (const r of this.rescues.values()) r.sessions.delete(clientId)
  }

  /** Notes which send an aedes counter of a message from a peer stands for. */
  private rememberSource (counter: number, source: InboundSource): void {
    this.sources.set(counter, source)
    if (this.sources.size > MAX_SOURCES) this.sources.delete(this.sources.keys().next().value!)
  }

  /** A queued message's name across the cluster (StoredPacket.msgId), if known: published here, or from a peer that named it. */
  private msgIdOf (packet: StoredPacket): string | undefined {
    if (packet.msgId !== undefined) return packet.msgId
    if (packet.brokerCounter === undefined) return undefined
    if (packet.brokerId === this.opts.mqtt.aedes.id) return messageName(this.process, packet.brokerCounter)
    return packet.brokerId === this.peerBrokerId ? this.sources.get(packet.brokerCounter)?.msgId : undefined
  }

  /** A message was queued for a session: a session that moved here lately remembers it (movedIn). */
  private noteQueued (clientId: string, msgId: string | undefined): void {
    if (msgId === undefined) return
    const w = this.movedIn.get(clientId)
    if (w === undefined) return
    if (w.until < Date.now()) { this.movedIn.delete(clientId); return }
    w.ids.add(msgId)
    if (w.ids.size > MOVED_IN_MAX_IDS) w.ids.delete(w.ids.values().next().value!)
  }

  /**
   * A live copy of a message a session that moved here holds already (its
   * old home's tail or a rescue came first): not queued, and aedes is told
   * not to send it (authorizeForward, hookAedes).
   */
  private heldAlready (clientId: string, packet: StoredPacket): boolean {
    const w = this.movedIn.get(clientId)
    if (w === undefined || packet.msgId === undefined || !w.ids.has(packet.msgId) || w.until < Date.now()) return false
    w.suppressed.add(stampKey(packet))
    this.log.debug({ client: clientId, msgId: packet.msgId }, 'live copy of a message the session moving here holds already: not queued again')
    return true
  }

  /** Which send from a peer a queued packet came in, if it came from one. */
  private sourceOf (packet: { brokerId?: string, brokerCounter?: number }): string | undefined {
    const s = packet.brokerId === this.peerBrokerId && packet.brokerCounter !== undefined ? this.sources.get(packet.brokerCounter) : undefined
    return s === undefined ? undefined : `${s.link}/${s.seq}`
  }

  /**
   * Sessions whose home `dead` died (or restarted) are about to live here:
   * every peer is asked for the QoS 1/2 publishes it sent `dead` lately
   * (rescue). Asked right before the sessions are stored, so the request
   * and their routes leave together: a peer's answer holds what it sent to
   * `dead` instead of here, and comes before anything live for them (the
   * publisher's order holds). Complete it with `rescueOwn` once the
   * sessions are stored.
   */
  private requestRescues (dead: string, sessions: Array<{ clientId: string, seen: readonly string[], after?: Record<string, number> | undefined }>, live = false): RescueRequest {
    let finish!: () => void
    const done = new Promise<void>((resolve) => { finish = resolve })
    const request: RescueRequest = {
      id: randomUUID(),
      from: dead,
      waiting: new Set(),
      done,
      finish,
      live,
      until: Date.now() + RESCUE_WINDOW_MS,
      sessions: new Map(sessions.map((x) => [x.clientId, { seen: new Set(x.seen), after: x.after ?? {} }]))
    }
    for (const [id, r] of this.rescues) if (r.until < Date.now()) this.rescues.delete(id)
    this.rescues.set(request.id, request)
    for (const link of this.links.values()) {
      if (link.peerName === dead || link.state !== 'up') continue
      this.sendControl(link, { kind: 'rescue-request', from: dead, requestId: request.id, ...(live ? { live } : {}) })
      request.waiting.add(link.peerName)
    }
    if (request.waiting.size === 0) finish()
    const timer = setTimeout(finish, RESCUE_ANSWER_TIMEOUT_MS)
    timer.unref()
    void done.then(() => clearTimeout(timer))
    return request
  }

  /** Resolves when the rescue requests still open for a session were answered (bounded). */
  private async rescuesOf (clientId: string): Promise<void> {
    const pending = [...this.rescues.values()].filter((r) => r.sessions.has(clientId)).map(async (r) => await r.done)
    if (pending.length > 0) await Promise.all(pending)
  }

  /**
   * What this node itself sent the dead home, for the sessions of the
   * request: taken once they are stored (from then on, what this node
   * publishes reaches them here).
   */
  private async rescueOwn (request: RescueRequest): Promise<void> {
    const own = this.unackedFor(request.from, request.live)
    this.log.debug({ peer: request.from, publishes: own.length }, 'rescuing what this node sent a gone peer lately')
    for (const r of own) await this.rescue(request.id, r.source, r.publish, r.publish.id > 0 ? messageName(this.process, r.publish.id) : undefined)
  }

  /** A peer took over sessions of `dead`: it gets what `dead` never acknowledged from us, in order. */
  private answerRescueRequest (link: PeerLink, dead: string, requestId: string, live: boolean): void {
    let n = 0
    for (const r of this.unackedFor(dead, live)) {
      link.send(encodeMessage({ kind: 'rescue', requestId, source: r.source, publish: r.publish }), true, true)
      n++
    }
    this.sendControl(link, { kind: 'rescue-done', requestId })
    if (n > 0) this.log.info({ peer: dead, to: link.peerName, publishes: n }, 'sent the publishes a gone peer never acknowledged to the node taking its sessions over')
  }

  /**
   * QoS 1/2 publishes sent to `peer` lately (acknowledged in the last
   * RETAIN_ACKED_MS, or not at all): by its old process if it restarted,
   * else on its link. The receiver skips what the dead home's replicas show
   * it queued.
   */
  private unackedFor (peer: string, live = false): Array<{ source: string, publish: ForwardedPublish }> {
    const orphans = this.orphans.get(peer)
    if (orphans !== undefined && orphans.until < Date.now()) this.orphans.delete(peer)
    const link = this.links.get(peer)
    // Back up with a new process: the request is about the old one, whose
    // messages were put aside at the restart. Down: about the process that
    // just went, whose messages are still on the link.
    const from = !live && orphans !== undefined && orphans.until >= Date.now() && link?.state === 'up'
      ? orphans
      : link === undefined ? undefined : { incarnation: link.incarnation, messages: link.recentMessages() }
    if (from === undefined) return []
    const out: Array<{ source: string, publish: ForwardedPublish }> = []
    for (const { seq, payload } of from.messages) {
      let m: DataPlaneMessage
      try { m = decodeMessage(payload) } catch { continue }
      if (m.kind === 'publish' && m.publish.qos > 0 && m.publish.plain) out.push({ source: `${this.name}/${from.incarnation}/${seq}`, publish: m.publish })
    }
    return out
  }

  /**
   * A publish the dead home of the request's sessions may not have queued:
   * queued for each of them that subscribes to its topic unless their
   * replica shows the home queued it (`seen`) or had it before the session
   * lived there (`after`); delivered at once to a client connected here.
   */
  private async rescue (requestId: string, source: string, publish: ForwardedPublish, msgId: string | undefined): Promise<void> {
    const request = this.rescues.get(requestId)
    if (request === undefined) return
    if (request.until < Date.now()) { this.rescues.delete(requestId); return }
    const [key, seq] = splitLast(source)
    for (const [clientId, r] of request.sessions) {
      if (r.seen.has(source) || (r.after[key] ?? 0) >= seq) continue
      let qos = 0
      for (const sub of this.replication.subscriptionsOf(clientId)) {
        if (routable(sub.topic) && topicMatches(sub.topic, publish.topic)) qos = Math.max(qos, Math.min(sub.qos, publish.qos))
      }
      if (qos === 0) continue
      r.seen.add(source)
      this.log.debug({ client: clientId, from: request.from, source, topic: publish.topic }, 'rescued publish queued')
      const aedes = this.opts.mqtt.aedes as Aedes & { counter: number }
      const packet = new AedesPacket({
        cmd: 'publish',
        topic: publish.topic,
        payload: publish.payload,
        qos,
        retain: false,
        dup: false,
        ...(publish.properties === undefined ? {} : { properties: publish.properties })
      }, aedes)
      if (msgId !== undefined) packet.msgId = msgId
      await this.queueTakenOver(clientId, packet)
    }
  }

  /**
   * Queues a message a session taken over here was owed (rescue, session
   * tail), once, before later waiting messages of its publisher.
   */
  private async queueTakenOver (clientId: string, packet: StoredPacket): Promise<void> {
    // Queued here already (live, in its snapshot, by another tail or rescue), maybe delivered: once is enough.
    if (packet.msgId !== undefined && this.movedIn.get(clientId)?.ids.has(packet.msgId) === true) {
      this.log.debug({ client: clientId, msgId: packet.msgId }, 'message the session moving here holds already: not queued again')
      return
    }
    // Before the later messages of its publisher that are still waiting: its order holds.
    const order = packet.msgId === undefined ? undefined : splitLast(packet.msgId)
    this.opts.mqtt.persistence.enqueueBefore(clientId, packet, (e) => {
      if (order === undefined || e.messageId !== undefined || e.cmd === 'pubrel') return false
      const other = e.msgId === undefined ? undefined : splitLast(e.msgId)
      return other !== undefined && other[0] === order[0] && other[1] > order[1]
    })
    this.noteQueued(clientId, packet.msgId)
    this.replication.enqueued(clientId, packet, this.sourceOf(packet))
    this.rescuedCount++
    // Sent to a connected client at once; one still resuming gets it from
    // aedes' queue replay or right after it (delivery.ts holds it until then).
    const client = this.localClient(clientId) as (Client & { deliverQoS?: (p: unknown, cb: () => void) => void }) | undefined
    client?.deliverQoS?.(packet, () => {})
  }

  /**
   * A home node died (or left without handing its sessions off): the
   * replicas held here for it become sessions of this node, routed and
   * replicated from here (session-replication.ts times their wills and
   * expiries).
   */
  private async promoteReplicas (peer: string): Promise<void> {
    const promoted = this.replication.promote(peer)
    if (promoted.length === 0) return
    let stored = 0
    // A session request for one of them waits until it is stored (serveSession).
    let done!: () => void
    const storing = new Promise<void>((resolve) => { done = resolve })
    for (const { clientId } of promoted) this.promoting.set(clientId, storing)
    const request = this.requestRescues(peer, promoted.map(({ clientId, replica }) => ({ clientId, seen: replica.seen, after: replica.after })))
    try {
      for (const { clientId, replica } of promoted) {
        // Connected here already (it reconnected before the death was declared): its session is live here.
        if (this.localClient(clientId) !== undefined || isEmptySession(replica.session)) continue
        await this.storeSession(clientId, `replica of ${peer}`, replica.session)
        this.promotedFrom.set(clientId, peer)
        stored++
      }
      await this.rescueOwn(request)
    } finally {
      for (const { clientId } of promoted) if (this.promoting.get(clientId) === storing) this.promoting.delete(clientId)
      done()
    }
    this.log.warn({ peer, sessions: stored, replicas: promoted.length }, 'node gone: took over the sessions it held whose replicas were here')
  }

  /**
   * A peer this node took sessions over from is back as the same process: it
   * was cut off, not dead, and still holds them. The copies taken over here
   * that no client resumed since are dropped (their client finds the
   * original there); kept, they would replay what the client already got.
   */
  private undoPromotions (peer: string): void {
    for (const [clientId, from] of [...this.promotedFrom]) {
      if (from !== peer) continue
      this.promotedFrom.delete(clientId)
      if (this.localClient(clientId) !== undefined) continue
      this.log.info({ client: clientId, peer }, 'peer back after being declared dead: session taken over from it dropped here, its copy stays')
      this.removeSession(clientId).catch((err: Error) => this.warn('warn', { client: clientId, err: err.message }, 'session taken over not dropped'))
    }
  }

  /** Publishes the will of a client whose node died, as its node would have: to local subscribers and to peers. */
  private publishOrphanWill (will: TransferredPacket): void {
    const { willDelayInterval: _delay, ...properties } = (will.properties ?? {}) as Record<string, unknown>
    const packet = {
      cmd: 'publish' as const,
      topic: will.topic ?? '',
      payload: will.payload ?? Buffer.alloc(0),
      qos: (will.qos ?? 0) as Qos,
      retain: will.retain === true,
      dup: false,
      ...(Object.keys(properties).length === 0 ? {} : { properties })
    }
    const waits = this.forward(packet as unknown as PublishedPacket)
    const publish = (): void => {
      this.opts.mqtt.aedes.publish(packet as never, (err) => {
        if (err !== undefined && err !== null) this.warn('warn', { topic: packet.topic, err: err.message }, 'will of a client whose node died not published')
      })
    }
    if (waits === undefined) publish()
    else waits.then(publish, publish)
  }

  /** The live local connection of a client id, if any. */
  private localClient (clientId: string): Client | undefined {
    const c = (this.opts.mqtt.aedes as Aedes & { clients: Record<string, Client | undefined> }).clients[clientId]
    return c === undefined || c.closed ? undefined : c
  }

  /** Makes aedes' retained store (what SUBSCRIBE reads) follow an entry that won in ours. */
  private applyRetained (entry: RetainedEntry): void {
    const packet = {
      cmd: 'publish',
      topic: entry.topic,
      payload: entry.payload,
      qos: entry.qos,
      retain: true,
      dup: false,
      brokerId: this.peerBrokerId,
      brokerCounter: 0,
      ...(entry.properties === undefined ? {} : { properties: entry.properties })
    }
    this.storeRetainedLocally(packet).catch((err: Error) => this.warn('warn', { topic: entry.topic, err: err.message }, 'replicated retained message not stored'))
  }

  // ---- publishes -----------------------------------------------------------------------

  private deliverFromPeer (p: ForwardedPublish, source?: InboundMessage['source']): void {
    const { bus } = this.opts
    if (bus.hasSubscribers('cluster:message_from')) {
      const event: MessageFromEvent = { Payload: p.payload.toString('base64'), Topic: p.topic, Retain: p.retain, Qos: p.qos }
      bus.publish('cluster:message_from', event)
    }
    const packet = {
      cmd: 'publish' as const,
      topic: p.topic,
      payload: p.payload,
      qos: p.qos,
      // Kept for subscribers with Retain As Published; aedes' store gets the
      // message from its replicated entry, not from this publish.
      retain: p.retain,
      dup: false,
      brokerId: this.peerBrokerId,
      ...(p.properties === undefined ? {} : { properties: p.properties })
    }
    this.inbound.push({ packet, plain: p.plain, shared: p.shared, source })
    this.pumpInbound()
  }

  /**
   * Hands messages from peers to aedes in arrival order (the publisher's
   * order). aedes stamps each publish with a counter when it starts, and a
   * subscriber drops a message whose counter is below one it already got
   * (lib/client.js `dedupe`); a QoS 0 publish reaches the subscribers before
   * a QoS 1 publish started just before it (which first goes through the
   * persistence), so starting a batch at once silently loses QoS 1 messages.
   * So the next message starts only once the previous one was emitted to
   * the subscribers (the mq.emit hook sets `emitted`), with at most
   * INBOUND_PIPELINE of them still being written out.
   */
  private pumpInbound (): void {
    if (this.pumping) return
    this.pumping = true
    try {
      while (this.waitingEmit === undefined && this.inflight < INBOUND_PIPELINE) {
        const next = this.inbound.shift()
        if (next === undefined) break
        if (this.pausedLinks.size > 0 && this.inbound.length <= INBOUND_HIGH_WATER / 2) {
          for (const l of this.pausedLinks) l.resumeReading()
          this.pausedLinks.clear()
        }
        if (!next.plain) {
          // Picked for shared subscriptions only.
          for (const key of next.shared) this.deliverShared(key, next.packet)
          continue
        }
        this.inflight++
        this.emitted = false
        let finished = false
        // No client: the `published` hook will not forward it again.
        const aedes = this.opts.mqtt.aedes as Aedes & { counter: number }
        const counter = aedes.counter
        aedes.publish(next.packet as never, (err) => {
          if (err !== undefined && err !== null) this.warn('warn', { topic: next.packet.topic, err: err.message }, 'message from a peer not delivered')
          finished = true
          this.inflight--
          if (this.waitingEmit === next) this.waitingEmit = undefined // failed before its emit
          this.pumpInbound()
        })
        // aedes stamped the packet with the next counter, synchronously: the
        // persistence sees that stamp when it queues the message for a session.
        if (next.source !== undefined) {
          if (aedes.counter === counter + 1) this.rememberSource(aedes.counter, next.source)
          this.pumped.set(next.source.link, next.source.seq)
        }
        if (this.emitted || finished) {
          for (const key of next.shared) this.deliverShared(key, next.packet)
        } else {
          this.waitingEmit = next
        }
      }
    } finally {
      this.pumping = false
    }
  }

  /** aedes emitted a message from a peer to its subscribers: the next one may start. */
  private onInboundEmitted (): void {
    this.emitted = true
    const w = this.waitingEmit
    if (w === undefined) return
    this.waitingEmit = undefined
    for (const key of w.shared) this.deliverShared(key, w.packet)
    this.pumpInbound()
  }

  private hookAedes (aedes: Aedes): void {
    // aedes stamps a copy of each publish with its next counter, synchronously
    // in publish(), and hands `published` the original: the counter is noted
    // here for forward() (ForwardedPublish.id).
    const publish = aedes.publish.bind(aedes)
    const counted = aedes as Aedes & { counter: number }
    aedes.publish = ((packet: object, ...rest: unknown[]) => {
      const before = counted.counter
      ;(publish as (...args: unknown[]) => void)(packet, ...rest)
      if (counted.counter === before + 1) this.publishCounters.set(packet, counted.counter)
    }) as typeof aedes.publish
    const authorizeForward = aedes.authorizeForward.bind(aedes)
    aedes.authorizeForward = (client, packet) => {
      // Every delivery passes here: one size check unless a session moved here lately.
      if (this.movedIn.size > 0) {
        const w = this.movedIn.get(client.id)
        if (w !== undefined && w.suppressed.size > 0 && w.suppressed.has(stampKey(packet))) return null
      }
      return authorizeForward(client, packet)
    }
    const inner = aedes.published.bind(aedes)
    aedes.published = (packet, client, done) => {
      if (client === null || client === undefined || packet.topic.startsWith('$SYS/')) {
        inner(packet, client, done)
        return
      }
      const waits = this.forward(packet as PublishedPacket)
      if (waits === undefined) inner(packet, client, done)
      else waits.then(() => inner(packet, client, done), () => inner(packet, client, done))
    }
    const subscribe = aedes.subscribe.bind(aedes)
    // See pumpInbound: a message from a peer reached its subscribers.
    const mq = (aedes as unknown as { mq: { emit: (packet: { brokerId?: string }, cb?: () => void) => unknown } }).mq
    const emit = mq.emit.bind(mq)
    mq.emit = (packet, cb) => {
      const r = emit(packet, cb)
      if (packet.brokerId === this.peerBrokerId) this.onInboundEmitted()
      return r
    }
    // One connection per client id in the cluster: announce every local one.
    aedes.on('client', (client) => {
      const stamp = this.clock.now()
      this.connectedAt.set(client, stamp)
      this.sessionStamps.set(client.id, stamp)
      this.promotedFrom.delete(client.id)
      this.replication.connected(client.id)
      if (!this.running) return
      const m: DataPlaneMessage = { kind: 'client-connected', clientId: client.id, stamp }
      for (const link of this.links.values()) this.sendControl(link, m)
    })
    aedes.on('clientDisconnect', (client) => {
      const c = client as Client & { clean?: boolean, sessionExpiryInterval?: number }
      // A closed connection replaced by a newer one of the same id is not the session's end.
      if (this.localClient(client.id) !== undefined) return
      // A clean session ends with its connection: nothing to compare later.
      if (c.clean === true) this.sessionStamps.delete(client.id)
      this.replication.disconnected(client.id, c.clean === true ? 0 : (c.sessionExpiryInterval ?? 0xFFFFFFFF))
    })
    // Session move: note who is connecting and whether it resumes (see the top of the file).
    const preConnect = aedes.preConnect.bind(aedes)
    aedes.preConnect = (client, packet, callback) => {
      if (typeof packet.clientId === 'string' && packet.clientId !== '') {
        const now = Date.now()
        for (const [id, c] of this.connecting) if (c.until < now) this.connecting.delete(id)
        this.connecting.set(packet.clientId, { resume: packet.clean !== true, until: now + CONNECTING_TTL_MS })
      }
      preConnect(client, packet, callback)
    }
    const shared = this.opts.mqtt.shared
    shared.clusterMode = true
    aedes.subscribe = (topic, func, done) => {
      // A shared group's own subscription to its filter is not a route: its
      // members' marker subscriptions are, as `$share/g/f` with a count.
      if (!topic.startsWith('$SYS/') && !shared.isGroupDeliver(func)) {
        let topics = this.liveRoutes.get(func)
        if (topics === undefined) { topics = new Set(); this.liveRoutes.set(func, topics) }
        if (!topics.has(topic)) { topics.add(topic); this.localRoute(displayTopic(topic), true) }
      }
      subscribe(topic, func, done)
    }
    const unsubscribe = aedes.unsubscribe.bind(aedes)
    aedes.unsubscribe = (topic, func, done) => {
      const topics = this.liveRoutes.get(func)
      if (topics?.delete(topic) === true) this.localRoute(displayTopic(topic), false)
      unsubscribe(topic, func, done)
    }
    // Persistent sessions' subscriptions (aedes stores only those).
    const p = this.opts.mqtt.persistence
    const add = p.addSubscriptions.bind(p)
    p.addSubscriptions = async (client, subs) => {
      await add(client, subs)
      this.replication.subscribed(client.id, subs)
      let topics = this.storedRoutes.get(client.id)
      for (const s of subs) {
        if (!routable(s.topic)) continue
        if (topics === undefined) { topics = new Set(); this.storedRoutes.set(client.id, topics) }
        if (!topics.has(s.topic)) { topics.add(s.topic); this.localRoute(s.topic, true) }
      }
    }
    const byClient = p.subscriptionsByClient.bind(p)
    this.storedSubscriptions = byClient
    p.subscriptionsByClient = async (client) => {
      // aedes asks for a resuming client's subscriptions before restoring its session: fetch it from a peer first.
      const c = this.connecting.get(client.id)
      if (c?.resume === true && this.running) {
        this.connecting.delete(client.id)
        await this.fetchSession(client.id).catch((err: Error) => this.warn('warn', { client: client.id, err: err.message }, 'session not fetched from peers'))
      }
      return await byClient(client)
    }
    const remove = p.removeSubscriptions.bind(p)
    p.removeSubscriptions = async (client, unsubs) => {
      await remove(client, unsubs)
      this.replication.unsubscribed(client.id, unsubs)
      const topics = this.storedRoutes.get(client.id)
      if (topics === undefined) return
      for (const t of unsubs) if (topics.delete(t)) this.localRoute(t, false)
      if (topics.size === 0) this.storedRoutes.delete(client.id)
    }
    // Retained writes: a local client's goes into the LWW store, stamped,
    // and to every peer; a peer's publish was stored from its entry already.
    const storeRetained = p.storeRetained.bind(p)
    this.storeRetainedLocally = storeRetained as never
    p.storeRetained = async (packet) => {
      if (packet.brokerId === this.peerBrokerId) return
      if (packet.topic.startsWith('$SYS/')) return await storeRetained(packet)
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
      const entry = payload.length === 0
        ? this.retained.clear(packet.topic)
        : this.retained.set(packet.topic, { payload, qos: (packet.qos ?? 0) as Qos, ...(packet.properties === undefined ? {} : { properties: packet.properties as Record<string, unknown> }) })
      await storeRetained(packet)
      if (entry !== undefined) await this.replicate(entry)
    }
    // The outgoing queues and wills, for the replicas (session-replication.ts).
    const enqueue = p.outgoingEnqueue.bind(p)
    // Each queued message carries its name (msgId) wherever its session goes.
    // Names are noted before the await: a tail or rescue copy of the same
    // message handled in between must find it (found by chaos: both copies
    // queued, one QoS 2 message delivered twice).
    p.outgoingEnqueue = async (sub, packet) => {
      packet.msgId = this.msgIdOf(packet)
      if (this.heldAlready(sub.clientId, packet)) return
      this.noteQueued(sub.clientId, packet.msgId)
      await enqueue(sub, packet)
      this.replication.enqueued(sub.clientId, packet, this.sourceOf(packet))
    }
    const enqueueCombi = p.outgoingEnqueueCombi.bind(p)
    p.outgoingEnqueueCombi = async (all, packet) => {
      packet.msgId = this.msgIdOf(packet)
      const subs = all.filter((sub) => !this.heldAlready(sub.clientId, packet))
      for (const sub of subs) this.noteQueued(sub.clientId, packet.msgId)
      await enqueueCombi(subs, packet)
      const source = this.sourceOf(packet)
      for (const sub of subs) this.replication.enqueued(sub.clientId, packet, source)
    }
    const update = p.outgoingUpdate.bind(p)
    p.outgoingUpdate = async (client, packet) => {
      await update(client, packet)
      this.replication.updated(client.id, packet)
    }
    const clearId = p.outgoingClearMessageId.bind(p)
    p.outgoingClearMessageId = async (client, packet) => {
      const entry = await clearId(client, packet)
      if (entry !== undefined && typeof packet.messageId === 'number') this.replication.cleared(client.id, packet.messageId)
      return entry
    }
    const putWill = p.putWill.bind(p)
    p.putWill = async (client, will) => {
      await putWill(client, will)
      this.replication.willStored(client.id, will)
    }
    const delWill = p.delWill.bind(p)
    p.delWill = async (client) => {
      const will = await delWill(client)
      this.replication.willDeleted(client.id)
      return will
    }
    const clean = p.cleanSubscriptions.bind(p)
    p.cleanSubscriptions = async (client) => {
      const c = this.connecting.get(client.id)
      if (c !== undefined && !c.resume) {
        // A clean start: the old session is discarded here (by aedes) and on any peer.
        this.connecting.delete(client.id)
        if (this.running) this.discardSessionElsewhere(client.id)
      }
      await clean(client)
      this.replication.ended(client.id)
      const topics = this.storedRoutes.get(client.id)
      if (topics === undefined) return
      this.storedRoutes.delete(client.id)
      for (const t of topics) this.localRoute(t, false)
    }
  }

  /** Hands a message to this node's member of shared subscription `key` (`$share/g/f`), picked for it cluster-wide. */
  private deliverShared (key: string, message: { topic: string, payload: Buffer | string, qos?: number, properties?: unknown }): void {
    const marker = toMarker(key)
    if (marker === undefined) return
    const aedes = this.opts.mqtt.aedes as Aedes & { counter: number }
    const packet: DeliveredPacket = {
      cmd: 'publish',
      topic: message.topic,
      payload: typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload,
      qos: message.qos ?? 0,
      retain: false,
      dup: false,
      // aedes' per-client de-duplication wants a counter that only grows.
      brokerCounter: ++aedes.counter,
      ...(message.properties === undefined ? {} : { properties: message.properties as Record<string, unknown> })
    }
    this.opts.mqtt.shared.deliverTo(marker, packet, () => {})
  }

  /** Sends a local retained write to every peer; waits (and so delays the publisher) while a link is full. */
  private async replicate (entry: RetainedEntry): Promise<void> {
    if (!this.running || this.links.size === 0) return
    const buf = encodeMessage({ kind: 'retained', entry })
    const waits: Array<Promise<void>> = []
    for (const [name, link] of this.links) {
      if (link.state !== 'stopped' && link.send(buf, true) === 'backpressure' && !this.parked.has(name)) waits.push(sendWhenWritable(link, buf))
    }
    if (waits.length > 0) await Promise.all(waits)
  }

  /** A local subscription appeared or went away: tell every peer when the routing table says so. */
  private localRoute (filter: string, add: boolean): void {
    const delta: RouteDelta | undefined = add ? this.routing.subscribe(filter) : this.routing.unsubscribe(filter)
    if (delta === undefined) return
    const m: DataPlaneMessage = { kind: 'route-delta', delta }
    for (const link of this.links.values()) this.sendControl(link, m)
  }

  /**
   * Sends a local publish to the peers with a matching subscription (a
   * retained one reached every peer already as a replicated entry, from the
   * storeRetained hook). Returns a promise when a reliable send met
   * backpressure: aedes' callback (and so the PUBACK) waits for it.
   */
  private forward (packet: PublishedPacket): Promise<unknown> | undefined {
    // Shared subscriptions: one node per group cluster-wide (weighted round robin).
    let sharedFor: Map<string, string[]> | undefined
    for (const pick of this.routing.pickShared(packet.topic)) {
      const key = `$share/${pick.group}/${pick.filter}`
      if (pick.node === this.name) {
        this.deliverShared(key, packet)
        continue
      }
      sharedFor ??= new Map()
      const keys = sharedFor.get(pick.node)
      if (keys === undefined) sharedFor.set(pick.node, [key])
      else keys.push(key)
    }
    if (this.links.size === 0 || !this.running) return undefined
    const plain = this.routing.peersFor(packet.topic)
    const targets = sharedFor === undefined ? plain : [...new Set([...plain, ...sharedFor.keys()])].sort()
    packet[MESSAGE_TARGETS] = targets as string[]
    if (targets.length === 0) return undefined
    const qos = (packet.qos ?? 0) as Qos
    const reliable = qos > 0
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    const base = {
      origin: this.name,
      id: packet.brokerCounter ?? this.publishCounters.get(packet) ?? 0,
      topic: packet.topic,
      payload,
      qos,
      retain: packet.retain === true,
      shared: [] as string[],
      ...(packet.properties === undefined ? {} : { properties: packet.properties as Record<string, unknown> })
    }
    let plainBuf: Buffer | undefined
    let waits: Array<Promise<void>> | undefined
    for (const name of targets) {
      const link = this.links.get(name)
      if (link === undefined) continue
      const keys = sharedFor?.get(name)
      const buf = keys === undefined
        ? (plainBuf ??= encodeMessage({ kind: 'publish', publish: { ...base, plain: true } }))
        : encodeMessage({ kind: 'publish', publish: { ...base, plain: plain.includes(name), shared: keys } })
      if (link.send(buf, reliable) !== 'backpressure') continue
      // A peer declared dead must not stall the publishers: once its buffer
      // is full, what it would have received is dropped (and logged).
      if (this.parked.has(name)) this.warn('warn', { peer: name, topic: packet.topic }, 'buffer for a peer declared dead is full: message not kept for it')
      else (waits ??= []).push(sendWhenWritable(link, buf))
    }
    return waits === undefined ? undefined : Promise.all(waits)
  }
}

/** Retries a reliable send refused for backpressure once the link has room (or stopped: then the peer is gone). */
async function sendWhenWritable (link: PeerLink, buf: Buffer): Promise<void> {
  for (;;) {
    await link.whenWritable()
    if (link.state === 'stopped') return
    if (link.send(buf, true) !== 'backpressure') return
  }
}

/**
 * Stored subscriptions peers need to know about: not aedes' $SYS ones, not
 * shared-subscription markers (a group delivers to connected members only,
 * so an offline member must not attract messages).
 */
function routable (topic: string): boolean {
  return !topic.startsWith('$SYS/') && !isMarker(topic)
}

/** A socket that fails as a refused connection would: what a blocked dial looks like to the link. */
function refusedSocket (): Socket {
  const socket = new NetSocket()
  process.nextTick(() => socket.destroy(Object.assign(new Error('connection cut by fault injection'), { code: 'ECONNREFUSED' })))
  return socket
}

/** The cluster-wide name of a message a peer sent (StoredPacket.msgId): its process and its number there. */
function msgIdFrom (link: PeerLink, p: ForwardedPublish): string | undefined {
  return link.remoteProcess === undefined || p.id === 0 ? undefined : messageName(link.remoteProcess, p.id)
}
