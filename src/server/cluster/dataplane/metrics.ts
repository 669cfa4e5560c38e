// Prometheus metrics of the data plane, registered into the node's registry.
// Everything is read at scrape time from the components' own counters
// (PeerLink.stats(), RoutingTable.size, RetainedStore, RetainedSync.stats), so
// the hot paths carry no metric calls. Per-peer counters survive a link being
// replaced (a member that left and came back): a counter that went down is a
// new source and is added whole.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { LinkStats } from './peer-link.js'
import type { RetainedSyncStats } from './retained-sync.js'

export interface DataPlaneSources {
  /** Stats of every current peer link, by peer name. */
  links: () => Array<[peer: string, stats: LinkStats]>
  /** Connections the acceptor refused, by reason. */
  refused: () => Record<string, number>
  routes: () => number
  retained: () => { count: number, bytes: number, tombstones: number, refused: number, future: number }
  sync: () => RetainedSyncStats
  /** Session replication (session-replication.ts). */
  sessions: () => SessionReplicationStats
  /** Acknowledgements sent without a second node's confirmation, by reason (forwarding.ts). */
  acks: () => Record<'peer-gone' | 'timeout', number>
  /** Moved sessions whose delivery started when every peer confirmed, or by timeout (delivery-gates.ts). */
  moves: () => { barriers: number, timeout: number }
  /** Resuming CONNECTs refused: a peer with a live link did not answer the session fetch in time. */
  fetchRefusals: () => number
  /** Subscriptions whose SUBACK went before every linked peer confirmed the new route (local-routes.ts). */
  subscribesUnconfirmed: () => number
  /** Persistent sessions at home on this node (session store). */
  homeSessions: () => number
  /** Sessions read from disk deleted because a peer held a newer copy (session-reconcile.ts). */
  diskCopiesYielded: () => number
  /** Deaths the membership declared while the peer's link was up, and of those the ones its link confirmed (link-set.ts). */
  deaths: () => { doubted: number, confirmed: number }
  /** Publishes for a dead peer's sessions waiting for their takeover, and those refused (rescue-backpressure.ts). */
  takeoverWaits: () => { waiting: number, waitingBytes: number, waited: number, refused: number }
}

/** The figures session-replication.ts keeps. */
export interface SessionReplicationStats {
  replicasHeld: number
  replicaQueued: number
  replicatedSessions: number
  opsSent: number
  opsApplied: number
  opsIgnored: number
  promoted: number
  willsPublished: number
  /** Publishes a dead home never acknowledged, queued here for the sessions taken over from it. */
  rescued: number
}

type LinkCounterField = 'messagesSent' | 'messagesReceived' | 'bytesSent' | 'bytesReceived' | 'retransmitted' | 'duplicates' | 'shed' | 'backpressured'

const LINK_COUNTERS: Array<[LinkCounterField, string, string]> = [
  ['messagesSent', 'broker_cluster_link_messages_sent_total', 'Messages written to a peer link (retransmissions included)'],
  ['messagesReceived', 'broker_cluster_link_messages_received_total', 'Messages delivered from a peer link'],
  ['bytesSent', 'broker_cluster_link_bytes_sent_total', 'Bytes written to a peer link'],
  ['bytesReceived', 'broker_cluster_link_bytes_received_total', 'Bytes read from a peer link'],
  ['retransmitted', 'broker_cluster_link_retransmissions_total', 'Reliable messages sent again after a reconnect'],
  ['duplicates', 'broker_cluster_link_duplicates_total', 'Reliable messages received again and discarded'],
  ['shed', 'broker_cluster_link_shed_total', 'QoS 0 messages dropped because the link was down or its buffer full'],
  ['backpressured', 'broker_cluster_link_backpressure_total', 'Reliable sends refused because the link buffer was full']
]

/** Turns a cumulative source into counter increments, per label set. */
function follow (counter: Counter<string>, seen: Map<string, number>, labels: Record<string, string>, value: number): void {
  const key = JSON.stringify(labels)
  const last = seen.get(key) ?? 0
  const delta = value >= last ? value - last : value
  if (delta > 0) counter.inc(labels, delta)
  seen.set(key, value)
}

