// The cluster data plane of one node: its mechanisms, composed, and their
// lifecycle. docs/data-plane.md describes the whole; each mechanism has its
// own file:
//
//   link-set.ts              one peer link per live member (park, drop, restarts)
//   forwarding.ts            local publishes to the peers that deliver them; the wait behind an acknowledgement
//   inbound.ts               peers' publishes into this node's broker, settled when done
//   local-routes.ts          the filters this node routes (live and stored subscriptions)
//   retained-replication.ts  retained messages, the same on every node
//   session-replication.ts   each session's copy on a second node
//   session-moves.ts         a session following its client to another node; hand-off on stop
//   delivery-gates.ts        a session that arrived starts receiving once what it was owed is queued
//   takeover.ts              one connection per client id
//   promotion.ts             replicas become sessions when their home dies; orphan wills
//   rescue.ts                what a dead node never settled
//   session-reconcile.ts     sessions read from disk at start against the peers' newer copies
//   start-window.ts          after a restart: waiting for the members expected back, taking over for absent ones
//
// Events reach them through three adapters, each over the record of the
// mechanisms (mechanisms.ts): peer-events.ts (the links' events),
// message-dispatch.ts (the peers' messages) and store-observer.ts (the
// session store's changes).
//
// Where it plugs into the MQTT side (src/server/mqtt/hooks.ts, layer
// 'cluster' on each seam): publish (stamps), published (forwarding),
// subscribe/unsubscribe (routes), preConnect and authenticate (session
// moves); the session store's observer (every change of a session, for the
// replicas, the routes, late copies and retained replication); aedes'
// 'client' and 'clientDisconnect' events (takeover, replica connection
// state); the MQTT server's deliveryGate (a moved session starts receiving
// once what it was owed is queued).
import type { Client } from 'aedes'
import type { Socket } from 'node:net'
import type { Registry } from 'prom-client'
import type { Config } from '../../../config/index.js'
import type { Logger } from '../../../log.js'
import { rateLimited } from '../../../log.js'
import type { Bus } from '../../bus.js'
import type { MqttServer } from '../../mqtt/index.js'
import type { StoredPacket } from '../../mqtt/outgoing-queues.js'
import { Keyring } from '../keyring.js'
import type { Member } from '../membership/membership.js'
import type { LinkFaults } from '../fault-injection.js'
import type { DataPlaneContext } from './context.js'
import { localClient, sendControl } from './context.js'
import { HybridLogicalClock } from './hlc.js'
import { RoutingTable } from './routing-table.js'
import { LinkSet, type DataPlaneMembership } from './link-set.js'
import { Forwarding } from './forwarding.js'
import { Inbound } from './inbound.js'
import { LocalRoutes } from './local-routes.js'
import { RetainedReplication } from './retained-replication.js'
import type { RetainedStore, RetainedEntry } from './retained-store.js'
import type { RetainedSync } from './retained-sync.js'
import { SessionReplication } from './session-replication.js'
import { SessionMoves } from './session-moves.js'
import { DeliveryGates } from './delivery-gates.js'
import { Takeover } from './takeover.js'
import { Promotion } from './promotion.js'
import { Rescue } from './rescue.js'
import { SessionReconcile } from './session-reconcile.js'
import { StartWindow } from './start-window.js'
import type { PeerLink } from './peer-link.js'
import { registerDataPlaneMetrics } from './metrics.js'
import type { Mechanisms } from './mechanisms.js'
import { peerEvents } from './peer-events.js'
import { storeObserver } from './store-observer.js'

export type { DataPlaneMembership } from './link-set.js'
export type { MessageFromEvent } from './inbound.js'

/** How long a stopping node waits for its peers to acknowledge its last messages. */
const FLUSH_ON_STOP_MS = 1000

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

export class DataPlane {
  readonly name: string
  readonly routing: RoutingTable
  readonly clock: HybridLogicalClock
  readonly links: LinkSet
  readonly replication: SessionReplication
  private readonly parts: Mechanisms
  private running = false
  /**
   * What a received cluster message's acknowledgement waits for (set by the
   * node's storage with sync always: the disk write of what it changed, so a
   * replica acknowledged to its home is on the holder's disk too).
   */
  ackGate: (() => Promise<void> | undefined) | undefined
  /** Told when a client connected on a peer (set by the node's storage: a will it owes from disk is dropped). */
  clientSeenElsewhere: ((clientId: string) => void) | undefined
  /**
   * The identity this node's replicas are made under (ReplicaSnapshot.home):
   * its store's (set by the node's storage before start), else its process's.
   */
  identity: string

