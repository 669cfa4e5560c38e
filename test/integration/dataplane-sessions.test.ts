// A persistent session moves to the node its client reconnects to, before
// CONNACK: subscriptions (routed from the new node, unrouted from the old),
// queued QoS 1/2 messages, in-flight ones and pending PUBRELs; the CONNACK
// says session present. A clean start elsewhere fetches nothing and discards
// the old session. Three in-process nodes, mqtt.js v3.1.1 and v5, raw MQTT
// for the QoS 2 half-finished flow.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient, IDisconnectPacket, Packet } from 'mqtt'
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

const queued = (n: TestNode, id: string): number => n.node.mqtt.persistence.queuedFor(id)
const routesTo = (from: TestNode, topic: string): readonly string[] => from.node.dataPlane.routing.peersFor(topic)
const hostPort = (n: TestNode): [string, number] => {
  const u = new URL(n.mqttUrl)
  return [u.hostname, Number(u.port)]
}

test('v3.1.1: an offline session with queued QoS 1 messages moves to another node on reconnect, session present, each message once', async () => {
  const id = uniqueId('move4')
  const topic = `sessions/${id}`
  const first = await connect(a.mqttUrl, { clientId: id, clean: false, protocolVersion: 4 })
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  // The offline session still attracts messages to A.
  await waitForRoute(c, a, topic)
  await waitForRoute(b, a, topic)
  const pc = await connect(c.mqttUrl)
  const pa = await connect(a.mqttUrl)
  clients.push(pc, pa)
  for (let i = 0; i < 3; i++) await pc.publishAsync(topic, `c${i}`, { qos: 1 })
  for (let i = 0; i < 2; i++) await pa.publishAsync(topic, `a${i}`, { qos: 1 })
  await waitFor(() => queued(a, id) === 5, { message: 'five messages queued on A' })

  const { client: second, connack, got } = await connectWithConnack(b.mqttUrl, { clientId: id, clean: false, protocolVersion: 4 })
  clients.push(second)
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 5)
  assert.deepEqual(got.map((m) => m.payload), ['c0', 'c1', 'c2', 'a0', 'a1'])
  // Moved, not copied: A holds nothing and no longer attracts the topic; B does.
  assert.equal(queued(a, id), 0)
  await waitFor(() => routesTo(c, topic).join() === nameOf(b), { message: `C routes ${topic} to B only (have ${routesTo(c, topic).join()})` })
  await waitFor(() => !routesTo(b, topic).includes(nameOf(a)), { message: 'B no longer routes to A' })
  await pc.publishAsync(topic, 'after', { qos: 1 })
  await waitForCount(got, 6)
  assert.equal(got[5]!.payload, 'after')
  await waitFor(() => queued(b, id) === 0, { message: 'B queue drained' })
  assert.equal(got.length, 6)
})

test('v5: a connected persistent client taken over from another node gets session present and its subscriptions keep working', async () => {
  const id = uniqueId('move5')
  const topic = `sessions/${id}/+`
  const opts = { clientId: id, clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } }
  const first = await connect(a.mqttUrl, opts)
  clients.push(first)
  const disconnects: IDisconnectPacket[] = []
  first.on('disconnect', (p) => disconnects.push(p))
  let firstClosed = false
  first.on('close', () => { firstClosed = true })
  await first.subscribeAsync(topic, { qos: 1 })
  await waitForRoute(c, a, `sessions/${id}/x`)

  const { client: second, connack, got } = await connectWithConnack(b.mqttUrl, opts)
  clients.push(second)
  assert.equal(connack.sessionPresent, true)
  await waitFor(() => firstClosed, { message: 'the older connection closed' })
  assert.equal(disconnects[0]?.reasonCode, 0x8E)
  // The subscription came along: no SUBSCRIBE on the new connection.
  await waitFor(() => routesTo(c, `sessions/${id}/x`).join() === nameOf(b), { message: 'C routes to B only' })
  const pub = await connect(c.mqttUrl, { protocolVersion: 5 })
  clients.push(pub)
  await pub.publishAsync(`sessions/${id}/x`, 'one', { qos: 1 })
  await pub.publishAsync(`sessions/${id}/y`, 'two', { qos: 1 })
  await waitForCount(got, 2)
  assert.deepEqual(got.map((m) => m.payload), ['one', 'two'])
  assert.equal(second.connected, true)
})

