// Session survival: a session's home node is killed with SIGKILL (no
// handoff), and its client gets its session back on a surviving node, from
// the replica a second node kept. Three `broker-ha serve` processes per test,
// encrypted links, mqtt.js v3.1.1 and v5; everything observed through MQTT
// and the HTTP API (/metrics).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ProcessNode } from '../helpers/node.js'
import { keyedClusterPerTest } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'
import { metricSum } from '../helpers/metrics.js'
import { connect, connectWithConnack, collect, uniqueId, waitForCount } from '../helpers/mqtt-clients.js'

const { start, clients } = keyedClusterPerTest()

async function cluster (): Promise<[ProcessNode, ProcessNode, ProcessNode]> {
  return await start(3) as [ProcessNode, ProcessNode, ProcessNode]
}


/** The one of `candidates` holding a replica, once the home node sent it there with `queued` messages. */
async function replicaHolder (candidates: ProcessNode[], queued: number): Promise<ProcessNode> {
  let holder: ProcessNode | undefined
  await waitFor(async () => {
    const held = await Promise.all(candidates.map(async (n) => [await metricSum(n.apiUrl, 'broker_cluster_session_replicas'), await metricSum(n.apiUrl, 'broker_cluster_session_replica_queued_messages')]))
    const i = held.findIndex(([replicas, q]) => replicas === 1 && q === queued)
    if (i >= 0 && held.filter(([replicas]) => (replicas ?? 0) > 0).length === 1) holder = candidates[i]
    return holder !== undefined
  }, { timeout: 10_000, message: `one node holding a replica with ${queued} queued messages` })
  return holder!
}

test('v3.1.1: an offline session with queued QoS 1 messages survives the SIGKILL of its node, with what was published to it after the kill; the client reconnects elsewhere at once', async () => {
  const [a, b, c] = await cluster()
  const id = uniqueId('survive4')
  const topic = `survival/${id}`
  const first = await connect(a.mqttUrl, { clientId: id, clean: false, protocolVersion: 4, reconnectPeriod: 0 })
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  const pub = await connect(a.mqttUrl, { reconnectPeriod: 0 })
  clients.push(pub)
  for (let i = 0; i < 3; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
  const holder = await replicaHolder([b, c], 3)
  const other = holder === b ? c : b

  const pubHolder = await connect(holder.mqttUrl, { reconnectPeriod: 0 })
  const pubOther = await connect(other.mqttUrl, { reconnectPeriod: 0 })
  clients.push(pubHolder, pubOther)

  await a.stop('SIGKILL')
  // Published after the kill, routed to the dead home: their acknowledgement
  // waits until a second node holds them (cluster.ack_after: replicated),
  // which is when the death is declared and they are rescued for the session.
  await pubHolder.publishAsync(topic, 'late-from-holder', { qos: 1 })
  await pubOther.publishAsync(topic, 'late-from-other', { qos: 1 })
  // The holder promoted the replica (or is about to): the node asked fetches it from there.
  const { client: back, connack, got } = await connectWithConnack(other.mqttUrl, { clientId: id, clean: false, protocolVersion: 4, reconnectPeriod: 0 })
  clients.push(back)
  assert.equal(connack.sessionPresent, true, 'session present after its node was killed')
  await waitForCount(got, 5, 'the three queued messages and the two published after the kill')
  // Per publisher in order; the rescued ones may interleave with the replayed queue (other publishers).
  assert.deepEqual(got.map((m) => m.payload).filter((p) => p.startsWith('m')), ['m0', 'm1', 'm2'])
  assert.deepEqual(got.map((m) => m.payload).filter((p) => p.startsWith('late')).sort(), ['late-from-holder', 'late-from-other'])
  // One home: the session lives on `other` (which replicates it onward); the holder's copy went.
  await waitFor(async () => await metricSum(holder.apiUrl, 'broker_cluster_session_replicas') === 1 && await metricSum(other.apiUrl, 'broker_cluster_replicated_sessions') === 1 &&
    await metricSum(holder.apiUrl, 'broker_cluster_replicated_sessions') === 0,
  { timeout: 10_000, message: 'the session at home on the node it reconnected to, replicated to the other survivor' })
  assert.equal(got.length, 5, 'no message twice')
})

test('v5: the replica holder takes over the sessions of a killed node, publishes the will of its connected client, and queues for the session until it returns', async () => {
  const [a, b, c] = await cluster()
  const id = uniqueId('survive5')
  const topic = `survival/${id}`
  const willTopic = `wills/${id}`
  const sub = await connect(a.mqttUrl, {
    clientId: id,
    clean: false,
    protocolVersion: 5,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 300 },
    will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 0 } }
  })
  clients.push(sub)
  await sub.subscribeAsync(topic, { qos: 1 })
  const holder = await replicaHolder([b, c], 0)
  const other = holder === b ? c : b
  const watcher = await connect(other.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0 })
  clients.push(watcher)
  const wills = collect(watcher)
  await watcher.subscribeAsync(willTopic, { qos: 1 })
  // The watcher's route reached the holder once a probe published there arrives.
  const prober = await connect(holder.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0 })
  clients.push(prober)
  await waitFor(async () => {
    await prober.publishAsync(willTopic, 'probe', { qos: 0 })
    return wills.some((w) => w.payload === 'probe')
  }, { timeout: 5000, interval: 200, message: 'the watcher routed from the holder' })

  await a.stop('SIGKILL')
  await waitFor(async () => await metricSum(holder.apiUrl, 'broker_cluster_sessions_promoted_total') === 1, { timeout: 15_000, message: 'the holder took the session over' })
  await waitFor(() => wills.some((w) => w.payload === 'gone'), { timeout: 5000, message: 'the will of the client of the killed node' })
  assert.equal(await metricSum(holder.apiUrl, 'broker_cluster_orphan_wills_published_total'), 1)
  // Published while the client is away: queued for it on the holder, its new home.
  for (let i = 0; i < 2; i++) await prober.publishAsync(topic, `after${i}`, { qos: 1 })

  const { client: back, connack, got } = await connectWithConnack(other.mqttUrl, { clientId: id, clean: false, protocolVersion: 5, reconnectPeriod: 0, properties: { sessionExpiryInterval: 300 } })
  clients.push(back)
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 2, 'the messages queued while it was away')
  assert.deepEqual(got.map((m) => m.payload), ['after0', 'after1'])
  // Its subscription came along: a new publish anywhere reaches it.
  await prober.publishAsync(topic, 'live', { qos: 1 })
  await waitForCount(got, 3, 'a live message')
  assert.equal(wills.filter((w) => w.payload === 'gone').length, 1, 'the will once')
})
