// Bad input from raw sockets next to a healthy mqtt.js client: the offender is
// dropped (with a reason code on MQTT 5 where it is connected), counted in
// broker_bad_packets_total, and the healthy client never notices.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, collect, waitForCount, endAll, uniqueId, metricValue, RawClient, encode, type Received } from '../helpers/mqtt-clients.js'

let node: TestNode
let healthy: MqttClient
let got: Received[]
const topic = `healthy/${uniqueId()}`

before(async () => {
  // Short CONNECT timeout: a half-sent CONNECT followed by silence ends fast.
  node = await startNode({ mqtt: { connect_timeout: 500 } })
  healthy = await connect(node.mqttUrl, { protocolVersion: 5 })
  got = collect(healthy)
  await healthy.subscribeAsync(topic, { qos: 1 })
})

after(async () => {
  await endAll(healthy)
  await node.stop()
})

const bad = async (reason: string): Promise<number> => await metricValue(node.node.registry, 'broker_bad_packets_total', { reason })

async function open (protocolVersion = 4): Promise<RawClient> {
  return await RawClient.open(node.host, node.config.mqtt.port, protocolVersion)
}

/** The healthy client still gets its own messages. */
async function healthyStillWorks (): Promise<void> {
  const n = got.length
  const marker = `ok-${n}`
  await healthy.publishAsync(topic, marker, { qos: 1 })
  await waitForCount(got, n + 1)
  assert.equal(got[n]!.payload, marker)
  assert.equal(healthy.connected, true)
}

async function expectCounted (reason: string, before: number): Promise<void> {
  await waitFor(async () => await bad(reason) === before + 1, { message: `${reason} counted` })
}

test('garbage bytes instead of CONNECT: closed and counted as malformed', async () => {
  const before = await bad('malformed')
  const raw = await open()
  try {
    // PUBREL must have header flags 0010; 0000 is malformed. [MQTT-2.2.2-2]
    raw.write(Buffer.from([0x60, 0x02, 0x00, 0x01]))
    await raw.waitClosed()
    await expectCounted('malformed', before)
    await healthyStillWorks()
  } finally {
    raw.destroy()
  }
})

test('garbage after CONNECT on MQTT 5: DISCONNECT 0x81, closed, counted', async () => {
  const before = await bad('malformed')
  const raw = await open(5)
  try {
    await raw.connect(uniqueId(), 5)
    raw.write(Buffer.from([0x36, 0x02, 0x00, 0x00])) // PUBLISH with QoS 3
    const disconnect = await raw.waitFor('disconnect')
    assert.equal((disconnect as { reasonCode?: number }).reasonCode, 0x81)
    await raw.waitClosed()
    await expectCounted('malformed', before)
    await healthyStillWorks()
  } finally {
    raw.destroy()
  }
})

test('a truncated CONNECT then silence: closed after connect_timeout, counted as truncated', async () => {
  const before = await bad('truncated')
  const raw = await open()
  try {
    const connect = encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId(), clean: true, keepalive: 60 })
    raw.write(connect.subarray(0, connect.length - 4))
    await raw.waitClosed(5000)
    await expectCounted('truncated', before)
    await healthyStillWorks()
  } finally {
    raw.destroy()
  }
})

test('a truncated PUBLISH then close: counted as truncated', async () => {
  const before = await bad('truncated')
  const raw = await open()
  try {
    await raw.connect(uniqueId(), 4)
    const publish = encode({ cmd: 'publish', topic, payload: Buffer.alloc(100), qos: 0 })
    raw.write(publish.subarray(0, 50))
    // Make sure the half packet reached the broker before closing.
    await waitFor(() => raw.socket.bytesWritten >= 50 + 20, { message: 'bytes written' })
    raw.socket.end()
    await raw.waitClosed()
    await expectCounted('truncated', before)
    await healthyStillWorks()
    // The half message never reached the subscriber.
    assert.ok(got.every((m) => m.payload.startsWith('ok-')))
  } finally {
    raw.destroy()
  }
})

test('a second CONNECT: MQTT 5 gets DISCONNECT 0x82, 3.1.1 is closed; both counted as protocol errors', async () => {
  const before = await bad('protocol_error')
  const v5 = await open(5)
  const v4 = await open(4)
  try {
    await v5.connect(uniqueId(), 5)
    await v4.connect(uniqueId(), 4)
    v5.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uniqueId(), clean: true, keepalive: 60 }, 5)
    v4.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId(), clean: true, keepalive: 60 }, 4)
    const disconnect = await v5.waitFor('disconnect')
    assert.equal((disconnect as { reasonCode?: number }).reasonCode, 0x82)
    await v5.waitClosed()
    await v4.waitClosed()
    await waitFor(async () => await bad('protocol_error') === before + 2, { message: 'both counted' })
    await healthyStillWorks()
  } finally {
    v5.destroy()
    v4.destroy()
  }
})

test('a packet before CONNECT: closed and counted as a protocol error', async () => {
  const before = await bad('protocol_error')
  const raw = await open()
  try {
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] })
    await raw.waitClosed()
    await expectCounted('protocol_error', before)
    assert.equal(raw.packets.length, 0)
    await healthyStillWorks()
  } finally {
    raw.destroy()
  }
})
