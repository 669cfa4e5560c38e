import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { registerDataPlaneMetrics } from '../../../../src/server/cluster/dataplane/metrics.js'
import type { LinkStats } from '../../../../src/server/cluster/dataplane/peer-link.js'

function stats (over: Partial<LinkStats>): LinkStats {
  return {
    state: 'up', messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0, retransmitted: 0, duplicates: 0, shed: 0,
    backpressured: 0, writes: 0, frames: 0, queueDepth: 0, bufferedBytes: 0, connects: 1, protocolErrors: {}, ...over
  }
}

async function value (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name)
  const v = (metric?.values as Array<{ value: number, labels: Record<string, string> }> | undefined)?.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v?.value
}

test('data-plane metrics are read from the components at scrape time', async () => {
  const registry = new Registry()
  let links: Array<[string, LinkStats]> = [['b', stats({ messagesSent: 10, shed: 2, queueDepth: 5, protocolErrors: { auth: 1 } })], ['c', stats({ state: 'backoff', messagesSent: 3 })]]
  const sync = { rounds: 4, repaired: 9, sent: 0, rejected: 0 }
  registerDataPlaneMetrics(registry, {
    links: () => links,
    refused: () => ({ auth: 2 }),
    routes: () => 42,
    retained: () => ({ count: 7, bytes: 700, tombstones: 1, refused: 3, future: 2 }),
    sync: () => sync,
    sessions: () => ({ replicasHeld: 3, replicaQueued: 11, replicatedSessions: 2, opsSent: 40, opsApplied: 30, opsIgnored: 1, promoted: 3, willsPublished: 1, rescued: 4 }),
    acks: () => ({ 'peer-gone': 2, timeout: 1 }),
    moves: () => ({ barriers: 5, timeout: 1 }),
    fetchRefusals: () => 6,
    subscribesUnconfirmed: () => 8,
    homeSessions: () => 2,
    diskCopiesYielded: () => 1,
    deaths: () => ({ doubted: 4, confirmed: 1 }),
    takeoverWaits: () => ({ waiting: 3, waitingBytes: 3000, waited: 8, refused: 1 })
  })
  assert.equal(await value(registry, 'broker_cluster_link_messages_sent_total', { peer: 'b' }), 10)
  assert.equal(await value(registry, 'broker_cluster_link_shed_total', { peer: 'b' }), 2)
  assert.equal(await value(registry, 'broker_cluster_link_queue_depth', { peer: 'b' }), 5)
  assert.equal(await value(registry, 'broker_cluster_link_up', { peer: 'b' }), 1)
  assert.equal(await value(registry, 'broker_cluster_link_up', { peer: 'c' }), 0)
  assert.equal(await value(registry, 'broker_cluster_link_protocol_errors_total', { peer: 'b', reason: 'auth' }), 1)
  assert.equal(await value(registry, 'broker_cluster_link_refused_total', { reason: 'auth' }), 2)
  assert.equal(await value(registry, 'broker_cluster_deaths_doubted_total', { outcome: 'declared' }), 4)
  assert.equal(await value(registry, 'broker_cluster_deaths_doubted_total', { outcome: 'confirmed' }), 1)
  assert.equal(await value(registry, 'broker_cluster_routes'), 42)
  assert.equal(await value(registry, 'broker_cluster_home_sessions'), 2)
  assert.equal(await value(registry, 'broker_storage_sessions_yielded_total'), 1)
  assert.equal(await value(registry, 'broker_cluster_acks_unreplicated_total', { reason: 'peer-gone' }), 2)
  assert.equal(await value(registry, 'broker_cluster_acks_unreplicated_total', { reason: 'timeout' }), 1)
  assert.equal(await value(registry, 'broker_cluster_moves_settled_total', { by: 'timeout' }), 1)
  assert.equal(await value(registry, 'broker_cluster_subscribes_unconfirmed_total'), 8)
  assert.equal(await value(registry, 'broker_cluster_session_fetch_refusals_total'), 6)
  assert.equal(await value(registry, 'broker_retained_messages'), 7)
  assert.equal(await value(registry, 'broker_retained_refused_total'), 3)
  assert.equal(await value(registry, 'broker_retained_sync_repaired_total'), 9)
  assert.equal(await value(registry, 'broker_cluster_session_replicas'), 3)
  assert.equal(await value(registry, 'broker_cluster_session_replica_queued_messages'), 11)
  assert.equal(await value(registry, 'broker_cluster_session_replica_ops_total', { direction: 'applied' }), 30)
  assert.equal(await value(registry, 'broker_cluster_sessions_promoted_total'), 3)
  assert.equal(await value(registry, 'broker_cluster_orphan_wills_published_total'), 1)
  assert.equal(await value(registry, 'broker_cluster_publishes_waiting_takeover'), 3)
  assert.equal(await value(registry, 'broker_cluster_publishes_waiting_takeover_bytes'), 3000)
  assert.equal(await value(registry, 'broker_cluster_publishes_waited_takeover_total'), 8)
  assert.equal(await value(registry, 'broker_cluster_publishes_refused_total'), 1)
  // A link replaced by a new one (its counters start again) keeps the metric monotonic; a gone peer leaves the gauges.
  links = [['b', stats({ messagesSent: 4 })]]
  sync.repaired = 12
  assert.equal(await value(registry, 'broker_cluster_link_messages_sent_total', { peer: 'b' }), 14)
  assert.equal(await value(registry, 'broker_cluster_link_up', { peer: 'c' }), undefined)
  assert.equal(await value(registry, 'broker_retained_sync_repaired_total'), 12)
})
