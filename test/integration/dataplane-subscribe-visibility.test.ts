// A SUBACK means what it means on one broker: from then on, a message
// published on any node reaches the subscription. The SUBACK of a new filter
// waits until every peer linked at the time has its route (tests elsewhere
// wait for routes; this one must not). Three in-process nodes.
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

async function client (node: TestNode, version: 4 | 5, options: Record<string, unknown> = {}): Promise<MqttClient> {
  const cl = await connect(node.mqttUrl, { protocolVersion: version, ...options })
  clients.push(cl)
  return cl
}

test('at SUBACK every peer routes the new filter, and a publish on another node sent right after it arrives', async () => {
  const root = uniqueId('visible')
  const subscriber = await client(a, 5)
  const publisherB = await client(b, 4)
  const publisherC = await client(c, 5)
  const got: string[] = []
  subscriber.on('message', (_t, payload) => got.push(payload.toString()))
  const notRouted: string[] = []
  const sent: string[] = []
  for (let i = 0; i < 20; i++) {
    const filter = i % 2 === 0 ? `${root}/${i}/#` : `${root}/${i}/+/x`
    const topic = `${root}/${i}/t/x`
    await subscriber.subscribeAsync(filter, { qos: 1 })
    // Checked in the turn the SUBACK arrived in, before anything else could run.
    for (const peer of [b, c]) if (!peer.node.dataPlane.routing.peersFor(topic).includes(nameOf(a))) notRouted.push(`${filter} on ${nameOf(peer)}`)
    const pub = i % 2 === 0 ? publisherB : publisherC
    await pub.publishAsync(topic, `m${i}`, { qos: 1 })
    sent.push(`m${i}`)
  }
  assert.deepEqual(notRouted, [], 'filters a peer did not route when the SUBACK came')
  await waitFor(() => got.length >= sent.length, { message: `${sent.length} messages (have ${got.length})` })
  assert.deepEqual([...got].sort(), [...sent].sort())
})
