// One connection per client id in the whole cluster: connecting on another
// node closes the older connection (MQTT 5: DISCONNECT 0x8E, session taken
// over), for v5 and v3.1.1 clients alike; the newer connection stays.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient, IDisconnectPacket } from 'mqtt'
import type { TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'
import { startCluster } from '../helpers/dataplane-cluster.js'

let a: TestNode, b: TestNode, c: TestNode
const clients: MqttClient[] = []

before(async () => { [a, b, c] = await startCluster(3) as [TestNode, TestNode, TestNode] })
after(async () => {
  for (const cl of clients) await cl.endAsync(true).catch(() => {})
  await Promise.all([a, b, c].filter((n) => n !== undefined).map(async (n) => await n.stop()))
})

const connectedOn = (n: TestNode, id: string): boolean => {
  const cl = (n.node.mqtt.aedes as unknown as { clients: Record<string, { closed: boolean } | undefined> }).clients[id]
  return cl !== undefined && !cl.closed
}

test('a v5 client id connecting on another node takes the session over: the old connection gets DISCONNECT 0x8E', async () => {
  const id = uniqueId('takeover5')
  const first = await connect(a.mqttUrl, { clientId: id, protocolVersion: 5 })
  clients.push(first)
  const disconnects: IDisconnectPacket[] = []
  first.on('disconnect', (p) => disconnects.push(p))
  let firstClosed = false
  first.on('close', () => { firstClosed = true })
  const second = await connect(b.mqttUrl, { clientId: id, protocolVersion: 5 })
  clients.push(second)
  await waitFor(() => firstClosed, { message: 'the older connection closed' })
  assert.equal(disconnects[0]?.reasonCode, 0x8E)
  assert.equal(connectedOn(a, id), false)
  assert.equal(connectedOn(b, id), true)
  assert.equal(second.connected, true)
  // The newer connection still works across the cluster.
  const got: string[] = []
  second.on('message', (_t, p) => got.push(p.toString()))
  await second.subscribeAsync(id, { qos: 1 })
  await waitFor(() => c.node.dataPlane.routing.peersFor(id).length > 0, { message: 'route to B' })
  const pub = await connect(c.mqttUrl)
  clients.push(pub)
  await pub.publishAsync(id, 'still here', { qos: 1 })
  await waitFor(() => got.length > 0, { message: 'delivery to the new connection' })
  assert.equal(second.connected, true)
})

test('a v3.1.1 client id connecting on a third node closes the older connection', async () => {
  const id = uniqueId('takeover4')
  const first = await connect(b.mqttUrl, { clientId: id, protocolVersion: 4 })
  clients.push(first)
  let firstClosed = false
  first.on('close', () => { firstClosed = true })
  const second = await connect(c.mqttUrl, { clientId: id, protocolVersion: 4 })
  clients.push(second)
  await waitFor(() => firstClosed, { message: 'the older connection closed' })
  assert.equal(connectedOn(b, id), false)
  assert.equal(connectedOn(c, id), true)
})

test('a client back on another node within its Will Delay Interval: no will from the node it left', async () => {
  const id = uniqueId('willback')
  const willTopic = `wb/${id}`
  const watcher = await connect(c.mqttUrl, { protocolVersion: 5 })
  clients.push(watcher)
  const wills: string[] = []
  watcher.on('message', (_t, p) => wills.push(p.toString()))
  await watcher.subscribeAsync(willTopic, { qos: 1 })
  await waitFor(() => a.node.dataPlane.routing.peersFor(willTopic).length > 0, { message: 'route from A to the watcher' })
  const options = {
    clientId: id,
    protocolVersion: 5 as const,
    properties: { sessionExpiryInterval: 30 },
    will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1 as const, retain: false, properties: { willDelayInterval: 2 } }
  }
  const first = await connect(a.mqttUrl, options)
  // Dropped without DISCONNECT: A holds the will for 2 s.
  first.stream.destroy()
  await first.endAsync(true).catch(() => {})
  const delayed = (a.node.mqtt.aedes as unknown as { delayedWills: Map<string, unknown> }).delayedWills
  await waitFor(() => delayed.has(id), { message: 'A to notice the drop' })
  const back = await connect(b.mqttUrl, { ...options, clean: false })
  clients.push(back)
  await waitFor(() => !delayed.has(id), { message: "A to cancel the will: its client is back on B" })
  // A marker after the will's due time proves none came.
  const dueAt = Date.now() + 2500
  await waitFor(() => Date.now() > dueAt, { message: 'the will delay to pass' })
  await back.publishAsync(willTopic, 'marker', { qos: 1 })
  await waitFor(() => wills.includes('marker'), { message: 'the marker' })
  assert.deepEqual(wills, ['marker'])
})