export function registerDataPlaneMetrics (registry: Registry, live: DataPlaneSources): void {
  for (const [field, name, help] of LINK_COUNTERS) {
    const seen = new Map<string, number>()
    new Counter({
      name,
      help,
      labelNames: ['peer'] as const,
      registers: [registry],
      collect () { for (const [peer, s] of live.links()) follow(this, seen, { peer }, s[field]) }
    })
  }
  const errorsSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_link_protocol_errors_total',
    help: 'Peer link connections closed for bad bytes or silence, by reason',
    labelNames: ['peer', 'reason'] as const,
    registers: [registry],
    collect () {
      for (const [peer, s] of live.links()) for (const [reason, n] of Object.entries(s.protocolErrors)) follow(this, errorsSeen, { peer, reason }, n ?? 0)
    }
  })
  const refusedSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_link_refused_total',
    help: 'Inbound peer link connections refused before the handshake completed, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect () { for (const [reason, n] of Object.entries(live.refused())) follow(this, refusedSeen, { reason }, n) }
  })
  new Gauge({
    name: 'broker_cluster_link_queue_depth',
    help: 'Reliable messages awaiting acknowledgement plus QoS 0 messages not yet written, per peer',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect () { this.reset(); for (const [peer, s] of live.links()) this.set({ peer }, s.queueDepth) }
  })
  new Gauge({
    name: 'broker_cluster_link_buffered_bytes',
    help: 'Bytes held by a peer link (unacknowledged plus unwritten)',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect () { this.reset(); for (const [peer, s] of live.links()) this.set({ peer }, s.bufferedBytes) }
  })
  new Gauge({
    name: 'broker_cluster_link_up',
    help: 'Whether the peer link is connected and past its handshake (1) or not (0)',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect () { this.reset(); for (const [peer, s] of live.links()) this.set({ peer }, s.state === 'up' ? 1 : 0) }
  })
  new Gauge({
    name: 'broker_cluster_routes',
    help: 'Topic filters held by peers (routing table size)',
    registers: [registry],
    collect () { this.set(live.routes()) }
  })
  // The MQTT component may already export these two from its own view of the
  // retained messages (the same messages); prom-client refuses a second
  // registration, so the first one stands.
  if (registry.getSingleMetric('broker_retained_messages') === undefined) {
    new Gauge({ name: 'broker_retained_messages', help: 'Retained messages held', registers: [registry], collect () { this.set(live.retained().count) } })
  }
  if (registry.getSingleMetric('broker_retained_bytes') === undefined) {
    new Gauge({ name: 'broker_retained_bytes', help: 'Payload bytes of retained messages held', registers: [registry], collect () { this.set(live.retained().bytes) } })
  }
  new Gauge({ name: 'broker_retained_tombstones', help: 'Cleared retained topics remembered until their tombstone expires', registers: [registry], collect () { this.set(live.retained().tombstones) } })
  const retainedRefused = new Map<string, number>()
  new Counter({
    name: 'broker_retained_refused_total',
    help: 'New retained topics refused by max_retained_messages or max_retained_bytes',
    registers: [registry],
    collect () { follow(this, retainedRefused, {}, live.retained().refused) }
  })
  const retainedFuture = new Map<string, number>()
  new Counter({
    name: 'broker_retained_future_refused_total',
    help: 'Retained entries from peers refused for a stamp further ahead of this node\'s clock than cluster.max_clock_drift',
    registers: [registry],
    collect () { follow(this, retainedFuture, {}, live.retained().future) }
  })
  const roundsSeen = new Map<string, number>()
  new Counter({
    name: 'broker_retained_sync_rounds_total',
    help: 'Retained anti-entropy rounds this node started',
    registers: [registry],
    collect () { follow(this, roundsSeen, {}, live.sync().rounds) }
  })
  const repairedSeen = new Map<string, number>()
  new Counter({
    name: 'broker_retained_sync_repaired_total',
    help: 'Retained entries that anti-entropy changed on this node (differences repaired)',
    registers: [registry],
    collect () { follow(this, repairedSeen, {}, live.sync().repaired) }
  })
  new Gauge({ name: 'broker_cluster_session_replicas', help: 'Session replicas this node holds for sessions whose home is another node', registers: [registry], collect () { this.set(live.sessions().replicasHeld) } })
  new Gauge({ name: 'broker_cluster_session_replica_queued_messages', help: 'QoS 1/2 messages queued in the session replicas this node holds', registers: [registry], collect () { this.set(live.sessions().replicaQueued) } })
  new Gauge({ name: 'broker_cluster_replicated_sessions', help: 'Sessions at home on this node whose replica is on a peer', registers: [registry], collect () { this.set(live.sessions().replicatedSessions) } })
  const opsSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_session_replica_ops_total',
    help: 'Session changes sent to replica holders (sent), applied to replicas held here (applied), or matching no replica (ignored)',
    labelNames: ['direction'] as const,
    registers: [registry],
    collect () {
      const s = live.sessions()
      follow(this, opsSeen, { direction: 'sent' }, s.opsSent)
      follow(this, opsSeen, { direction: 'applied' }, s.opsApplied)
      follow(this, opsSeen, { direction: 'ignored' }, s.opsIgnored)
    }
  })
  const promotedSeen = new Map<string, number>()
  new Counter({ name: 'broker_cluster_sessions_promoted_total', help: 'Session replicas this node took over because their home node died', registers: [registry], collect () { follow(this, promotedSeen, {}, live.sessions().promoted) } })
  const rescuedSeen = new Map<string, number>()
  new Counter({ name: 'broker_cluster_rescued_messages_total', help: 'Publishes a dead node never acknowledged, queued here for the sessions taken over from it', registers: [registry], collect () { follow(this, rescuedSeen, {}, live.sessions().rescued) } })
  const willsSeen = new Map<string, number>()
  const acksSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_acks_unreplicated_total',
    help: 'QoS 1/2 acknowledgements sent without a second node confirming it holds the message (cluster.ack_after: replicated), by reason: peer-gone (declared dead, left or restarted; its unsettled messages wait for rescue), timeout (cluster.ack_timeout)',
    labelNames: ['reason'],
    registers: [registry],
    collect () { for (const [reason, n] of Object.entries(live.acks())) follow(this, acksSeen, { reason }, n) }
  })
  const fetchRefusalsSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_session_fetch_refusals_total',
    help: 'Resuming CONNECTs refused with server unavailable because a peer with a live link did not say within 20 s whether it holds the session (the client retries; its session stays where it is)',
    registers: [registry],
    collect () { follow(this, fetchRefusalsSeen, {}, live.fetchRefusals()) }
  })
  const unconfirmedSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_subscribes_unconfirmed_total',
    help: 'Subscriptions acknowledged (SUBACK) before every linked peer confirmed their new route within cluster.ack_timeout: until it arrives, a publish on such a peer can miss them',
    registers: [registry],
    collect () { follow(this, unconfirmedSeen, {}, live.subscribesUnconfirmed()) }
  })
  const deathsSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_deaths_doubted_total',
    help: 'Peers the membership declared dead while their data-plane link was up: nothing is taken over from them until the link goes down too (outcome="confirmed"), or they are alive again (the rest: a starved or paused process, or lost gossip)',
    labelNames: ['outcome'],
    registers: [registry],
    collect () { const d = live.deaths(); follow(this, deathsSeen, { outcome: 'declared' }, d.doubted); follow(this, deathsSeen, { outcome: 'confirmed' }, d.confirmed) }
  })
  const movesSeen = new Map<string, number>()
  new Counter({
    name: 'broker_cluster_moves_settled_total',
    help: 'Sessions that arrived here and started receiving, by how their delivery was released: barrier (every peer confirmed nothing was still on its way to the old home), timeout (after 1 s without that)',
    labelNames: ['by'],
    registers: [registry],
    collect () { const m = live.moves(); follow(this, movesSeen, { by: 'barrier' }, m.barriers); follow(this, movesSeen, { by: 'timeout' }, m.timeout) }
  })
  new Gauge({ name: 'broker_cluster_home_sessions', help: 'Persistent sessions at home on this node (the copy its client resumes from; replicas held for peers are broker_cluster_session_replicas)', registers: [registry], collect () { this.set(live.homeSessions()) } })
  const yieldedSeen = new Map<string, number>()
  new Counter({
    name: 'broker_storage_sessions_yielded_total',
    help: 'Sessions read from disk at start and deleted because a peer held a newer copy (taken over while this node was down, or connected since)',
    registers: [registry],
    collect () { follow(this, yieldedSeen, {}, live.diskCopiesYielded()) }
  })
  new Gauge({ name: 'broker_cluster_publishes_waiting_takeover', help: 'QoS 1/2 publishes for a dead node\'s sessions waiting (unacknowledged) for their takeover, the publishes kept for it being at cluster.dead_peer_buffer_bytes', registers: [registry], collect () { this.set(live.takeoverWaits().waiting) } })
  new Gauge({ name: 'broker_cluster_publishes_waiting_takeover_bytes', help: 'Bytes of the publishes counted in broker_cluster_publishes_waiting_takeover', registers: [registry], collect () { this.set(live.takeoverWaits().waitingBytes) } })
  const waitedSeen = new Map<string, number>()
  new Counter({ name: 'broker_cluster_publishes_waited_takeover_total', help: 'QoS 1/2 publishes that waited for the takeover of a dead node\'s sessions before a copy was kept (backpressure on their publishers)', registers: [registry], collect () { follow(this, waitedSeen, {}, live.takeoverWaits().waited) } })
  const refusedPublishesSeen = new Map<string, number>()
  new Counter({ name: 'broker_cluster_publishes_refused_total', help: 'QoS 1/2 publishes not acknowledged because no node kept a copy for the sessions they were for within cluster.ack_timeout (a dead node\'s, its takeover not done; MQTT 5: PUBACK 0x97, MQTT 3.1.1: connection closed)', registers: [registry], collect () { follow(this, refusedPublishesSeen, {}, live.takeoverWaits().refused) } })
  new Counter({ name: 'broker_cluster_orphan_wills_published_total', help: 'Wills of clients whose node died, published by this node as their replica holder', registers: [registry], collect () { follow(this, willsSeen, {}, live.sessions().willsPublished) } })
}