  constructor (options: DataPlaneOptions) {
    const { config, mqtt } = options
    const log = options.log
    this.name = options.membership.self.name
    this.identity = `process:${mqtt.aedes.id}`
    const cc = config.cluster.config
    const warn = rateLimited(log, 10_000)
    this.routing = new RoutingTable(this.name)
    // A remote stamp further ahead of our wall clock than cluster.max_clock_drift
    // is not adopted by our clock (hlc.ts), and a retained entry so stamped is
    // refused (retained-store.ts): one node with a clock set to next year must
    // not drag every clock, and every retained entry, with it.
    this.clock = new HybridLogicalClock(this.name, { maxForwardDriftMs: config.cluster.max_clock_drift })
    this.links = new LinkSet({
      name: this.name,
      process: mqtt.aedes.id,
      bind: config.cluster.bind,
      parkMs: cc.gossip_to_the_dead_time,
      keys: new Keyring([cc.secret_key, ...cc.secondary_keys], { label: config.cluster.label }),
      maxPending: config.cluster.max_pending_connections,
      handshakeTimeoutMs: config.cluster.handshake_timeout,
      log,
      membership: options.membership,
      faults: options.faults,
      dial: options.dial,
      warn,
      handlers: peerEvents(() => this.parts),
      ackGate: () => this.ackGate?.()
    })
    const ctx: DataPlaneContext = {
      name: this.name,
      process: mqtt.aedes.id,
      config,
      log,
      warn,
      mqtt,
      aedes: mqtt.aedes,
      store: mqtt.persistence,
      clock: this.clock,
      routing: this.routing,
      links: this.links,
      replicatedAcks: config.cluster.ack_after === 'replicated',
      running: () => this.running
    }
    const forwarding = new Forwarding(ctx)
    const routes = new LocalRoutes(ctx)
    const retained = new RetainedReplication(ctx, forwarding)
    const rescue = new Rescue(ctx)
    forwarding.orphanTraffic = (topic, qos, encode) => rescue.orphanTraffic(topic, qos, encode)
    forwarding.followGone = (peer, buf) => rescue.follow(peer, buf, async (link, seq) => await forwarding.held(link, seq))
    forwarding.takeoverDone = (peer) => rescue.takeoverDone(peer)
    forwarding.keepOrphan = (peer, buf) => rescue.keepOrphan(peer, buf)
    forwarding.rescueHere = (peer, buf) => rescue.rescueHere(peer, buf)
    forwarding.startPending = () => startWindow.routesPending()
    rescue.onTakeoverProgress = (peer) => forwarding.takeoverProgress(peer)
    const gates = new DeliveryGates(ctx)
    // Their hosts call each other back: the closures below run only once all are built.
    const takeover: Takeover = new Takeover(ctx, {
      seenElsewhere: (clientId) => { promotion.clientSeen(clientId, false); this.clientSeenElsewhere?.(clientId) },
      connecting: (clientId) => moves.connecting(clientId) || moves.isArriving(clientId),
      removeSession: async (clientId) => await moves.remove(clientId)
    })
    this.replication = new SessionReplication({
      links: this.links,
      store: ctx.store,
      log,
      send: (peer, m) => sendControl(ctx, peer, m),
      stampOf: (clientId) => takeover.stampOf(clientId),
      promoted: (clientId) => promotion.isPromoted(clientId),
      replicatedAcks: ctx.replicatedAcks,
      ackTimeoutMs: config.cluster.ack_timeout,
      maxQueuedPerSession: config.mqtt.max_queued_messages,
      identity: () => this.identity
    })
    const replication = this.replication
    const promotion: Promotion = new Promotion(ctx, replication, rescue, {
      store: async (clientId, from, replica) => await moves.storeReplica(clientId, from, replica),
      remove: async (clientId) => await moves.remove(clientId),
      hold: (clientIds, until) => gates.hold(clientIds, until),
      arriving: (clientId) => moves.isArriving(clientId)
    })
    const moves: SessionMoves = new SessionMoves(ctx, {
      takeover, replication, promotion, rescue, forwarding, routes, gates,
      fetchWait: () => startWindow.fetchWait(),
      beforeTakeover: (clientId) => startWindow.beforeTakeover(clientId),
      diskCopy: (clientId) => reconcile.isDiskCopy(clientId),
      storedHere: (clientId) => reconcile.settled(clientId)
    })
    const reconcile = new SessionReconcile(ctx, {
      takeover,
      promotion,
      replicas: replication.replicas,
      identity: () => this.identity,
      busy: (clientId) => moves.connecting(clientId) || moves.isArriving(clientId),
      remove: async (clientId) => await moves.remove(clientId)
    })
    const startWindow = new StartWindow(ctx, { replicas: replication.replicas, promotion })
    const inbound = new Inbound(ctx, options.bus, forwarding, {
      followers: (topic) => moves.followers(topic),
      queueLate: async (clientId, packet) => await moves.queueLate(clientId, packet as StoredPacket)
    })
    rescue.followMoved = (clientIds, packet) => inbound.followLate(packet, clientIds)
    this.parts = {
      ctx, routing: this.routing, links: this.links, forwarding, inbound, routes, retained, replication,
      moves, gates, takeover, promotion, rescue, reconcile, startWindow
    }
    registerDataPlaneMetrics(options.registry, {
      links: () => [...this.links.entries()].map(([peer, link]) => [peer, link.stats()]),
      refused: () => ({ ...this.links.acceptor.refused }) as Record<string, number>,
      routes: () => this.routing.size,
      retained: () => {
        const { count, bytes, tombstones, refused, future } = retained.store
        return { count, bytes, tombstones, refused, future }
      },
      sync: () => retained.sync.stats,
      sessions: () => ({ ...replication.stats(), rescued: rescue.rescued }),
      acks: () => ({ ...forwarding.unreplicated }),
      moves: () => ({ ...gates.settled }),
      fetchRefusals: () => moves.refusedUnanswered,
      subscribesUnconfirmed: () => routes.unconfirmed,
      homeSessions: () => ctx.store.sessions().length,
      diskCopiesYielded: () => reconcile.yielded,
      deaths: () => ({ ...this.links.deaths }),
      takeoverWaits: () => {
        const { waiting, waitingBytes, waited, refused } = forwarding.backpressure
        return { waiting, waitingBytes, waited, refused }
      }
    })
    this.plugIn(mqtt)
  }

