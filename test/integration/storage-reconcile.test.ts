// A node with storage killed alone and started again reads its sessions
// back from disk while its peers took them over (promotion): once linked,
// the disk copies that a peer holds a newer copy of are deleted, so one
// copy of each session is left in the cluster before its client comes back
// (session-reconcile.ts, docs/storage.md "On restart").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import type { ProcessNode } from '../helpers/node.js'
import { startStoringCluster, type AfterHook, waitForView, memberEvents, nameOf, FAST } from '../helpers/cluster.js'
import { connect, connectWithConnack, waitForCount, endAll, uniqueId, offlineSubscriber } from '../helpers/mqtt-clients.js'
import { metricSum } from '../helpers/metrics.js'
import { waitFor } from '../helpers/wait.js'


async function publishAll (client: MqttClient, topic: string, payloads: string[]): Promise<void> {
  for (const p of payloads) await client.publishAsync(topic, p, { qos: 1 })
}

/** Home copies of persistent sessions, per node (broker_cluster_home_sessions). */
async function homeSessions (nodes: ProcessNode[]): Promise<number[]> {
  return await Promise.all(nodes.map(async (n) => await metricSum(n.apiUrl, 'broker_cluster_home_sessions')))
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

/**
 * The scenario of both tests: a persistent subscriber on node 0, offline;
 * node 0 SIGKILLed; `whileDown` (its peers promote the replica); messages
 * published; node 0 started again. Returns what was published, and where
 * the session's one copy is once reconciled.
 */
async function killRestart (t: AfterHook, membership: Record<string, number>, whileDown: ((nodes: ProcessNode[]) => Promise<void>) | 'restart at once'): Promise<{ nodes: ProcessNode[], subId: string, sent: string[], holder: number }> {
  const { nodes, start: restart } = await startStoringCluster(t, { config: membership })
  const subId = uniqueId('reconcile')
  await offlineSubscriber(nodes[0]!.mqttUrl, subId, 'alerts/#')
  const pub = await connect(nodes[1]!.mqttUrl, { protocolVersion: 5 })
  t.after(async () => { await endAll(pub) })
  const before = Array.from({ length: 5 }, (_, i) => `before-${i}`)
  await publishAll(pub, 'alerts/x', before)

  assert.equal(await nodes[0]!.stop('SIGKILL'), 'SIGKILL')
  const during = Array.from({ length: 10 }, (_, i) => `during-${i}`)
  if (whileDown === 'restart at once') {
    // Published while the node is down and not declared dead: their
    // acknowledgements wait for it (or for its restart to be seen).
    const acks = during.map(async (p) => await pub.publishAsync('alerts/x', p, { qos: 1 }))
    await restart(0)
    await Promise.all(acks)
  } else {
    await whileDown(nodes)
    await publishAll(pub, 'alerts/x', during)
    await restart(0)
  }
  await waitForView(nodes, nodes, 'alive', 20_000)
  // Taken over by one peer: on the death, or on seeing the new process at link-up.
  await waitFor(async () => {
    const promoted = await Promise.all(nodes.slice(1).map(async (n) => await metricSum(n.apiUrl, 'broker_cluster_sessions_promoted_total')))
    return sum(promoted) === 1
  }, { timeout: 15_000, message: 'a peer to take the session over' })

  // The restarted node read its copy back from disk (the log says so) ...
  assert.match(nodes[0]!.output(), /"storage loaded".*"sessions":1|"sessions":1.*"storage loaded"/, 'the restarted node loaded the session from disk')
  // ... and drops it: one copy in the cluster, before the client comes back.
  const counts = await waitFor(async () => {
    const c = await homeSessions(nodes)
    return sum(c) === 1 ? c : undefined
  }, { timeout: 15_000, message: 'one home copy of the session in the cluster' })
  assert.equal(counts[0], 0, 'the disk copy went, the promoted copy stays')
  // Counted once its deletion is on disk (sync always), a moment after the copy left the store.
  await waitFor(async () => await metricSum(nodes[0]!.apiUrl, 'broker_storage_sessions_yielded_total') === 1, { message: 'the disk copy counted as yielded' })
  // Published after the reconciliation: queued once, on the copy left.
  const after = Array.from({ length: 5 }, (_, i) => `after-${i}`)
  await publishAll(pub, 'alerts/x', after)
  assert.deepEqual(await homeSessions(nodes), counts, 'still one copy')
  const queued = await Promise.all(nodes.map(async (n) => await metricSum(n.apiUrl, 'broker_queued_messages')))
  const all = [...before, ...during, ...after]
  assert.equal(sum(queued), all.length, `each message queued once in the cluster (queued per node: ${queued.join(', ')})`)
  return { nodes, subId, sent: all, holder: counts.indexOf(1) }
}

async function resume (t: AfterHook, node: ProcessNode, subId: string, sent: string[]): Promise<void> {
  const { client, connack, got } = await connectWithConnack(node.mqttUrl, { clientId: subId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } })
  t.after(async () => { await endAll(client) })
  assert.equal(connack.sessionPresent, true, 'session present')
  await waitForCount(got, sent.length, 'every message', 10_000)
  // Anything extra would have come with the rest; one more round trip to be sure.
  await client.subscribeAsync('nothing/here', { qos: 0 })
  assert.deepEqual(got.map((m) => m.payload), sent, 'every message once, in order')
}

/** Waits until a peer of node 0 took its session over (declared it dead). */
async function promotedOnAPeer (nodes: ProcessNode[]): Promise<void> {
  await waitFor(async () => sum(await homeSessions(nodes.slice(1))) === 1, { timeout: 15_000, message: 'a peer to take the session over' })
}

test('a node killed and restarted after its peers took its session over drops its disk copy; the client resumes there', async (t) => {
  const { nodes, subId, sent } = await killRestart(t, FAST, promotedOnAPeer)
  await resume(t, nodes[0]!, subId, sent)
  assert.deepEqual(await homeSessions(nodes), [1, 0, 0], 'the session moved to where its client is')
})

test('a node killed and restarted after its peers took its session over drops its disk copy; the client resumes on a third node', async (t) => {
  const { nodes, subId, sent, holder } = await killRestart(t, FAST, promotedOnAPeer)
  const third = holder === 1 ? 2 : 1
  await resume(t, nodes[third]!, subId, sent)
  const counts = await homeSessions(nodes)
  assert.equal(counts[third], 1)
  assert.equal(sum(counts), 1, 'one copy, where its client is')
})

test('a node restarted before its peers declared it dead: the restart is seen at link-up, one copy is left, nothing delivered twice', async (t) => {
  // Slow failure detection: the process is back well before it could be declared dead.
  const SLOW = { ...FAST, probe_interval: 1000, probe_timeout: 500, suspicion_mult: 10 }
  const { nodes, subId, sent } = await killRestart(t, SLOW, 'restart at once')
  for (const n of nodes.slice(1)) {
    assert.ok(!memberEvents(n).some((e) => e.member === nameOf(nodes[0]!) && e.state === 'dead'), `${nameOf(n)} never declared the node dead`)
  }
  await resume(t, nodes[0]!, subId, sent)
})
