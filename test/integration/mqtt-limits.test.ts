// Resource limits: connections, packet size, inbound in-flight (our Receive
// Maximum) - enforced, answered with reason codes, and counted; and the
// client's Receive Maximum respected on the way out.
// (Retained and queued-message limits: mqtt-retained and mqtt-session.)
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import type { Client } from 'aedes'
import { connect, connectWithConnack, collect, waitForCount, endAll, uniqueId, metricValue, RawClient } from '../helpers/mqtt-clients.js'
import { heldFor } from '../../src/server/mqtt/delivery.js'

const limit = async (node: TestNode, name: string): Promise<number> =>
  await metricValue(node.node.registry, 'broker_limit_rejections_total', { limit: name })

describe('max_connections', () => {
  let node: TestNode
  before(async () => { node = await startNode({ mqtt: { max_connections: 2 } }) })
  after(async () => { await node.stop() })

  test('connections over the limit get CONNACK 0x97 (MQTT 5) or 0x03 (3.1.1) and are counted; a freed slot is usable again', async () => {
    const a = await connect(node.mqttUrl)
    const b = await connect(node.mqttUrl, { protocolVersion: 5 })
    try {
      await assert.rejects(connectWithConnack(node.mqttUrl, { protocolVersion: 5 }), (err: Error & { code?: number }) => {
        assert.equal(err.code, 0x97)
        return true
      })
      await assert.rejects(connectWithConnack(node.mqttUrl, { protocolVersion: 4 }), (err: Error & { code?: number }) => {
        assert.equal(err.code, 3)
        return true
      })
      assert.equal(await limit(node, 'connections'), 2)
      assert.equal(await metricValue(node.node.registry, 'broker_mqtt_connections'), 2)
      // The two accepted clients were not disturbed.
      const got = collect(a)
      const topic = `conn/${uniqueId()}`
      await a.subscribeAsync(topic, { qos: 1 })
      await b.publishAsync(topic, 'ok', { qos: 1 })
      await waitForCount(got, 1)

      await b.endAsync()
      await waitFor(() => node.node.mqtt.connections === 1, { message: 'slot freed' })
      const c = await connect(node.mqttUrl)
      await endAll(c)
    } finally {
      await endAll(a, b)
    }
  })
})

describe('max_packet_size and max_inflight', () => {
  let node: TestNode
  before(async () => { node = await startNode({ mqtt: { max_packet_size: 1024, max_inflight: 5, max_inflight_excess: 3 } }) })
  after(async () => { await node.stop() })

  test('an oversize PUBLISH ends an MQTT 5 connection with DISCONNECT 0x95 and a 3.1.1 one by closing; others keep working', async () => {
    const healthy = await connect(node.mqttUrl)
    const got = collect(healthy)
    const topic = `big/${uniqueId()}`
    await healthy.subscribeAsync(topic, { qos: 1 })
    const v5 = await RawClient.open(node.host, node.config.mqtt.port, 5)
    const v4 = await RawClient.open(node.host, node.config.mqtt.port, 4)
    try {
      const connack = await v5.connect(uniqueId(), 5)
      assert.equal((connack as { properties?: { maximumPacketSize?: number } }).properties?.maximumPacketSize, 1024)
      await v4.connect(uniqueId(), 4)
      const before = await limit(node, 'packet_size')
      v5.send({ cmd: 'publish', topic, payload: Buffer.alloc(2000), qos: 0 }, 5)
      v4.send({ cmd: 'publish', topic, payload: Buffer.alloc(2000), qos: 0 }, 4)
      const disconnect = await v5.waitFor('disconnect')
      assert.equal((disconnect as { reasonCode?: number }).reasonCode, 0x95)
      await v5.waitClosed()
      await v4.waitClosed()
      await waitFor(async () => await limit(node, 'packet_size') === before + 2, { message: 'both counted' })
      assert.equal(await metricValue(node.node.registry, 'broker_bad_packets_total', { reason: 'oversize' }), 2)
      await healthy.publishAsync(topic, 'still here', { qos: 1 })
      await waitForCount(got, 1)
      assert.deepEqual(got.map((m) => m.payload), ['still here'])
    } finally {
      v5.destroy()
      v4.destroy()
      await endAll(healthy)
    }
  })

  test('more unreleased QoS 2 publishes than Receive Maximum: held in order and handed on as PUBRELs free the window, counted', async () => {
    const sub = await connect(node.mqttUrl, { protocolVersion: 5 })
    const over = await RawClient.open(node.host, node.config.mqtt.port, 5)
    try {
      const topic = `excess/${uniqueId()}`
      const got: string[] = []
      sub.on('message', (_t, payload) => got.push(payload.toString()))
      await sub.subscribeAsync(topic, { qos: 2 })
      await over.connect(uniqueId(), 5)
      const before = await limit(node, 'inflight')
      // Five in the window; two held, and a QoS 0 behind them held too (max_inflight_excess: 3).
      for (let i = 1; i <= 7; i++) over.send({ cmd: 'publish', topic, payload: String(i), qos: 2, messageId: i }, 5)
      over.send({ cmd: 'publish', topic, payload: 'after', qos: 0 }, 5)
      const pubrecs = (): number[] => over.packets.filter((p) => p.cmd === 'pubrec').map((p) => (p as { messageId: number }).messageId)
      await waitFor(() => pubrecs().length === 5, { message: 'PUBREC for the five in the window' })
      await waitFor(() => got.length === 5, { message: 'the five in the window delivered' })
      assert.deepEqual(pubrecs(), [1, 2, 3, 4, 5])
      assert.deepEqual(got, ['1', '2', '3', '4', '5'], 'what is held waits for the window')
      for (let i = 1; i <= 5; i++) over.send({ cmd: 'pubrel', messageId: i }, 5)
      await waitFor(() => pubrecs().length === 7, { message: 'PUBREC for the two held' })
      await waitFor(() => got.length === 8, { message: 'every message delivered' })
      // In order per QoS (a QoS 0 publish does not wait for storing, so it may pass a QoS 2 one).
      assert.deepEqual(got.filter((p) => p !== 'after'), ['1', '2', '3', '4', '5', '6', '7'], 'in the order sent')
      assert.equal(over.closed, false)
      assert.equal(await limit(node, 'inflight'), before + 1)
    } finally {
      over.destroy()
      await endAll(sub)
    }
  })

  test('more unreleased QoS 2 publishes than Receive Maximum and max_inflight_excess: DISCONNECT 0x93, counted; within it all is well', async () => {
    const within = await RawClient.open(node.host, node.config.mqtt.port, 5)
    const over = await RawClient.open(node.host, node.config.mqtt.port, 5)
    try {
      await within.connect(uniqueId(), 5)
      await over.connect(uniqueId(), 5)
      const topic = `inflight/${uniqueId()}`
      // Five in flight, released, then five more: never more than five open.
      for (let round = 0; round < 2; round++) {
        for (let i = 1; i <= 5; i++) within.send({ cmd: 'publish', topic, payload: 'x', qos: 2, messageId: round * 5 + i }, 5)
        await waitFor(() => within.packets.filter((p) => p.cmd === 'pubrec').length === (round + 1) * 5, { message: 'pubrecs' })
        for (let i = 1; i <= 5; i++) within.send({ cmd: 'pubrel', messageId: round * 5 + i }, 5)
        await waitFor(() => within.packets.filter((p) => p.cmd === 'pubcomp').length === (round + 1) * 5, { message: 'pubcomps' })
      }
      const before = await limit(node, 'inflight')
      for (let i = 1; i <= 9; i++) over.send({ cmd: 'publish', topic, payload: 'x', qos: 2, messageId: i }, 5)
      const disconnect = await over.waitFor('disconnect')
      assert.equal((disconnect as { reasonCode?: number }).reasonCode, 0x93)
      await over.waitClosed()
      assert.equal(await limit(node, 'inflight'), before + 1)
      assert.equal(within.closed, false)
    } finally {
      within.destroy()
      over.destroy()
    }
  })
})

