// Sessions: offline queues across reconnect (3.1.1 and 5.0), the queue bound,
// MQTT 5 session expiry and takeover, wills and MQTT 5 will delay.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient, IClientOptions } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, connectWithConnack, collect, waitForCount, endAll, uniqueId, metricValue, nextDisconnect } from '../helpers/mqtt-clients.js'

let node: TestNode

before(async () => { node = await startNode({ mqtt: { max_queued_messages: 3 } }) })
after(async () => { await node.stop() })

/** Closes the TCP connection without DISCONNECT, as a crashed client would. */
async function crash (client: MqttClient): Promise<void> {
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  client.stream.destroy()
  await closed
  await client.endAsync(true).catch(() => {})
}

function persistentOptions (protocolVersion: 4 | 5, clientId: string): IClientOptions {
  return protocolVersion === 5
    ? { protocolVersion, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
    : { protocolVersion, clientId, clean: false }
}

for (const protocolVersion of [4, 5] as const) {
  describe(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5.0'} persistent session`, () => {
    test('QoS 1/2 messages published while offline arrive on reconnect, in order, with session present', async () => {
      const id = uniqueId('persist')
      const topic = `sess/${id}`
      const sub = await connect(node.mqttUrl, persistentOptions(protocolVersion, id))
      await sub.subscribeAsync(topic, { qos: 2 })
      await sub.endAsync()
      const pub = await connect(node.mqttUrl, { protocolVersion })
      let again: MqttClient | undefined
      try {
        await pub.publishAsync(topic, 'a', { qos: 1 })
        await pub.publishAsync(topic, 'b', { qos: 2 })
        await pub.publishAsync(topic, 'c', { qos: 0 }) // QoS 0 is not queued for offline sessions
        await waitFor(() => node.node.mqtt.persistence.queuedFor(id) === 2, { message: 'two queued' })
        const reconnected = await connectWithConnack(node.mqttUrl, persistentOptions(protocolVersion, id))
        again = reconnected.client
        const got = reconnected.got
        assert.equal(reconnected.connack.sessionPresent, true)
        await waitForCount(got, 2)
        assert.deepEqual(got.map((m) => `${m.payload}:${m.qos}`), ['a:1', 'b:2'])
        // Acknowledged: nothing left queued.
        await waitFor(() => node.node.mqtt.persistence.queuedFor(id) === 0, { message: 'queue drained' })
      } finally {
        await endAll(pub, again)
      }
    })

    // aedes defect: with overlapping subscriptions the offline message is
    // queued once per subscription; it was delivered twice on reconnect and
    // one copy never cleared.
    test('overlapping subscriptions of an offline session: the message is delivered once and nothing stays queued', async () => {
      const id = uniqueId('overlap')
      const base = `ovl/${id}`
      const sub = await connect(node.mqttUrl, persistentOptions(protocolVersion, id))
      await sub.subscribeAsync(`${base}/#`, { qos: 1 })
      await sub.subscribeAsync(`${base}/b`, { qos: 1 })
      await sub.endAsync()
      const pub = await connect(node.mqttUrl, { protocolVersion })
      let again: MqttClient | undefined
      try {
        await pub.publishAsync(`${base}/b`, 'offline', { qos: 1 })
        await waitFor(() => node.node.mqtt.persistence.queuedFor(id) > 0, { message: 'queued' })
        const reconnected = await connectWithConnack(node.mqttUrl, persistentOptions(protocolVersion, id))
        again = reconnected.client
        const got = reconnected.got
        await waitForCount(got, 1)
        await pub.publishAsync(`${base}/b`, 'live', { qos: 1 })
        await waitForCount(got, 2)
        assert.deepEqual(got.map((m) => m.payload), ['offline', 'live'])
        await waitFor(() => node.node.mqtt.persistence.queuedFor(id) === 0, { message: 'queue drained' })
      } finally {
        await endAll(pub, again)
      }
    })

    test('an offline session keeps only the newest max_queued_messages; the dropped ones are counted', async () => {
      const id = uniqueId('bounded')
      const topic = `bound/${id}`
      const sub = await connect(node.mqttUrl, persistentOptions(protocolVersion, id))
      await sub.subscribeAsync(topic, { qos: 1 })
      await sub.endAsync()
      const before = await metricValue(node.node.registry, 'broker_limit_rejections_total', { limit: 'queued_messages' })
      const pub = await connect(node.mqttUrl, { protocolVersion })
      let again: MqttClient | undefined
      try {
        for (let i = 0; i < 5; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
        await waitFor(async () => await metricValue(node.node.registry, 'broker_limit_rejections_total', { limit: 'queued_messages' }) === before + 2, { message: 'two drops counted' })
        assert.equal(node.node.mqtt.persistence.queuedFor(id), 3)
        const reconnected = await connectWithConnack(node.mqttUrl, persistentOptions(protocolVersion, id))
        again = reconnected.client
        const got = reconnected.got
        await waitForCount(got, 3)
        assert.deepEqual(got.map((m) => m.payload), ['m2', 'm3', 'm4'])
      } finally {
        await endAll(pub, again)
      }
    })

    test('a will is published when the connection drops without DISCONNECT, not after a clean DISCONNECT', async () => {
      const topic = `will/${uniqueId()}`
      const watcher = await connect(node.mqttUrl, { protocolVersion })
      const got = collect(watcher)
      await watcher.subscribeAsync(`${topic}/#`, { qos: 1 })
      const polite = await connect(node.mqttUrl, { protocolVersion, will: { topic: `${topic}/polite`, payload: Buffer.from('gone'), qos: 1, retain: false } })
      await polite.endAsync()
      const crashing = await connect(node.mqttUrl, { protocolVersion, will: { topic: `${topic}/crash`, payload: Buffer.from('gone'), qos: 1, retain: false } })
      try {
        await crash(crashing)
        await waitForCount(got, 1)
        // The polite client's DISCONNECT came first, so had its will been
        // published it would be here already.
        assert.deepEqual(got.map((m) => m.topic), [`${topic}/crash`])
      } finally {
        await endAll(watcher)
      }
    })
  })
}

describe('MQTT 5 session lifetime', () => {
  test('a session expires after its Session Expiry Interval; before that it is present', async () => {
    const id = uniqueId('expiry')
    const first = await connect(node.mqttUrl, { protocolVersion: 5, clientId: id, clean: true, properties: { sessionExpiryInterval: 1 } })
    await first.subscribeAsync(`exp/${id}`, { qos: 1 })
    await first.endAsync()
    const persistence = node.node.mqtt.persistence
    assert.equal((await persistence.subscriptionsByClient({ id })).length, 1)
    await waitFor(async () => (await persistence.subscriptionsByClient({ id })).length === 0, { timeout: 5000, message: 'session wiped' })
    const { client: second, connack } = await connectWithConnack(node.mqttUrl, { protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } })
    try {
      assert.equal(connack.sessionPresent, false)
    } finally {
      await endAll(second)
    }
  })

  // The new CONNECT's Session Expiry Interval governs how the new connection
  // ends, not whether the stored session is resumed (sections 3.1.2.4, 3.1.2.11.2).
  for (const how of ['CONNECT', 'DISCONNECT'] as const) {
    test(`resumed with Clean Start 0 and no Session Expiry Interval (expiry set on ${how}): queued messages arrive with their remaining expiry`, async () => {
      const id = uniqueId('noexp')
      const topic = `noexp/${id}`
      const first = await connect(node.mqttUrl, { protocolVersion: 5, clientId: id, clean: true, properties: { sessionExpiryInterval: how === 'CONNECT' ? 99999 : 1 } })
      await first.subscribeAsync(`${topic}/#`, { qos: 2 })
      await first.endAsync(false, how === 'DISCONNECT' ? { properties: { sessionExpiryInterval: 99999 } } : {})
      const pub = await connect(node.mqttUrl, { protocolVersion: 5 })
      let again: MqttClient | undefined
      try {
        for (const qos of [0, 1, 2] as const) await pub.publishAsync(`${topic}/m`, `q${qos}`, { qos, properties: { messageExpiryInterval: 100 } })
        await waitFor(() => node.node.mqtt.persistence.queuedFor(id) === 2, { message: 'QoS 1 and 2 queued' })
        // Past the CONNECT's 1 s expiry: only the DISCONNECT's keeps the session.
        const queuedAt = Date.now()
        await waitFor(() => how === 'CONNECT' || Date.now() - queuedAt > 1500, { message: 'the first expiry to pass' })
        const resumed = await connectWithConnack(node.mqttUrl, { protocolVersion: 5, clientId: id, clean: false })
        again = resumed.client
        assert.equal(resumed.connack.sessionPresent, true)
        await waitForCount(resumed.got, 2)
        assert.deepEqual(resumed.got.map((m) => m.payload).sort(), ['q1', 'q2'])
        for (const m of resumed.got) {
          const left = m.properties?.messageExpiryInterval ?? 0
          assert.ok(left > 0 && left <= 100, `remaining expiry ${left}`)
        }
      } finally {
        await endAll(pub, again)
      }
    })
  }

  test('a second connection with the same client id takes the session over; the first gets DISCONNECT 0x8E', async () => {
    const id = uniqueId('takeover')
    const first = await connect(node.mqttUrl, { protocolVersion: 5, clientId: id })
    const disconnected = nextDisconnect(first)
    const second = await connect(node.mqttUrl, { protocolVersion: 5, clientId: id })
    try {
      const packet = await disconnected
      assert.equal(packet?.cmd, 'disconnect')
      assert.equal((packet as { reasonCode?: number }).reasonCode, 0x8E)
      assert.equal(second.connected, true)
    } finally {
      await endAll(first, second)
    }
  })

  test('a will PUBLISH carries the will properties but never the Will Delay Interval, published at once or after its delay', async () => {
    const topic = `wprops/${uniqueId()}`
    const watcher = await connect(node.mqttUrl, { protocolVersion: 5 })
    const got = collect(watcher)
    await watcher.subscribeAsync(`${topic}/#`, { qos: 1 })
    const withWill = (name: string, willDelayInterval: number): IClientOptions => ({
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 30 },
      will: {
        topic: `${topic}/${name}`,
        payload: Buffer.from(name),
        qos: 1,
        retain: false,
        properties: { willDelayInterval, contentType: 'text/plain', userProperties: { why: 'gone' } }
      }
    })
    const now = await connect(node.mqttUrl, withWill('now', 0))
    const later = await connect(node.mqttUrl, withWill('later', 1))
    try {
      await Promise.all([crash(now), crash(later)])
      await waitForCount(got, 2, 'both wills')
      for (const will of got) {
        assert.equal((will.properties as Record<string, unknown> | undefined)?.willDelayInterval, undefined, `${will.payload}: Will Delay Interval forwarded`)
        assert.equal(will.properties?.contentType, 'text/plain')
        assert.deepEqual({ ...will.properties?.userProperties }, { why: 'gone' })
      }
    } finally {
      await endAll(watcher)
    }
  })

  test('will delay: the will comes after the delay, and not at all if the client reconnects within it', async () => {
    const topic = `wd/${uniqueId()}`
    const watcher = await connect(node.mqttUrl, { protocolVersion: 5 })
    const got = collect(watcher)
    await watcher.subscribeAsync(`${topic}/#`, { qos: 1 })
    const delayed = (name: string): IClientOptions => ({
      protocolVersion: 5,
      clientId: `${name}-${uniqueId()}`,
      properties: { sessionExpiryInterval: 30 },
      will: { topic: `${topic}/${name}`, payload: Buffer.from(name), qos: 1, retain: false, properties: { willDelayInterval: 1 } }
    })
    const late = delayed('late')
    const back = delayed('back')
    const lateClient = await connect(node.mqttUrl, late)
    const backClient = await connect(node.mqttUrl, back)
    let backAgain: MqttClient | undefined
    try {
      const crashedAt = Date.now()
      await Promise.all([crash(lateClient), crash(backClient)])
      const delayedWills = (node.node.mqtt.aedes as unknown as { delayedWills: Map<string, unknown> }).delayedWills
      await waitFor(() => delayedWills.has(back.clientId!), { message: 'the broker to notice the drop' })
      backAgain = await connect(node.mqttUrl, { ...back, will: undefined, clean: false })
      // Reconnecting cancelled the pending will.
      assert.equal(delayedWills.has(back.clientId!), false)
      await waitForCount(got, 1, 'the late will', 5000)
      assert.ok(Date.now() - crashedAt >= 900, 'will came after its delay')
      assert.deepEqual(got.map((m) => m.payload), ['late'])
    } finally {
      await endAll(watcher, backAgain)
    }
  })
})
