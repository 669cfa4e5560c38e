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
import type { PersistenceObserver, StoredSubscription } from '../../mqtt/persistence-observer.js'
import type { StoredPacket } from '../../mqtt/outgoing-queues.js'
import { Keyring } from '../keyring.js'
import type { Member } from '../membership/membership.js'
import type { LinkFaults } from '../fault-injection.js'
import type { DataPlaneContext } from './context.js'
import { localClient } from './context.js'
import { HybridLogicalClock } from './hlc.js'
import { RoutingTable } from './routing-table.js'
import { LinkSet, type DataPlaneMembership } from './link-set.js'
import { Forwarding } from './forwarding.js'
import { Inbound } from './inbound.js'
import { LocalRoutes } from './local-routes.js'
import { RetainedReplication } from './retained-replication.js'
import type { RetainedStore } from './retained-store.js'
import type { RetainedSync } from './retained-sync.js'
import { SessionReplication } from './session-replication.js'
import { SessionMoves } from './session-moves.js'
import { DeliveryGates } from './delivery-gates.js'
import { Takeover } from './takeover.js'
import { Promotion } from './promotion.js'
import { Rescue } from './rescue.js'
import { decodeMessage, encodeMessage, type DataPlaneMessage } from './messages.js'
import type { PeerLink, DeliveryInfo } from './peer-link.js'
import { registerDataPlaneMetrics } from './metrics.js'

export type { DataPlaneMembership } from './link-set.js'
export type { MessageFromEvent } from './inbound.js'

/**
 * A remote stamp further ahead of our wall clock is merged by its stamp but
 * not adopted by our clock (see hlc.ts): one node with a clock set to next
 * year must not drag every clock, and every retained entry, with it.
 */