describe("the client's Receive Maximum", () => {
  let node: TestNode
  before(async () => { node = await startNode() })
  after(async () => { await node.stop() })

  test('no more unacknowledged QoS 1 PUBLISHes than the client allows; each PUBACK releases the next, in order', async () => {
    const id = uniqueId('rm')
    const topic = `rm/${id}`
    const raw = await RawClient.open(node.host, node.config.mqtt.port, 5)
    const pub = await connect(node.mqttUrl, { protocolVersion: 5 })
    try {
      await raw.connect(id, 5, { properties: { receiveMaximum: 2 } })
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }, 5)
      await raw.waitFor('suback')
      for (let i = 0; i < 5; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
      const aedesClient = (node.node.mqtt.aedes as unknown as { clients: Record<string, Client> }).clients[id]!
      await waitFor(() => heldFor(aedesClient) === 3, { message: 'three held back' })
      const publishes = (): Array<{ payload: Buffer, messageId?: number }> => raw.packets.filter((p) => p.cmd === 'publish') as never
      await waitFor(() => publishes().length === 2, { message: 'two sent' })
      assert.equal(heldFor(aedesClient), 3)
      raw.send({ cmd: 'puback', messageId: publishes()[0]!.messageId }, 5)
      await waitFor(() => publishes().length === 3, { message: 'third after one ack' })
      assert.equal(heldFor(aedesClient), 2)
      for (const p of publishes().slice(1)) raw.send({ cmd: 'puback', messageId: p.messageId }, 5)
      await waitFor(() => publishes().length === 5, { message: 'all after acks' })
      assert.deepEqual(publishes().map((p) => p.payload.toString()), ['m0', 'm1', 'm2', 'm3', 'm4'])
    } finally {
      raw.destroy()
      await endAll(pub)
    }
  })

  test('an mqtt.js client with a small Receive Maximum gets every message, in order per QoS', async () => {
    const sub = await connect(node.mqttUrl, { protocolVersion: 5, properties: { receiveMaximum: 3 } })
    const pub = await connect(node.mqttUrl, { protocolVersion: 5 })
    try {
      const got = collect(sub)
      const topic = `rm/${uniqueId()}`
      await sub.subscribeAsync(topic, { qos: 2 })
      const n = 60
      for (let i = 0; i < n; i++) pub.publish(topic, String(i), { qos: (i % 2 + 1) as 1 | 2 })
      await waitForCount(got, n)
      // aedes does not keep order across QoS levels (nor must it, §4.6).
      for (const qos of [1, 2]) {
        const seq = got.filter((m) => m.qos === qos).map((m) => Number(m.payload))
        assert.deepEqual(seq, Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 + 1 === qos))
      }
    } finally {
      await endAll(sub, pub)
    }
  })
})
