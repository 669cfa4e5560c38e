// Retained messages: set, replace, clear, QoS on delivery, MQTT 5 retain
// handling and retain-as-published, and the retained count/byte limits.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { startNode, type TestNode } from '../helpers/node.js'
import { connect, collect, waitForCount, endAll, uniqueId, metricValue } from '../helpers/mqtt-clients.js'
import { waitFor } from '../helpers/wait.js'

let node: TestNode

before(async () => { node = await startNode() })
after(async () => { await node.stop() })

for (const protocolVersion of [4, 5] as const) {
  test(`MQTT ${protocolVersion}: a stored session gets a QoS 2 retained message on SUBSCRIBE and keeps its connection`, async () => {
    const pub = await connect(node.mqttUrl, { protocolVersion })
    const topic = `ret2/${uniqueId()}`
    const id = uniqueId('ret2')
    const session = { protocolVersion, clientId: id, clean: false, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}) }
    let sub
    try {
      await pub.publishAsync(topic, 'kept', { qos: 2, retain: true })
      sub = await connect(node.mqttUrl, session)
      const got = collect(sub)
      await sub.subscribeAsync(topic, { qos: 2 })
      // A QoS 2 message reaches mqtt.js's application at PUBREL: the whole flow completed.
      await waitForCount(got, 1)
      assert.deepEqual(got.map((m) => [m.payload, m.qos, m.retain]), [['kept', 2, true]])
      await pub.publishAsync(topic, 'live', { qos: 2 })
      await waitForCount(got, 2)
      assert.equal(sub.connected, true)
    } finally {
      await pub.publishAsync(topic, '', { qos: 1, retain: true })
      await endAll(pub, sub)
    }
  })

  test(`MQTT ${protocolVersion}: retained set, replace and clear`, async () => {
    const pub = await connect(node.mqttUrl, { protocolVersion })
    const topic = `ret/${uniqueId()}`
    try {
      await pub.publishAsync(topic, 'first', { qos: 1, retain: true })
      await pub.publishAsync(topic, 'second', { qos: 1, retain: true })
      const a = await connect(node.mqttUrl, { protocolVersion })
      const gotA = collect(a)
      await a.subscribeAsync(topic, { qos: 1 })
      await waitForCount(gotA, 1)
      assert.equal(gotA[0]!.payload, 'second')
      assert.equal(gotA[0]!.retain, true)
      assert.equal(gotA[0]!.qos, 1)
      await endAll(a)

      // Clearing: an empty retained payload removes the topic. [MQTT-3.3.1-6]
      await pub.publishAsync(topic, '', { qos: 1, retain: true })
      const b = await connect(node.mqttUrl, { protocolVersion })
      const gotB = collect(b)
      await b.subscribeAsync(topic, { qos: 1 })
      // A marker published after the subscription proves nothing retained came first.
      await pub.publishAsync(topic, 'live', { qos: 1 })
      await waitForCount(gotB, 1)
      assert.deepEqual(gotB.map((m) => [m.payload, m.retain]), [['live', false]])
      await endAll(b)
    } finally {
      await endAll(pub)
    }
  })
}

test('a retained QoS 2 message is delivered at the subscription QoS', async () => {
  const pub = await connect(node.mqttUrl)
  const sub = await connect(node.mqttUrl)
  try {
    const topic = `ret/${uniqueId()}`
    await pub.publishAsync(topic, 'r', { qos: 2, retain: true })
    const got = collect(sub)
    await sub.subscribeAsync(topic, { qos: 1 })
    await waitForCount(got, 1)
    assert.equal(got[0]!.qos, 1)
    assert.equal(got[0]!.retain, true)
    await pub.publishAsync(topic, '', { retain: true })
  } finally {
    await endAll(pub, sub)
  }
})