const MAX_CLOCK_DRIFT_MS = 60_000

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
  private readonly retainedReplication: RetainedReplication
  private readonly ctx: DataPlaneContext
  private readonly forwarding: Forwarding
  private readonly inbound: Inbound
  private readonly routes: LocalRoutes
  private readonly moves: SessionMoves
  private readonly gates: DeliveryGates
  private readonly takeover: Takeover
  private readonly promotion: Promotion
  private readonly rescue: Rescue
  private running = false

  constructor (options: DataPlaneOptions) {
    const { config, mqtt } = options
    const log = options.log
    this.name = options.membership.self.name
    const cc = config.cluster.config
    const warn = rateLimited(log, 10_000)
    this.routing = new RoutingTable(this.name)
    this.clock = new HybridLogicalClock(this.name, { maxForwardDriftMs: MAX_CLOCK_DRIFT_MS })
    this.links = new LinkSet({
      name: this.name,
      process: mqtt.aedes.id,
      bind: config.cluster.bind,
      parkMs: cc.gossip_to_the_dead_time,
      cipher: new Keyring([cc.secret_key, ...cc.secondary_keys]),
      log,
      membership: options.membership,
      faults: options.faults,
      dial: options.dial,
      warn,
      handlers: {
        onMessage: (link, payload, info) => this.onMessage(link, payload, info),
        onUp: (link, restarted) => this.linkUp(link, restarted),
        onGone: (peer, state) => this.peerGone(peer, state),
        onReachable: (peer) => this.promotion.reachable(peer),
        onBack: (peer) => {
          this.promotion.undo(peer)
          // Replicas it held for us and that moved on while it was away go there.
          this.replication.peerUp(peer)
        },
        onRestart: (peer, orphans) => this.peerRestarted(peer, orphans),
        onDown: (peer) => {
          this.replication.holderDown(peer)
          this.forwarding.linkDown(peer)
        },
        onDropped: (peer, unsettled) => {
          // Kept for whoever took (or takes) its sessions over: a node that left handed them off.
          if (unsettled.length > 0) this.rescue.keepOrphans(peer, unsettled, this.routing.filtersOf(peer))
          this.routing.removePeer(peer)
          this.forwarding.peerGone(peer)
          this.forwarding.forget(peer)
          this.replication.peerGone(peer)
          this.replication.forget(peer)
          this.moves.peerGone(peer)
        }
      }
    })
    this.ctx = {
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
    const ctx = this.ctx
    this.forwarding = new Forwarding(ctx)
    this.routes = new LocalRoutes(ctx)
    this.retainedReplication = new RetainedReplication(ctx, this.forwarding)
    this.rescue = new Rescue(ctx)
    this.gates = new DeliveryGates(ctx)
    this.forwarding.orphanTraffic = (topic, qos, encode) => this.rescue.orphanTraffic(topic, qos, encode)
    this.takeover = new Takeover(ctx, {
      seenElsewhere: (clientId) => this.promotion.clientSeen(clientId, false),
      connecting: (clientId) => this.moves.connecting(clientId),
      removeSession: async (clientId) => await this.moves.remove(clientId)
    })
    this.replication = new SessionReplication({
      links: this.links,
      store: ctx.store,
      log,
      send: (peer, m) => {
        const link = this.links.get(peer)
        if (link === undefined || link.state === 'stopped') return undefined
        link.send(encodeMessage(m), 'control')
        return link.lastQueuedSeq
      },
      stampOf: (clientId) => this.takeover.stampOf(clientId),
      promoted: (clientId) => this.promotion.isPromoted(clientId),
      replicatedAcks: ctx.replicatedAcks,
      ackTimeoutMs: config.cluster.ack_timeout,
      maxQueuedPerSession: config.mqtt.max_queued_messages
    })
    this.promotion = new Promotion(ctx, this.replication, this.rescue, {
      store: async (clientId, from, replica) => await this.moves.storeReplica(clientId, from, replica),
      remove: async (clientId) => await this.moves.remove(clientId),
      hold: (clientIds, until) => this.gates.hold(clientIds, until),
      arriving: (clientId) => this.moves.isArriving(clientId)
    })
    this.moves = new SessionMoves(ctx, {
      takeover: this.takeover,
      replication: this.replication,
      promotion: this.promotion,
      rescue: this.rescue,
      forwarding: this.forwarding,
      routes: this.routes,
      gates: this.gates
    })
    this.inbound = new Inbound(ctx, options.bus, this.forwarding, {
      followers: (topic) => this.moves.followers(topic),
      queueLate: async (clientId, packet) => await this.moves.queueLate(clientId, packet as StoredPacket)
    })
    registerDataPlaneMetrics(options.registry, {
      links: () => [...this.links.entries()].map(([peer, link]) => [peer, link.stats()]),
      refused: () => ({ ...this.links.acceptor.refused }) as Record<string, number>,
      routes: () => this.routing.size,
      retained: () => ({ count: this.retainedReplication.store.count, bytes: this.retainedReplication.store.bytes, tombstones: this.retainedReplication.store.tombstones, refused: this.retainedReplication.store.refused }),
      sync: () => this.retainedReplication.sync.stats,
      sessions: () => ({ ...this.replication.stats(), rescued: this.rescue.rescued }),
      acks: () => ({ ...this.forwarding.unreplicated }),
      moves: () => ({ ...this.gates.settled })
    })
    this.plugIn(mqtt)
  }

  /** Every retained message of the cluster, last writer wins; aedes' retained store follows it. */
  get retained (): RetainedStore { return this.retainedReplication.store }
  get sync (): RetainedSync { return this.retainedReplication.sync }

  /** Peers we hold a link to, sorted. */
  get peers (): string[] { return this.links.peers }

  /** The link to a peer (tests, diagnostics). */
  link (peer: string): PeerLink | undefined { return this.links.get(peer) }

  async start (): Promise<void> {
    this.running = true
    this.links.start()
    this.retainedReplication.start()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    // MQTT stopped before us: every client is gone, its session still here.
    // Hand each persistent session to a peer, so a client reconnecting
    // anywhere after this node is gone still finds it.
    await this.moves.handOff().catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'sessions not handed off on stop'))
    this.replication.stop()
    // The last changes (sessions dropped after their hand-off, routes) reach
    // the peers before the links close: a replica left behind would be taken
    // over as if this node had died.
    await this.links.flush(FLUSH_ON_STOP_MS)
    this.running = false
    this.ctx.mqtt.deliveryGate = undefined
    this.promotion.stop()
    this.retainedReplication.stop()
    this.links.stop()
  }

  // ---- the seams into MQTT -------------------------------------------------------------------

  private plugIn (mqtt: MqttServer): void {
    const hooks = mqtt.hooks
    hooks.use('publish', 'cluster', (next) => this.forwarding.stampLayer(next))
    hooks.use('published', 'cluster', (next) => this.forwarding.publishedLayer(next))
    hooks.use('subscribe', 'cluster', (next) => this.routes.subscribeLayer(next))
    hooks.use('unsubscribe', 'cluster', (next) => this.routes.unsubscribeLayer(next))
    hooks.use('preConnect', 'cluster', (next) => this.moves.preConnectLayer(next))
    hooks.use('authenticate', 'cluster', (next) => this.moves.authenticateLayer(next))
    mqtt.persistence.observer = this.observer()
    mqtt.deliveryGate = (clientId) => this.gates.gate(clientId)
    // A group spans every node: the publishing node picks one node per message (forwarding.ts).
    mqtt.shared.clusterMode = true
    mqtt.aedes.on('client', (client) => {
      this.takeover.connected(client)
      this.promotion.clientSeen(client.id, true)
      this.replication.connected(client.id)
    })
    mqtt.aedes.on('clientDisconnect', (client) => {
      const c = client as Client & { clean?: boolean, sessionExpiryInterval?: number }
      // A closed connection replaced by a newer one of the same id is not the session's end.
      if (localClient(this.ctx, client.id) !== undefined) return
      // A clean session ends with its connection: nothing to compare later.
      if (c.clean === true) this.takeover.forget(client.id)
      this.replication.disconnected(client.id, c.clean === true ? 0 : (c.sessionExpiryInterval ?? 0xFFFFFFFF))
    })
  }

  /** The session store's observer: every change, fanned out to the mechanisms that keep what depends on it. */
  private observer (): PersistenceObserver {
    const r = this.replication
    const all = (...waits: Array<Promise<void> | undefined>): Promise<void> | undefined => {
      const w = waits.filter((x) => x !== undefined)
      return w.length === 0 ? undefined : w.length === 1 ? w[0] : Promise.all(w).then(() => {})
    }
    return {
      retained: (packet) => this.retainedReplication.written(packet),
      subscribed: (clientId, subs: readonly StoredSubscription[]) => {
        r.subscribed(clientId, subs)
        this.routes.storedAdded(clientId, subs.map((s) => s.topic))
      },
      unsubscribed: (clientId, topics) => {
        r.unsubscribed(clientId, topics)
        this.routes.storedRemoved(clientId, topics)
      },
      ended: (clientId) => {
        r.ended(clientId)
        this.routes.storedEnded(clientId)
      },
      queued: (clientId, entry: StoredPacket, at) => all(r.queued(clientId, entry, at), this.moves.queued(clientId, entry)),
      sent: (clientId, entry) => r.sent(clientId, entry),
      released: (clientId, messageId) => r.released(clientId, messageId),
      cleared: (clientId, ref) => r.cleared(clientId, ref),
      willStored: (clientId, will) => r.willStored(clientId, will),
      willDeleted: (clientId) => r.willDeleted(clientId),
      incomingStored: (clientId, messageId) => r.incomingStored(clientId, messageId),
      incomingReleased: (clientId, messageId) => r.incomingReleased(clientId, messageId)
    }
  }

  // ---- links ----------------------------------------------------------------------------------

  private linkUp (link: PeerLink, restarted: boolean): void {
    if (restarted) this.log('peer restarted: taking over its sessions held here as replicas, replicating ours to it afresh', link.peerName)
    // Every (re)connect sends the whole table: it supersedes any delta the
    // peer missed, and is how a 'gap' gets repaired.
    link.send(encodeMessage({ kind: 'route-table', table: this.routing.localTable() }), 'control')
    this.retainedReplication.linkUp(link)
    if (!this.links.isParked(link.peerName)) this.replication.peerUp(link.peerName)
  }

  private peerGone (peer: string, state: 'dead' | 'left'): void {
    this.forwarding.peerGone(peer)
    this.replication.peerGone(peer)
    this.moves.peerGone(peer)
    if (state === 'left') {
      this.routing.removePeer(peer)
      this.promotion.confirmDown(peer)
    } else {
      // A partition looks like a death: only a refused connection proves the process is gone.
      this.links.probe(peer).then((answer) => { if (answer === 'refused') this.promotion.confirmDown(peer) }, () => {})
    }
    // Sessions that left it for here lately: what it was sent for them and never settled.
    this.moves.movedAwayFrom(peer)
    // Its sessions are ours now: those it handed off on a graceful stop are
    // gone from our replicas already, what is left it could not hand off.
    this.promotion.promote(peer).catch((err: Error) => this.ctx.log.warn({ peer, err: err.message }, 'sessions of a dead node not taken over'))
  }

  /** A peer came back as a new process: it lost every session it held; ours are replicated to it afresh. */
  private peerRestarted (peer: string, orphans: Array<{ seq: number, payload: Buffer }>): void {
    // Before the new process's route table replaces the old one.
    this.rescue.keepOrphans(peer, orphans, this.routing.filtersOf(peer))
    this.forwarding.peerGone(peer)
    this.replication.peerGone(peer)
    this.moves.peerGone(peer)
    this.promotion.confirmDown(peer)
    this.moves.movedAwayFrom(peer)
    this.promotion.promote(peer).catch((err: Error) => this.ctx.log.warn({ peer, err: err.message }, 'sessions of a restarted node not taken over'))
    this.promotion.alive(peer)
  }

  private log (msg: string, peer: string): void {
    this.ctx.log.info({ peer }, msg)
  }

  private onMessage (link: PeerLink, payload: Buffer, info: DeliveryInfo): void {
    let m: DataPlaneMessage
    try {
      m = decodeMessage(payload)
    } catch (err) {
      this.ctx.warn('warn', { peer: link.peerName, err: (err as Error).message }, 'undecodable data-plane message dropped')
      if (info.hold === true && info.source !== undefined) link.settle(info.source)
      return
    }
    const peer = link.peerName
    const failed = (what: string, client?: string) => (err: Error): void => this.ctx.warn('warn', { peer, client, err: err.message }, what)
    switch (m.kind) {
      case 'publish':
        this.inbound.deliver(link, m.publish, info)
        return
      case 'retained':
        this.retainedReplication.received(link, m.entry, info)
        return
      case 'route-table':
        this.routing.applyTable(peer, m.table)
        this.forwarding.tableArrived(peer)
        return
      case 'route-delta': {
        const r = this.routing.applyDelta(peer, m.delta)
        // No table yet: one is on its way (every link start sends one). A
        // skipped version with a table: reconnect to get a fresh one.
        if (r === 'gap' && this.routing.peerVersion(peer) !== undefined) link.dropConnection()
        return
      }
      case 'client-connected':
        this.takeover.announced(m.clientId, m.stamp, peer)
        return
      case 'session-request':
        this.moves.serve(link, m).catch(failed('session request not served', m.clientId))
        return
      case 'session-transfer':
        if (!this.moves.answered(peer, m.requestId, m.session, m.replica === true) && m.session !== null && m.replica !== true) {
          // Not an answer we wait for: a stopping peer hands us the session, or
          // an answer came after its CONNECT went on without it.
          this.moves.adopt(link, m.requestId, m.clientId, m.session).catch(failed('handed-off session not stored', m.clientId))
        }
        return
      case 'session-ack':
        this.moves.acknowledged(m.requestId, peer).catch(failed('moved session not removed here', m.clientId))
        return
      case 'replica':
        this.replication.apply(peer, m.ops)
        return
      case 'rescue-request':
        this.rescue.answer(link, m.from, m.requestId)
        return
      case 'rescue':
        this.rescue.received(link, m.requestId, m.publish, info)
        return
      case 'rescue-done':
        this.rescue.done(peer, m.requestId)
        return
      case 'barrier-request':
        this.gates.barrierRequested(link, m.id, m.from).catch(failed('barrier not answered'))
        return
      case 'barrier-done':
        this.gates.barrierDone(peer, m.id)
        return
      case 'replica-lost':
        this.replication.replicasLost(peer, m.clientIds)
        return
      default:
        this.retainedReplication.handleSync(link, m)
    }
  }
}