  /** Every retained message of the cluster, last writer wins; aedes' retained store follows it. */
  get retained (): RetainedStore { return this.parts.retained.store }
  get sync (): RetainedSync { return this.parts.retained.sync }

  /** Retained entries from this node's store on disk (before start): see RetainedReplication.restore. */
  restoreRetained (entries: Iterable<RetainedEntry>): string[] { return this.parts.retained.restore(entries) }

  /** Sessions read from this node's store on disk (before start): reconciled with the peers' copies as links come up (session-reconcile.ts). */
  sessionsFromDisk (clientIds: Iterable<string>): void { this.parts.reconcile.loaded(clientIds) }

  /** After a restart with storage in a cluster: the first `ms` wait for the members expected back (start-window.ts). */
  openStartWindow (ms: number): void { this.parts.startWindow.open(ms) }

  /** Peers we hold a link to, sorted. */
  get peers (): string[] { return this.links.peers }

  /** The link to a peer (tests, diagnostics). */
  link (peer: string): PeerLink | undefined { return this.links.get(peer) }

  async start (): Promise<void> {
    this.running = true
    this.links.start()
    this.parts.retained.start()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    const { ctx, moves, promotion, retained, startWindow } = this.parts
    startWindow.stop()
    // MQTT stopped before us: every client is gone, its session still here.
    // Hand each persistent session to a peer, so a client reconnecting
    // anywhere after this node is gone still finds it.
    await moves.handOff().catch((err: Error) => ctx.log.warn({ err: err.message }, 'sessions not handed off on stop'))
    this.replication.stop()
    // The last changes (sessions dropped after their hand-off, routes) reach
    // the peers before the links close: a replica left behind would be taken
    // over as if this node had died.
    await this.links.flush(FLUSH_ON_STOP_MS)
    this.running = false
    ctx.mqtt.deliveryGate = undefined
    promotion.stop()
    retained.stop()
    this.links.stop()
  }

  // ---- the seams into MQTT -------------------------------------------------------------------

  private plugIn (mqtt: MqttServer): void {
    const { ctx, forwarding, routes, moves, gates, takeover, promotion, replication } = this.parts
    const hooks = mqtt.hooks
    hooks.use('publish', 'cluster', (next) => forwarding.stampLayer(next))
    hooks.use('published', 'cluster', (next) => forwarding.publishedLayer(next))
    hooks.use('subscribe', 'cluster', (next) => routes.subscribeLayer(next))
    hooks.use('unsubscribe', 'cluster', (next) => routes.unsubscribeLayer(next))
    hooks.use('preConnect', 'cluster', (next) => moves.preConnectLayer(next))
    hooks.use('authenticate', 'cluster', (next) => moves.authenticateLayer(next))
    mqtt.persistence.observer = storeObserver(this.parts)
    mqtt.deliveryGate = (clientId) => gates.gate(clientId)
    // A group spans every node: the publishing node picks one node per message (forwarding.ts).
    mqtt.shared.clusterMode = true
    mqtt.aedes.on('client', (client) => {
      this.parts.reconcile.settled(client.id)
      takeover.connected(client)
      promotion.clientSeen(client.id, true)
      replication.connected(client.id)
    })
    mqtt.aedes.on('clientDisconnect', (client) => {
      const c = client as Client & { clean?: boolean, sessionExpiryInterval?: number }
      // A closed connection replaced by a newer one of the same id is not the session's end.
      if (localClient(ctx, client.id) !== undefined) return
      // A clean session ends with its connection: nothing to compare later.
      if (c.clean === true) takeover.forget(client.id)
      replication.disconnected(client.id, c.clean === true ? 0 : (c.sessionExpiryInterval ?? 0xFFFFFFFF))
    })
  }
}
