// Replicas on disk (storage.dir): a node keeps the replicas it holds for its
// peers, so a session survives the loss of its home's disk followed by the
// restart of its holder; and a replica read back whose home ended the
// session meanwhile does not bring it back (session-reconcile.ts,
// storage/replica-records.ts, docs/storage.md "Replicas").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { ProcessNode } from '../helpers/node.js'
import { startStoringCluster, type AfterHook, waitForView, FAST } from '../helpers/cluster.js'
import { connect, connectWithConnack, waitForCount, endAll, uniqueId, offlineSubscriber } from '../helpers/mqtt-clients.js'
import { metricSum } from '../helpers/metrics.js'
import { waitFor } from '../helpers/wait.js'

const SESSION = { clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 3600 } }

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
const metricOf = async (nodes: ProcessNode[], name: string): Promise<number[]> => await Promise.all(nodes.map(async (n) => await metricSum(n.apiUrl, name)))

/**
 * A persistent subscriber on node 0 with `queued` messages waiting (the last
 * one a probe: see below); resolves with the index of the node holding its
 * replica once that node committed the replica with every message.
 */
async function sessionWithReplica (t: AfterHook, nodes: ProcessNode[], subId: string, queued: string[]): Promise<number> {
  await offlineSubscriber(nodes[0]!.mqttUrl, subId, 'replicated/#')
  const pub = await connect(nodes[1]!.mqttUrl, { protocolVersion: 5 })
  t.after(async () => { await endAll(pub) })
  for (const p of queued.slice(0, -1)) await pub.publishAsync('replicated/x', p, { qos: 1 })
  const replicas = await waitFor(async () => {
    const r = await metricOf(nodes, 'broker_cluster_session_replicas')
    return sum(r) === 1 && r[0] === 0 ? r : undefined
  }, { message: 'one replica of the session, on a peer' })
  const holder = replicas.indexOf(1)
  // The holder's commits, once idle; the last message is acknowledged once
  // the holder has it (ack_after: replicated), and written by its next commit.
  const idle = await idleFlushes(nodes[holder]!)
  await pub.publishAsync('replicated/x', queued.at(-1)!, { qos: 1 })
  await waitFor(async () => await metricSum(nodes[holder]!.apiUrl, 'broker_storage_flushes_total') > idle, { message: 'the holder to commit the last message' })
  return holder
}

/** A node's commits so far, once no commit came between two reads (so the next one is of what happens after). */
async function idleFlushes (node: ProcessNode): Promise<number> {
  let last = -1
  return await waitFor(async () => {
    const n = await metricSum(node.apiUrl, 'broker_storage_flushes_total')
    const same = n === last
    last = n
    return same ? n : undefined
  }, { interval: 50, message: 'no commit under way' })
}

test('a home whose disk was wiped gets its session back from its replica holder\'s disk after a whole-cluster restart', async (t) => {
  const { nodes, dirs, start } = await startStoringCluster(t, { expected_members: 3, config: FAST })
  const subId = uniqueId('wiped')
  const queued = Array.from({ length: 5 }, (_, i) => `m-${i}`)
  const holder = await sessionWithReplica(t, nodes, subId, queued)

  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
  // The home's disk is lost: its store starts empty, with a new identity.
  for (const f of readdirSync(dirs[0]!)) rmSync(join(dirs[0]!, f), { recursive: true, force: true })
  await Promise.all([0, 1, 2].map(async (i) => await start(i)))
  await waitForView(nodes, nodes, 'alive', 20_000)
  assert.match(nodes[holder]!.output(), /"replicas":1/, 'the holder read the replica back from its disk')

  // The home comes back without the session: its holder takes it over from its disk.
  await waitFor(async () => sum(await metricOf(nodes, 'broker_cluster_home_sessions')) === 1, { timeout: 15_000, message: 'the session back, at home on one node' })
  assert.match(nodes[holder]!.output(), /replicas read from disk settled with their home: it came back without its state/)
  const { client, connack, got } = await connectWithConnack(nodes[0]!.mqttUrl, { clientId: subId, ...SESSION })
  t.after(async () => { await endAll(client) })
  assert.equal(connack.sessionPresent, true, 'session present')
  await waitForCount(got, queued.length, 'the queued messages', 10_000)
  await client.subscribeAsync('nothing/here', { qos: 0 })
  assert.deepEqual(got.map((m) => m.payload), queued, 'every queued message once, in order')
})

test('a replica read back from disk whose home ended the session while its holder was down does not bring it back after a whole-cluster restart', async (t) => {
  const { nodes, start } = await startStoringCluster(t, { expected_members: 3, config: FAST })
  const subId = uniqueId('ended')
  const holder = await sessionWithReplica(t, nodes, subId, ['m-0', 'm-1', 'm-2'])

  // The holder is down while the client ends its session on its home (Clean Start, no expiry).
  assert.equal(await nodes[holder]!.stop('SIGKILL'), 'SIGKILL')
  const homeFlushes = await idleFlushes(nodes[0]!)
  const ending = await connect(nodes[0]!.mqttUrl, { clientId: subId, clean: true, protocolVersion: 5 })
  await endAll(ending)
  await waitFor(async () => await metricSum(nodes[0]!.apiUrl, 'broker_cluster_home_sessions') === 0, { message: 'the session ended on its home' })
  // Its end on the home's disk (nothing waits for it: a crash right after a clean start can bring the session back).
  await waitFor(async () => await metricSum(nodes[0]!.apiUrl, 'broker_storage_flushes_total') > homeFlushes, { message: 'the home to commit the end' })

  // Then every node goes down and comes back (a power cut): nothing but the
  // disks remembers; the home's says the session ended, the holder's has
  // the replica from before.
  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
  await Promise.all([0, 1, 2].map(async (i) => await start(i)))
  await waitForView(nodes, nodes, 'alive', 20_000)
  assert.match(nodes[holder]!.output(), /"replicas":1/, 'the holder read the stale replica back from its disk')
  // Its home kept its disk, and no longer holds the session: the replica goes.
  await waitFor(async () => await metricSum(nodes[holder]!.apiUrl, 'broker_cluster_session_replicas') === 0, { timeout: 15_000, message: 'the stale replica dropped' })
  assert.match(nodes[holder]!.output(), /replicas read from disk settled with their home: it kept its state/)
  assert.deepEqual(await metricOf(nodes, 'broker_cluster_home_sessions'), [0, 0, 0], 'no copy of the ended session anywhere')

  // The client resuming anywhere (the holder included) finds no session.
  const { client, connack } = await connectWithConnack(nodes[holder]!.mqttUrl, { clientId: subId, ...SESSION })
  t.after(async () => { await endAll(client) })
  assert.equal(connack.sessionPresent, false, 'the ended session did not come back')
})
