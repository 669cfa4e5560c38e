// Shared subscriptions across the cluster: a message for $share/g/f reaches
// exactly one member of group g in the whole cluster (not one per node, the
// original broker's issue #9), spread over the nodes by member count; every
// group gets its own copy.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import type { TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'
import { startCluster, nameOf } from '../helpers/dataplane-cluster.js'

let a: TestNode, b: TestNode, c: TestNode
const clients: MqttClient[] = []

before(async () => { [a, b, c] = await startCluster(3) as [TestNode, TestNode, TestNode] })
after(async () => {
  for (const cl of clients) await cl.endAsync(true).catch(() => {})
  await Promise.all([a, b, c].filter((n) => n !== undefined).map(async (n) => await n.stop()))
})

test('each message goes to one member of each group cluster-wide, members on every node taking their share', async () => {
  const base = uniqueId('jobs')
  const g = `$share/workers/${base}/+`
  const h = `$share/audit/${base}/#`
  const got = new Map<string, string[]>()
  const member = async (node: TestNode, version: 4 | 5, filter: string, label: string): Promise<void> => {
    const cl = await connect(node.mqttUrl, { protocolVersion: version })
    clients.push(cl)
    got.set(label, [])
    cl.on('message', (_t, payload) => got.get(label)!.push(payload.toString()))
    await cl.subscribeAsync(filter, { qos: 1 })
  }
  await member(a, 5, g, 'a1')
  await member(b, 5, g, 'b1')
  await member(b, 4, g, 'b2')
  await member(c, 4, g, 'c1')
  await member(c, 5, h, 'audit')
  await waitFor(() => a.node.dataPlane.routing.peerCount(nameOf(b), g) === 2 &&
    a.node.dataPlane.routing.peerCount(nameOf(c), g) === 1 &&
    a.node.dataPlane.routing.peerCount(nameOf(c), h) === 1, { message: 'A knows the groups on B and C' })

  const pub = await connect(a.mqttUrl, { protocolVersion: 4 })
  clients.push(pub)
  const n = 40
  for (let i = 0; i < n; i++) await pub.publishAsync(`${base}/job`, String(i), { qos: 1 })
  const workers = ['a1', 'b1', 'b2', 'c1']
  const total = (): number => workers.reduce((s, w) => s + got.get(w)!.length, 0)
  await waitFor(() => total() >= n && got.get('audit')!.length >= n, { message: 'every message delivered' })
  // A last one, so a duplicate in flight would have arrived before it.
  await pub.publishAsync(`${base}/job`, 'last', { qos: 1 })
  await waitFor(() => total() >= n + 1 && got.get('audit')!.length >= n + 1, { message: 'the last message' })

  const all = workers.flatMap((w) => got.get(w)!)
  assert.equal(all.length, n + 1, 'no message delivered twice in the group')
  assert.deepEqual(new Set(all), new Set([...Array.from({ length: n }, (_, i) => String(i)), 'last']))
  assert.deepEqual(got.get('audit'), [...Array.from({ length: n }, (_, i) => String(i)), 'last'])
  // Weighted by members: A 1, B 2, C 1 (a round robin, so exact over 40).
  const perNode = { a: got.get('a1')!.length, b: got.get('b1')!.length + got.get('b2')!.length, c: got.get('c1')!.length }
  assert.ok(perNode.a >= 9 && perNode.a <= 12 && perNode.b >= 19 && perNode.b <= 22 && perNode.c >= 9 && perNode.c <= 12, JSON.stringify(perNode))
  assert.ok(got.get('b1')!.length > 0 && got.get('b2')!.length > 0, 'both members on B take turns')
})
