// mqtt.max_client_buffer_bytes and the batched delivery path
// (outbound-buffer.ts): a subscriber that stops reading holds no more than
// the bound while a publisher floods, without slowing anybody else; and
// many publishers into one subscriber lose nothing and keep each one's order.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Client } from 'aedes'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, collect, waitForCount, endAll, uniqueId, metricValue, RawClient, encode } from '../helpers/mqtt-clients.js'
import { outboundOf } from '../../src/server/mqtt/delivery.js'

const LIMIT = 1024 * 1024
const PAYLOAD = 16 * 1024
/** 64 MiB: what a stalled reader made the node buffer in 0.3 s before the bound. */
const FLOOD = 64 * 1024 * 1024

const serverClient = (node: TestNode, id: string): Client | undefined =>
  (node.node.mqtt.aedes as unknown as { clients: Record<string, Client | undefined> }).clients[id]

/** A raw subscriber: CONNECT, SUBSCRIBE, then it stops reading its socket. */
async function stalledSubscriber (node: TestNode, filter: string, qos: number, protocolVersion = 4, extra: object = {}): Promise<{ raw: RawClient, id: string }> {
  const id = uniqueId('stalled')
  const raw = await RawClient.open(node.host, node.config.mqtt.port, protocolVersion)
  await raw.connect(id, protocolVersion, extra)
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }, protocolVersion)
  await raw.waitFor('suback')
  raw.socket.pause()
  return { raw, id }
}

/** Publishes `count` messages of PAYLOAD bytes on a raw socket, as fast as the node reads them. */
async function flood (node: TestNode, topic: string, count: number, qos: 0 | 1, onTick: () => void = () => {}): Promise<void> {
  const pub = await RawClient.open(node.host, node.config.mqtt.port)
  await pub.connect(uniqueId('flood'))
  try {
    for (let i = 0; i < count; i++) {
      const payload = Buffer.alloc(PAYLOAD, 0x2E)
      payload.writeUInt32BE(i, 0)
      const ok = pub.socket.write(encode({ cmd: 'publish', topic, payload, qos, messageId: qos > 0 ? (i % 65535) + 1 : undefined }))
      if (i % 64 === 0) onTick()
      if (!ok) await once(pub.socket, 'drain')
    }
    // Everything read and handled before the publisher goes: QoS 1 by its PUBACKs, QoS 0 by a PINGRESP after it.
    if (qos === 1) await waitFor(() => pub.packets.filter((p) => p.cmd === 'puback').length >= count, { timeout: 60_000, message: 'every PUBACK' })
    else {
      pub.send({ cmd: 'pingreq' })
      await pub.waitFor('pingresp', 60_000)
    }
  } finally {
    pub.destroy()
  }
}