test('QoS 2 in flight: a PUBREL pending on the old node completes on the new one, the message is not delivered again', async () => {
  const id = uniqueId('move-qos2')
  const topic = `sessions/${id}`
  const [ha, pa] = hostPort(a)
  const sub = await RawClient.open(ha, pa)
  raws.push(sub)
  const ack = await sub.connect(id, 4, { clean: false })
  assert.equal((ack as { returnCode?: number }).returnCode, 0)
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] })
  await sub.waitFor('suback')
  await waitForRoute(c, a, topic)
  const pub = await connect(c.mqttUrl)
  clients.push(pub)
  await pub.publishAsync(topic, 'exactly once', { qos: 2 })
  const publish = await sub.waitFor('publish') as Packet & { messageId: number, payload: Buffer }
  assert.equal(publish.payload.toString(), 'exactly once')
  sub.send({ cmd: 'pubrec', messageId: publish.messageId })
  const pubrel = await sub.waitFor('pubrel') as Packet & { messageId: number }
  assert.equal(pubrel.messageId, publish.messageId)
  // Gone without PUBCOMP: A holds the PUBREL for the session.
  sub.destroy()
  await waitFor(() => (a.node.mqtt.aedes as unknown as { clients: Record<string, unknown> }).clients[id] === undefined, { message: 'A to notice the close' })
  assert.equal(queued(a, id), 1)

  const [hb, pb] = hostPort(b)
  const again = await RawClient.open(hb, pb)
  raws.push(again)
  const connack = await again.connect(id, 4, { clean: false }) as Packet & { sessionPresent: boolean }
  assert.equal(connack.sessionPresent, true)
  const resent = await again.waitFor('pubrel') as Packet & { messageId: number }
  assert.equal(resent.messageId, publish.messageId)
  assert.equal(again.packets.some((p) => p.cmd === 'publish'), false, 'the released message is not delivered again')
  again.send({ cmd: 'pubcomp', messageId: resent.messageId })
  await waitFor(() => queued(b, id) === 0, { message: 'PUBCOMP clears the PUBREL on B' })
  assert.equal(queued(a, id), 0)
  // The subscription moved too.
  await waitFor(() => routesTo(c, topic).join() === nameOf(b), { message: 'C routes to B only' })
})

test('a clean-session reconnect elsewhere fetches nothing and the old session is discarded', async () => {
  const id = uniqueId('clean')
  const topic = `sessions/${id}`
  const first = await connect(a.mqttUrl, { clientId: id, clean: false })
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  await waitForRoute(c, a, topic)
  const pub = await connect(c.mqttUrl)
  clients.push(pub)
  await pub.publishAsync(topic, 'stale', { qos: 1 })
  await waitFor(() => queued(a, id) === 1, { message: 'one message queued on A' })

  const { client: second, connack, got } = await connectWithConnack(b.mqttUrl, { clientId: id, clean: true })
  clients.push(second)
  assert.equal(connack.sessionPresent, false)
  // The clean start discards the old session on A too: queue and route.
  await waitFor(() => queued(a, id) === 0, { message: 'A drops the old queue' })
  await waitFor(() => routesTo(c, topic).length === 0, { message: 'no node routes the old subscription' })
  assert.equal(queued(b, id), 0)
  // A round trip through B: anything the old session held would have arrived before it.
  const probe = `${topic}/probe`
  await second.subscribeAsync(probe, { qos: 1 })
  await second.publishAsync(probe, 'probe', { qos: 1 })
  await waitForCount(got, 1)
  assert.deepEqual(got.map((m) => m.payload), ['probe'])
})

// Last: stops node A.
test('a node stopping gracefully hands its offline sessions to a peer: the client finds its session and queue on another node', async () => {
  const id = uniqueId('handoff')
  const topic = `sessions/${id}`
  const first = await connect(a.mqttUrl, { clientId: id, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } })
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  await waitForRoute(c, a, topic)
  const pub = await connect(c.mqttUrl)
  clients.push(pub)
  await pub.publishAsync(topic, 'before stop', { qos: 1 })
  await waitFor(() => queued(a, id) === 1, { message: 'one message queued on A' })
  await a.stop()
  // The session lives on B or C now, and attracts messages there.
  const holder = queued(b, id) === 1 ? b : c
  assert.equal(queued(holder, id), 1, 'the queued message was handed off')
  await waitFor(() => routesTo(holder === b ? c : b, topic).join() === nameOf(holder), { message: 'the other node routes to the new holder' })
  const other = holder === b ? c : b
  await pub.publishAsync(topic, 'after stop', { qos: 1 })
  await waitFor(() => queued(holder, id) === 2, { message: 'queued on the new holder' })
  // Reconnect on the node that does not hold it: fetched from the holder.
  const { client: second, connack, got } = await connectWithConnack(other.mqttUrl, { clientId: id, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } })
  clients.push(second)
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 2)
  assert.deepEqual(got.map((m) => m.payload), ['before stop', 'after stop'])
  assert.equal(queued(holder, id), 0)
})