describe('MQTT 5 retain options', () => {
  test('retain handling 0 sends retained on every subscribe, 1 only on a new subscription, 2 never', async () => {
    const pub = await connect(node.mqttUrl, { protocolVersion: 5 })
    const sub = await connect(node.mqttUrl, { protocolVersion: 5 })
    const base = `rh/${uniqueId()}`
    try {
      for (const rh of [0, 1, 2]) await pub.publishAsync(`${base}/${rh}`, `r${rh}`, { qos: 1, retain: true })
      const got = collect(sub)
      for (const rh of [0, 1, 2] as const) await sub.subscribeAsync(`${base}/${rh}`, { qos: 1, rh })
      // Subscribing again to the same filters.
      for (const rh of [0, 1, 2] as const) await sub.subscribeAsync(`${base}/${rh}`, { qos: 1, rh })
      await pub.publishAsync(`${base}/end`, 'x', { qos: 1 })
      await sub.subscribeAsync(`${base}/end`, { qos: 1, rh: 2 })
      await pub.publishAsync(`${base}/end`, 'end', { qos: 1 })
      await waitFor(() => got.some((m) => m.payload === 'end'), { message: 'end marker' })
      const retained = got.filter((m) => m.retain).map((m) => m.payload).sort()
      assert.deepEqual(retained, ['r0', 'r0', 'r1'])
      for (const rh of [0, 1, 2]) await pub.publishAsync(`${base}/${rh}`, '', { retain: true })
    } finally {
      await endAll(pub, sub)
    }
  })

  test('retain-as-published keeps the retain flag on live delivery; without it the flag is cleared', async () => {
    const pub = await connect(node.mqttUrl, { protocolVersion: 5 })
    const keep = await connect(node.mqttUrl, { protocolVersion: 5 })
    const plain = await connect(node.mqttUrl, { protocolVersion: 5 })
    const topic = `rap/${uniqueId()}`
    try {
      const gotKeep = collect(keep)
      const gotPlain = collect(plain)
      await keep.subscribeAsync(topic, { qos: 1, rap: true })
      await plain.subscribeAsync(topic, { qos: 1 })
      await pub.publishAsync(topic, 'live', { qos: 1, retain: true })
      await waitForCount(gotKeep, 1)
      await waitForCount(gotPlain, 1)
      assert.equal(gotKeep[0]!.retain, true)
      assert.equal(gotPlain[0]!.retain, false)
      await pub.publishAsync(topic, '', { retain: true })
    } finally {
      await endAll(pub, keep, plain)
    }
  })
})

describe('retained limits', () => {
  let limited: TestNode
  before(async () => { limited = await startNode({ mqtt: { max_retained_messages: 2, max_retained_bytes: 10 } }) })
  after(async () => { await limited.stop() })

  test('a new retained topic over the count or byte limit is not stored but still delivered live; replace and clear always work', async () => {
    const pub = await connect(limited.mqttUrl)
    const live = await connect(limited.mqttUrl)
    const registry = limited.node.registry
    const base = `lim/${uniqueId()}`
    try {
      const gotLive = collect(live)
      await live.subscribeAsync(`${base}/#`, { qos: 1 })
      await pub.publishAsync(`${base}/a`, '12345', { qos: 1, retain: true })
      // Over the byte limit (5 + 6 > 10): refused.
      await pub.publishAsync(`${base}/b`, '123456', { qos: 1, retain: true })
      // aedes acknowledges QoS 1 before it stores: wait for the effect.
      await waitFor(async () => await metricValue(registry, 'broker_limit_rejections_total', { limit: 'retained_bytes' }) === 1, { message: 'retained_bytes rejection' })
      await pub.publishAsync(`${base}/b`, '1', { qos: 1, retain: true })
      // Over the count limit (2 topics held): refused.
      await pub.publishAsync(`${base}/c`, '1', { qos: 1, retain: true })
      await waitFor(async () => await metricValue(registry, 'broker_limit_rejections_total', { limit: 'retained_messages' }) === 1, { message: 'retained_messages rejection' })
      // Replacing grows past the byte limit and still works.
      await pub.publishAsync(`${base}/a`, '1234567890', { qos: 1, retain: true })
      const persistence = limited.node.mqtt.persistence
      await waitFor(() => persistence.retainedBytes === 11, { message: 'replacement stored' })
      assert.equal(persistence.retainedCount, 2)
      // Every message reached the live subscriber, stored or not.
      await waitForCount(gotLive, 5)

      const late = await connect(limited.mqttUrl)
      const gotLate = collect(late)
      await late.subscribeAsync(`${base}/#`, { qos: 1 })
      await waitForCount(gotLate, 2)
      assert.deepEqual(gotLate.map((m) => `${m.topic.slice(base.length + 1)}=${m.payload}`).sort(), ['a=1234567890', 'b=1'])
      await endAll(late)

      // Clearing frees room: with a gone, c fits.
      await pub.publishAsync(`${base}/a`, '', { qos: 1, retain: true })
      await pub.publishAsync(`${base}/c`, 'c', { qos: 1, retain: true })
      await waitFor(() => persistence.retainedCount === 2 && persistence.retainedBytes === 2, { message: 'c stored after a cleared' })
      assert.equal(await metricValue(registry, 'broker_retained_messages'), 2)
      assert.equal(await metricValue(registry, 'broker_retained_bytes'), 2)
    } finally {
      await endAll(pub, live)
    }
  })
})