describe('mqtt.max_client_buffer_bytes', () => {
  let node: TestNode
  before(async () => { node = await startNode({ mqtt: { max_client_buffer_bytes: LIMIT, max_queued_messages: 0 } }) })
  after(async () => { await node.stop() })

  test('a QoS 0 subscriber that stops reading holds at most the bound while 64 MiB are published; drops are counted; a reading subscriber gets every message in order', async () => {
    const topic = `flood/${uniqueId()}`
    const { raw, id } = await stalledSubscriber(node, topic, 0)
    const healthy = await connect(node.mqttUrl)
    const got: Buffer[] = []
    healthy.on('message', (_t, payload) => got.push(payload))
    await healthy.subscribeAsync(topic, { qos: 0 })
    const outbound = outboundOf(serverClient(node, id)!)!
    let peak = 0
    const heapBefore = process.memoryUsage().heapUsed
    let heapPeak = heapBefore
    const count = FLOOD / PAYLOAD
    try {
      await flood(node, topic, count, 0, () => {
        peak = Math.max(peak, outbound.buffered())
        heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)
      })
      await waitForCount(got, count, `${count} messages to the reading subscriber`, 60_000)
      // At most one message past the bound: one is always accepted while there is room.
      assert.ok(peak <= LIMIT + PAYLOAD + 64, `buffered ${peak} bytes for the stalled subscriber, bound ${LIMIT}`)
      assert.ok(outbound.buffered() <= LIMIT + PAYLOAD + 64)
      assert.ok(outbound.dropped > 0, 'the stalled subscriber lost QoS 0 messages')
      assert.ok(await metricValue(node.node.registry, 'broker_limit_rejections_total', { limit: 'client_buffer' }) >= outbound.dropped)
      // The node's heap (test process included) grew by far less than what was published.
      assert.ok(heapPeak - heapBefore < 32 * 1024 * 1024, `heap grew ${Math.round((heapPeak - heapBefore) / 2 ** 20)} MiB`)
      const seqs = got.map((payload) => payload.readUInt32BE(0))
      assert.deepEqual(seqs, Array.from({ length: count }, (_, i) => i), 'every message, in order')
      assert.equal(raw.closed, false, 'a QoS 0 subscriber is not disconnected for the bound')
    } finally {
      raw.destroy()
      await endAll(healthy)
    }
  })

  test('a clean MQTT 5 session whose QoS 1 deliveries cannot drain is disconnected with 0x97 (Quota exceeded), counted', async () => {
    const topic = `flood1/${uniqueId()}`
    const { raw, id } = await stalledSubscriber(node, topic, 1, 5)
    const outbound = outboundOf(serverClient(node, id)!)!
    let peak = 0
    const before = await metricValue(node.node.registry, 'broker_client_buffer_disconnects_total')
    const count = FLOOD / PAYLOAD
    await flood(node, topic, count, 1, () => { peak = Math.max(peak, outbound.buffered()) })
    // The node let go of it (the paused socket itself sees the close only once it reads).
    await waitFor(() => serverClient(node, id) === undefined, { timeout: 15_000, message: 'the stalled client disconnected' })
    // The waiting QoS 1 deliveries count too; past the bound twice over the client is cut.
    assert.ok(peak <= 2 * LIMIT + 2 * PAYLOAD, `buffered ${peak} bytes, bound ${LIMIT}`)
    assert.equal(await metricValue(node.node.registry, 'broker_client_buffer_disconnects_total'), before + 1)
    raw.socket.resume()
    await raw.waitClosed(15_000)
    // The DISCONNECT is written behind everything buffered: it arrives if the buffer drained within a second of it.
    const disconnect = raw.packets.find((p) => p.cmd === 'disconnect') as { reasonCode?: number } | undefined
    if (disconnect !== undefined) assert.equal(disconnect.reasonCode, 0x97)
    raw.destroy()
  })

  test("a persistent session's QoS 1 messages wait in its queue past the bound, and all arrive in order once it reads again", async () => {
    const topic = `flood2/${uniqueId()}`
    const { raw, id } = await stalledSubscriber(node, topic, 1, 4, { clean: false })
    const outbound = outboundOf(serverClient(node, id)!)!
    let peak = 0
    // More than the kernel's socket buffers take (up to 36 MiB on loopback here): the node's own buffer fills.
    const count = FLOOD / PAYLOAD
    try {
      await flood(node, topic, count, 1, () => { peak = Math.max(peak, outbound.buffered()) })
      await waitFor(() => node.node.mqtt.persistence.queuedCount >= 1, { message: 'messages queued' })
      assert.ok(peak <= LIMIT + 2 * PAYLOAD, `buffered ${peak} bytes, bound ${LIMIT}`)
      assert.equal(raw.closed, false)
      // Reading again, acknowledging as it goes: everything, in publish order.
      raw.socket.resume()
      const acked = new Set<number>()
      await waitFor(() => {
        for (const p of raw.packets as Array<{ cmd: string, messageId?: number }>) {
          if (p.cmd === 'publish' && p.messageId !== undefined && !acked.has(p.messageId)) {
            acked.add(p.messageId)
            raw.send({ cmd: 'puback', messageId: p.messageId })
          }
        }
        return raw.packets.filter((p) => p.cmd === 'publish').length >= count
      }, { timeout: 60_000, message: `${count} queued messages delivered` })
      const seqs = (raw.packets.filter((p) => p.cmd === 'publish') as unknown as Array<{ payload: Buffer }>).map((m) => m.payload.readUInt32BE(0))
      assert.deepEqual(seqs, Array.from({ length: count }, (_, i) => i))
    } finally {
      raw.destroy()
    }
  })
})

describe('fan-in through the batched delivery path', () => {
  let node: TestNode
  before(async () => { node = await startNode() })
  after(async () => { await node.stop() })

  for (const qos of [0, 1] as const) {
    test(`20 publishers x 500 QoS ${qos} messages into one '#' subscriber: none lost, none twice, each publisher's in order`, async () => {
      const prefix = `fanin/${uniqueId()}`
      const sub = await connect(node.mqttUrl)
      const got = collect(sub)
      await sub.subscribeAsync(`${prefix}/#`, { qos })
      const pubs = await Promise.all(Array.from({ length: 20 }, async () => await connect(node.mqttUrl)))
      try {
        await Promise.all(pubs.map(async (p, i) => {
          for (let k = 0; k < 500; k++) void p.publishAsync(`${prefix}/${i}`, `${k}`, { qos })
          await waitFor(() => (p as unknown as { queue: unknown[] }).queue.length === 0, { message: 'publisher flushed' })
        }))
        await waitForCount(got, 20 * 500, '10,000 messages', 30_000)
        await new Promise((resolve) => setTimeout(resolve, 200))
        assert.equal(got.length, 20 * 500, 'no duplicates')
        const perPublisher = new Map<string, number[]>()
        for (const m of got) perPublisher.set(m.topic, [...(perPublisher.get(m.topic) ?? []), Number(m.payload.toString())])
        assert.equal(perPublisher.size, 20)
        for (const [topic, seqs] of perPublisher) assert.deepEqual(seqs, Array.from({ length: 500 }, (_, k) => k), `order of ${topic}`)
      } finally {
        await endAll(sub, ...pubs)
      }
    })
  }
})
