// What else moves with a persistent session: a session whose only
// subscriptions are shared ones, the client's own QoS 2 publish awaiting its
// PUBREL, and queued messages' Message Expiry Interval, which counts the time
// spent queued and in transit. Three in-process nodes, mqtt.js v5 and raw MQTT.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient, Packet } from 'mqtt'
import type { TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, connectWithConnack, uniqueId, waitForCount, RawClient } from '../helpers/mqtt-clients.js'
import { startCluster, nameOf, waitForRoute } from '../helpers/dataplane-cluster.js'

let a: TestNode, b: TestNode, c: TestNode
const clients: MqttClient[] = []
const raws: RawClient[] = []

before(async () => { [a, b, c] = await startCluster(3) as [TestNode, TestNode, TestNode] })
after(async () => {
  for (const cl of clients) await cl.endAsync(true).catch(() => {})
  for (const r of raws) r.destroy()
  await Promise.all([a, b, c].filter((n) => n !== undefined).map(async (n) => await n.stop()))
})

const hostPort = (n: TestNode): [string, number] => {
  const u = new URL(n.mqttUrl)
  return [u.hostname, Number(u.port)]
}
const gone = async (n: TestNode, id: string): Promise<void> => {
  await waitFor(() => (n.node.mqtt.aedes as unknown as { clients: Record<string, unknown> }).clients[id] === undefined, { message: `${nameOf(n)} to notice ${id} left` })
}

test('a session whose only subscription is shared moves to the node its client reconnects to, and keeps getting its share', async () => {
  const id = uniqueId('shared-only')
  const topic = `jobs/${id}`
  const opts = { clientId: id, clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } }
  const first = await connect(a.mqttUrl, opts)
  await first.subscribeAsync(`$share/workers/${topic}`, { qos: 1 })
  await first.endAsync()
  await gone(a, id)

  const { client: again, connack, got } = await connectWithConnack(b.mqttUrl, opts)
  clients.push(again)
  assert.equal(connack.sessionPresent, true, 'the shared-only session came along')
  await waitFor(() => c.node.dataPlane.routing.peerCount(nameOf(b), `$share/workers/${topic}`) > 0, { message: 'C routes the group to B' })
  const pub = await connect(c.mqttUrl, { protocolVersion: 5 })
  clients.push(pub)
  for (let i = 0; i < 5; i++) await pub.publishAsync(topic, `job${i}`, { qos: 1 })
  await waitForCount(got, 5, 'every job: the only member of its group')
  assert.deepEqual(got.map((m) => m.payload), ['job0', 'job1', 'job2', 'job3', 'job4'])
  assert.equal(a.node.mqtt.persistence.hasSession(id), false, 'no copy left behind')
})

test('a client\'s own QoS 2 publish awaiting its PUBREL moves with its session: released on the new node, delivered once', async () => {
  const id = uniqueId('incoming-qos2')
  const topic = `incoming/${id}`
  const watcher = await connect(c.mqttUrl, { protocolVersion: 5 })
  clients.push(watcher)
  const seen: string[] = []
  watcher.on('message', (_t, payload) => seen.push(payload.toString()))
  await watcher.subscribeAsync(topic, { qos: 2 })
  await waitForRoute(a, c, topic)
  await waitForRoute(b, c, topic)

  const [ha, pa] = hostPort(a)
  const pub = await RawClient.open(ha, pa)
  raws.push(pub)
  await pub.connect(id, 4, { clean: false })
  pub.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 7, dup: false, retain: false })
  const pubrec = await pub.waitFor('pubrec') as Packet & { messageId: number }
  assert.equal(pubrec.messageId, 7)
  await waitFor(() => seen.length >= 1, { message: 'the message published' })
  // Gone before its PUBREL: the broker holds packet id 7 for the session.
  pub.destroy()
  await gone(a, id)

  const [hb, pb] = hostPort(b)
  const again = await RawClient.open(hb, pb)
  raws.push(again)
  const connack = await again.connect(id, 4, { clean: false }) as Packet & { sessionPresent: boolean }
  assert.equal(connack.sessionPresent, true)
  // As a client must after a reconnect: the PUBLISH again (DUP), then the PUBREL.
  again.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 7, dup: true, retain: false })
  await again.waitFor('pubrec')
  again.send({ cmd: 'pubrel', messageId: 7 })
  const pubcomp = await again.waitFor('pubcomp') as Packet & { messageId: number }
  assert.equal(pubcomp.messageId, 7)
  // A later message proves the path is open; the first was not delivered again.
  again.send({ cmd: 'publish', topic, payload: Buffer.from('marker'), qos: 1, messageId: 8, dup: false, retain: false })
  await waitFor(() => seen.includes('marker'), { message: 'the marker' })
  assert.deepEqual(seen, ['once', 'marker'])
})

test('a queued message\'s expiry counts the time it waited and travelled: an expired one is dropped on the new node, a live one arrives with what is left', async () => {
  const id = uniqueId('expiry')
  const topic = `expiry/${id}`
  const opts = { clientId: id, clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } }
  const first = await connect(a.mqttUrl, opts)
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  await gone(a, id)
  await waitForRoute(c, a, topic)

  const pub = await connect(c.mqttUrl, { protocolVersion: 5 })
  clients.push(pub)
  await pub.publishAsync(topic, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
  await pub.publishAsync(topic, 'long', { qos: 1, properties: { messageExpiryInterval: 60 } })
  await waitFor(() => a.node.mqtt.persistence.queuedFor(id) === 2, { message: 'both queued on A' })
  const queuedAt = Date.now()
  await waitFor(() => Date.now() - queuedAt > 2100, { timeout: 5000, interval: 100, message: 'the short one expired' })

  const { client: again, connack, got } = await connectWithConnack(b.mqttUrl, opts)
  clients.push(again)
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 1, 'the live message')
  assert.equal(got[0]!.payload, 'long')
  const left = got[0]!.properties?.messageExpiryInterval
  assert.ok(left !== undefined && left <= 58 && left > 50, `what is left of 60 s after about 2 s queued: ${left}`)
  // Nothing else comes: the expired one was dropped, not delayed.
  await pub.publishAsync(topic, 'marker', { qos: 1 })
  await waitForCount(got, 2, 'the marker')
  assert.deepEqual(got.map((m) => m.payload), ['long', 'marker'])
})
