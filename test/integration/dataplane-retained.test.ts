// Retained messages are the same on every node: last writer wins by hybrid
// logical clock, clears are tombstones, and a node that was away catches up
// by digest comparison when its links come back.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient, IPublishPacket } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'
import { startCluster, clusterConfig, waitForMesh } from '../helpers/dataplane-cluster.js'

let nodes: TestNode[] = []
const clients: MqttClient[] = []

// A short sync interval, so periodic anti-entropy runs within a test.
const extra = { cluster: { retained_sync_interval: 300 } }
before(async () => { nodes = await startCluster(3, extra) })
after(async () => {
  for (const cl of clients) await cl.endAsync(true).catch(() => {})
  await Promise.all(nodes.map(async (n) => await n.stop()))
})

async function client (node: TestNode, version: 4 | 5 = 4): Promise<MqttClient> {
  const cl = await connect(node.mqttUrl, { protocolVersion: version })
  clients.push(cl)
  return cl
}

/**
 * What a new subscriber to `filter` on `node` receives as retained. A live
 * publish to `${root}/zz-end` after the SUBACK marks the end: aedes sends the
 * retained messages before it, so anything missing then is not retained.
 */
async function retainedOn (node: TestNode, root: string, version: 4 | 5 = 4): Promise<IPublishPacket[]> {
  const cl = await client(node, version)
  const got: IPublishPacket[] = []
  cl.on('message', (_t, _p, packet) => got.push(packet))
  await cl.subscribeAsync(`${root}/#`, { qos: 1 })
  await cl.publishAsync(`${root}/zz-end`, 'end', { qos: 1 })
  await waitFor(() => got.some((p) => p.topic === `${root}/zz-end`), { message: 'end marker' })
  await cl.endAsync(true)
  return got.filter((p) => p.retain)
}

function sameDigests (ns: TestNode[]): boolean {
  const first = ns[0]!.node.dataPlane.retained.digest()
  return ns.every((n) => n.node.dataPlane.retained.digest().equals(first))
}

const view = (ps: IPublishPacket[]): Array<[string, string]> => ps.map((p): [string, string] => [p.topic, p.payload.toString()]).sort((a, b) => a[0].localeCompare(b[0]))

test('a retained message published on one node is served by every node, with its properties; a clear clears it everywhere', async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
  const root = uniqueId('ret')
  const pub = await client(a, 5)
  await pub.publishAsync(`${root}/one`, 'v1', { qos: 1, retain: true, properties: { contentType: 'text/plain', userProperties: { k: 'v' } } })
  await pub.publishAsync(`${root}/two`, 'v2', { qos: 0, retain: true })
  await waitFor(() => nodes.every((n) => n.node.dataPlane.retained.get(`${root}/two`) !== undefined), { message: 'replicated everywhere' })
  for (const n of [b, c]) {
    const got = await retainedOn(n, root, 5)
    assert.deepEqual(view(got), [[`${root}/one`, 'v1'], [`${root}/two`, 'v2']])
    const one = got.find((p) => p.topic === `${root}/one`)!
    assert.equal(one.properties?.contentType, 'text/plain')
    assert.deepEqual({ ...one.properties?.userProperties }, { k: 'v' })
  }
  // Cleared on another node than the one that wrote it.
  const clearer = await client(b)
  await clearer.publishAsync(`${root}/one`, '', { qos: 1, retain: true })
  await waitFor(() => nodes.every((n) => n.node.dataPlane.retained.get(`${root}/one`) === undefined), { message: 'clear replicated' })
  for (const n of [a, c]) assert.deepEqual(view(await retainedOn(n, root)), [[`${root}/two`, 'v2']])
  assert.ok(sameDigests(nodes))
})

test('a node that missed a clear while away does not bring the topic back', async () => {
  const [a, , c] = nodes as [TestNode, TestNode, TestNode]
  const root = uniqueId('tomb')
  const pub = await client(a)
  await pub.publishAsync(`${root}/t`, 'old', { qos: 1, retain: true })
  await waitFor(() => c.node.dataPlane.retained.get(`${root}/t`) !== undefined, { message: 'replicated to C' })
  // C's data plane goes away (its links drop) while it keeps its store.
  await c.node.dataPlane.stop()
  await pub.publishAsync(`${root}/t`, '', { qos: 1, retain: true })
  assert.equal(c.node.dataPlane.retained.get(`${root}/t`)?.payload.toString(), 'old', 'C missed the clear')
  await c.node.dataPlane.start()
  await waitForMesh(nodes)
  await waitFor(() => sameDigests(nodes), { message: 'digests converge' })
  for (const n of nodes) {
    assert.equal(n.node.dataPlane.retained.get(`${root}/t`), undefined, 'cleared everywhere')
    assert.deepEqual(view(await retainedOn(n, root)), [])
  }
})

test('a node stopped, the others written to, restarted: it converges by digest comparison', async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
  const root = uniqueId('restart')
  const pub = await client(a)
  await pub.publishAsync(`${root}/keep`, 'k', { qos: 1, retain: true })
  await pub.publishAsync(`${root}/gone`, 'g', { qos: 1, retain: true })
  await waitFor(() => c.node.dataPlane.retained.get(`${root}/gone`) !== undefined, { message: 'replicated to C' })
  const hosts = nodes.map((n) => n.host)
  await c.stop()
  const onB = await client(b)
  await onB.publishAsync(`${root}/new`, 'n', { qos: 1, retain: true })
  await onB.publishAsync(`${root}/keep`, 'k2', { qos: 1, retain: true })
  await onB.publishAsync(`${root}/gone`, '', { qos: 1, retain: true })
  const restarted = await startNode(clusterConfig(c.host, hosts, extra), c.host)
  nodes[2] = restarted
  await waitForMesh(nodes)
  await waitFor(() => sameDigests(nodes), { message: 'digests converge' })
  assert.ok(restarted.node.dataPlane.sync.stats.repaired > 0, 'the restarted node was repaired by sync')
  assert.deepEqual(view(await retainedOn(restarted, root)), [[`${root}/keep`, 'k2'], [`${root}/new`, 'n']])
  // The tombstone came along: the restarted node knows the topic was cleared.
  assert.equal(restarted.node.dataPlane.retained.getEntry(`${root}/gone`)?.payload.length, 0)
})

test('periodic digest comparison repairs a difference no link event announced', async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
  const topic = uniqueId('drift')
  // Written into C's store only, as if its replication message had been lost.
  const before = a.node.dataPlane.sync.stats.repaired + b.node.dataPlane.sync.stats.repaired
  c.node.dataPlane.retained.set(topic, { payload: Buffer.from('only-c'), qos: 0 })
  await waitFor(() => [a, b].every((n) => n.node.dataPlane.retained.get(topic)?.payload.toString() === 'only-c'), { message: 'A and B repaired by sync' })
  assert.ok(a.node.dataPlane.sync.stats.repaired + b.node.dataPlane.sync.stats.repaired > before)
  // And aedes on A serves it (the store and aedes' view move together).
  assert.deepEqual(view(await retainedOn(a, topic.split('/')[0]!)).filter(([t]) => t === topic), [[topic, 'only-c']])
})
