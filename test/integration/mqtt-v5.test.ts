// MQTT 5 features a client relies on, each seen from a real mqtt.js v5 client,
// plus shared subscriptions (also from 3.1.1) and the cluster:message_to bus
// events.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, connectWithConnack, collect, waitForCount, endAll, uniqueId, RawClient, type Received } from '../helpers/mqtt-clients.js'

let node: TestNode

before(async () => {
  node = await startNode({ mqtt: { max_keepalive: 30, topic_alias_maximum: 5, max_inflight: 20, max_packet_size: 100_000, max_client_id_length: 40, max_session_expiry: 100 } })
})
after(async () => { await node.stop() })

const v5 = { protocolVersion: 5 as const }

describe('CONNACK', () => {
  test('advertises the configured limits and imposes the server keep alive', async () => {
    const { client, connack } = await connectWithConnack(node.mqttUrl, { ...v5, keepalive: 120 })
    try {
      assert.equal(connack.properties?.maximumPacketSize, 100_000)
      assert.equal(connack.properties?.receiveMaximum, 20)
      assert.equal(connack.properties?.topicAliasMaximum, 5)
      assert.equal(connack.properties?.serverKeepAlive, 30)
      // aedes says 0 (it refuses $share); we serve them, and absent means available.
      assert.equal(connack.properties?.sharedSubscriptionAvailable, undefined)
    } finally {
      await endAll(client)
    }
  })

  test('a session expiry interval over max_session_expiry is capped, and the CONNACK says so', async () => {
    const { client, connack } = await connectWithConnack(node.mqttUrl, { ...v5, properties: { sessionExpiryInterval: 1000 } })
    try {
      assert.equal(connack.properties?.sessionExpiryInterval, 100)
    } finally {
      await endAll(client)
    }
  })

  test('an empty client id gets an assigned one', async () => {
    const { client, connack } = await connectWithConnack(node.mqttUrl, { ...v5, clientId: '' })
    try {
      assert.match(String(connack.properties?.assignedClientIdentifier), /.+/)
    } finally {
      await endAll(client)
    }
  })

  test('MQTT 3.1.1: a keep alive over max_keepalive is refused with a defined return code (aedes sends 6)', async () => {
    await assert.rejects(connectWithConnack(node.mqttUrl, { protocolVersion: 4, keepalive: 60 }), (err: Error & { code?: number }) => {
      assert.equal(err.code, 3)
      return true
    })
    const { client } = await connectWithConnack(node.mqttUrl, { protocolVersion: 4, keepalive: 30 })
    await endAll(client)
  })

  for (const protocolVersion of [4, 5] as const) {
    test(`MQTT ${protocolVersion}: a client id over max_client_id_length is refused with a reason code`, async () => {
      await assert.rejects(
        connectWithConnack(node.mqttUrl, { protocolVersion, clientId: 'x'.repeat(41) }),
        (err: Error & { code?: number }) => {
          assert.equal(err.code, protocolVersion === 5 ? 0x85 : 2)
          return true
        })
    })
  }
})

describe('Server Keep Alive (mqtt.server_keep_alive)', () => {
  let keeper: TestNode
  before(async () => { keeper = await startNode({ mqtt: { server_keep_alive: 1 } }) })
  after(async () => { await keeper.stop() })

  test('every MQTT 5 client is told it in CONNACK and held to it; MQTT 3.1.1 clients keep their own', async () => {
    const { client: follows, connack } = await connectWithConnack(keeper.mqttUrl, { ...v5, keepalive: 60 })
    const silent = await RawClient.open(keeper.host, keeper.config.mqtt.port, 5)
    const old = await RawClient.open(keeper.host, keeper.config.mqtt.port, 4)
    try {
      assert.equal(connack.properties?.serverKeepAlive, 1)
      const silentConnack = await silent.connect(uniqueId(), 5, { keepalive: 60 })
      assert.equal((silentConnack as { properties?: { serverKeepAlive?: number } }).properties?.serverKeepAlive, 1)
      await old.connect(uniqueId(), 4, { keepalive: 60 })
      const since = Date.now()
      // 1.5 times the Server Keep Alive without a packet closes the connection.
      await silent.waitClosed(5000)
      const after = Date.now() - since
      assert.ok(after >= 1400, `closed after ${after} ms`)
      // mqtt.js took the server's keep alive: it pings in time and stays.
      await waitFor(() => Date.now() - since > 2500, { message: 'two more keep alive periods' })
      assert.equal(follows.connected, true)
      assert.equal(old.closed, false)
    } finally {
      silent.destroy()
      old.destroy()
      await endAll(follows)
    }
  })
})

describe('PUBLISH properties', () => {
  test('user properties, payload format, content type, response topic and correlation data pass through', async () => {
    const sub = await connect(node.mqttUrl, v5)
    const pub = await connect(node.mqttUrl, v5)
    try {
      const got = collect(sub)
      const topic = `props/${uniqueId()}`
      await sub.subscribeAsync(topic, { qos: 1 })
      await pub.publishAsync(topic, '{"a":1}', {
        qos: 1,
        properties: {
          userProperties: { origin: 'test', n: ['1', '2'] },
          payloadFormatIndicator: true,
          contentType: 'application/json',
          responseTopic: `${topic}/reply`,
          correlationData: Buffer.from('corr-1')
        }
      })
      await waitForCount(got, 1)
      const p = got[0]!.properties!
      assert.deepEqual({ ...p.userProperties }, { origin: 'test', n: ['1', '2'] })
      assert.equal(p.payloadFormatIndicator, true)
      assert.equal(p.contentType, 'application/json')
      assert.equal(p.responseTopic, `${topic}/reply`)
      assert.equal(Buffer.from(p.correlationData!).toString(), 'corr-1')
    } finally {
      await endAll(sub, pub)
    }
  })

  test('topic aliases from the client are resolved; an alias over the maximum ends the connection with 0x94', async () => {
    const sub = await connect(node.mqttUrl, v5)
    const pub = await connect(node.mqttUrl, v5)
    try {
      const got = collect(sub)
      const topic = `alias/${uniqueId()}`
      await sub.subscribeAsync(topic, { qos: 1 })
      await pub.publishAsync(topic, 'set', { qos: 1, properties: { topicAlias: 3 } })
      await pub.publishAsync('', 'used', { qos: 1, properties: { topicAlias: 3 } })
      await waitForCount(got, 2)
      assert.deepEqual(got.map((m) => `${m.topic}=${m.payload}`), [`${topic}=set`, `${topic}=used`])
      // The alias is between the publisher and the broker: never forwarded.
      assert.equal(got[1]!.properties?.topicAlias, undefined)
      // mqtt.js will not send an alias over the maximum: a raw client does.
      const raw = await RawClient.open(node.host, node.config.mqtt.port, 5)
      try {
        await raw.connect(uniqueId(), 5)
        raw.send({ cmd: 'publish', topic, payload: 'bad', qos: 0, properties: { topicAlias: 6 } }, 5)
        const packet = await raw.waitFor('disconnect')
        assert.equal((packet as { reasonCode?: number }).reasonCode, 0x94)
        await raw.waitClosed()
      } finally {
        raw.destroy()
      }
    } finally {
      await endAll(sub, pub)
    }
  })

  test('message expiry: a queued message past its expiry is not delivered; a live one carries the remaining interval', async () => {
    const id = uniqueId('mexp')
    const topic = `mexp/${id}`
    const session = { ...v5, clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } }
    const sub = await connect(node.mqttUrl, session)
    await sub.subscribeAsync(topic, { qos: 1 })
    await sub.endAsync()
    const pub = await connect(node.mqttUrl, v5)
    let again
    try {
      await pub.publishAsync(topic, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
      await pub.publishAsync(topic, 'long', { qos: 1, properties: { messageExpiryInterval: 100 } })
      await waitFor(() => node.node.mqtt.persistence.queuedFor(id) === 2, { message: 'both queued' })
      const queuedAt = Date.now()
      // The condition is time itself: the 1 s expiry has to pass.
      await waitFor(() => Date.now() - queuedAt > 1100, { message: 'expiry to pass' })
      again = (await connectWithConnack(node.mqttUrl, session)).client
      const got = collect(again)
      await waitForCount(got, 1)
      await pub.publishAsync(topic, 'marker', { qos: 1 })
      await waitForCount(got, 2)
      assert.deepEqual(got.map((m) => m.payload), ['long', 'marker'])
      const remaining = got[0]!.properties?.messageExpiryInterval ?? 0
      assert.ok(remaining > 0 && remaining < 100, `remaining expiry ${remaining}`)
    } finally {
      await endAll(pub, again)
    }
  })
})

describe('SUBSCRIBE options', () => {
  test('subscription identifiers come back on matching messages', async () => {
    const client = await connect(node.mqttUrl, v5)
    try {
      const got = collect(client)
      const base = `sid/${uniqueId()}`
      await client.subscribeAsync(`${base}/a`, { qos: 1, properties: { subscriptionIdentifier: 7 } })
      await client.subscribeAsync(`${base}/b/+`, { qos: 1, properties: { subscriptionIdentifier: 900 } })
      await client.publishAsync(`${base}/a`, 'a', { qos: 1 })
      await client.publishAsync(`${base}/b/x`, 'b', { qos: 1 })
      await waitForCount(got, 2)
      const ids = Object.fromEntries(got.map((m) => [m.payload, m.properties?.subscriptionIdentifier]))
      assert.deepEqual(ids, { a: 7, b: 900 })
    } finally {
      await endAll(client)
    }
  })

  for (const session of ['clean', 'stored'] as const) {
    test(`overlapping subscriptions: one message carries every matching subscription identifier (${session} session)`, async () => {
      const id = uniqueId('sids')
      const options = session === 'clean' ? { ...v5, clientId: id } : { ...v5, clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } }
      const client = await connect(node.mqttUrl, options)
      try {
        const got = collect(client)
        const base = `sids/${id}`
        // The first subscription has no identifier: its copy must not be the one that decides.
        await client.subscribeAsync(`${base}/#`, { qos: 1 })
        await client.subscribeAsync(`${base}/t`, { qos: 1, properties: { subscriptionIdentifier: 2 } })
        await client.subscribeAsync(`${base}/+`, { qos: 1, properties: { subscriptionIdentifier: 3 } })
        await client.subscribeAsync(`${base}/other`, { qos: 1, properties: { subscriptionIdentifier: 4 } })
        await client.publishAsync(`${base}/t`, 'both', { qos: 1 })
        await client.publishAsync(`${base}/t`, 'qos0', { qos: 0 })
        await client.publishAsync(`${base}/x`, 'one', { qos: 1 })
        await waitForCount(got, 3)
        const ids = (m: Received): number[] => [m.properties?.subscriptionIdentifier ?? []].flat().sort((a, b) => a - b)
        const byPayload = Object.fromEntries(got.map((m) => [m.payload, ids(m)]))
        assert.deepEqual(byPayload, { both: [2, 3], qos0: [2, 3], one: [3] })
      } finally {
        await endAll(client)
      }
    })
  }

  test('no-local: a client does not get its own messages back, others still do', async () => {
    const self = await connect(node.mqttUrl, v5)
    const other = await connect(node.mqttUrl, v5)
    try {
      const got = collect(self)
      const topic = `nl/${uniqueId()}`
      await self.subscribeAsync(topic, { qos: 1, nl: true })
      await self.publishAsync(topic, 'own', { qos: 1 })
      await other.publishAsync(topic, 'theirs', { qos: 1 })
      await waitForCount(got, 1)
      await self.publishAsync(topic, 'own again', { qos: 1 })
      await other.publishAsync(topic, 'end', { qos: 1 })
      await waitForCount(got, 2)
      assert.deepEqual(got.map((m) => m.payload), ['theirs', 'end'])
    } finally {
      await endAll(self, other)
    }
  })

  test("messages over the client's Maximum Packet Size are not sent to it", async () => {
    const small = await connect(node.mqttUrl, { ...v5, properties: { maximumPacketSize: 300 } })
    const pub = await connect(node.mqttUrl, v5)
    try {
      const got = collect(small)
      const topic = `cmps/${uniqueId()}`
      await small.subscribeAsync(topic, { qos: 1 })
      await pub.publishAsync(topic, 'x'.repeat(1000), { qos: 1 })
      await pub.publishAsync(topic, 'fits', { qos: 1 })
      await waitForCount(got, 1)
      assert.deepEqual(got.map((m) => m.payload), ['fits'])
      assert.equal(small.connected, true)
    } finally {
      await endAll(small, pub)
    }
  })
})

describe('shared subscriptions', () => {
  test('$share/group/filter load-balances each message to one member per group, v5 and 3.1.1 members alike', async () => {
    const base = `sh/${uniqueId()}`
    const members = await Promise.all([
      connect(node.mqttUrl, v5), connect(node.mqttUrl, v5), connect(node.mqttUrl, { protocolVersion: 4, keepalive: 30 })
    ])
    const other = await connect(node.mqttUrl, v5)
    const pub = await connect(node.mqttUrl, v5)
    try {
      const got = members.map((m) => collect(m))
      const gotOther = collect(other)
      for (const m of members) {
        const granted = await m.subscribeAsync(`$share/workers/${base}/+`, { qos: 1 })
        assert.equal(granted[0]!.qos, 1)
      }
      await other.subscribeAsync(`$share/audit/${base}/#`, { qos: 1 })
      const n = 30
      for (let i = 0; i < n; i++) await pub.publishAsync(`${base}/job`, String(i), { qos: 1 })
      await waitFor(() => got.reduce((s, g) => s + g.length, 0) === n && gotOther.length === n, { message: 'all delivered' })
      // Round robin over three members: ten each, nothing twice.
      assert.deepEqual(got.map((g) => g.length), [10, 10, 10])
      const all = got.flat().map((m) => Number(m.payload)).sort((a, b) => a - b)
      assert.deepEqual(all, Array.from({ length: n }, (_, i) => i))
      assert.equal(got[0]![0]!.topic, `${base}/job`)

      // A member that unsubscribes or leaves gets nothing more.
      await members[0]!.unsubscribeAsync(`$share/workers/${base}/+`)
      await members[1]!.endAsync()
      for (let i = 0; i < 4; i++) await pub.publishAsync(`${base}/job`, `late${i}`, { qos: 1 })
      await waitFor(() => got[2]!.filter((m) => m.payload.startsWith('late')).length === 4, { message: 'remaining member gets all' })
      assert.equal(got[0]!.filter((m) => m.payload.startsWith('late')).length, 0)
    } finally {
      await endAll(...members, other, pub)
    }
  })

  test('a client cannot publish into the shared-subscription marker namespace', async () => {
    const member = await connect(node.mqttUrl, v5)
    const pub = await connect(node.mqttUrl, v5)
    try {
      const got = collect(member)
      const topic = `mark/${uniqueId()}`
      await member.subscribeAsync(`$share/g/${topic}`, { qos: 1 })
      // Refused with PUBACK 0x87 (Not authorized), which mqtt.js turns into an error.
      await assert.rejects(pub.publishAsync(`$share-group/g/${topic}`, 'sneaky', { qos: 1 }), /Not authorized/)
      await pub.publishAsync(topic, 'real', { qos: 1 })
      await waitForCount(got, 1)
      assert.deepEqual(got.map((m) => m.payload), ['real'])
    } finally {
      await endAll(member, pub)
    }
  })
})

describe('event bus', () => {
  test('every client publish appears on cluster:message_to in the seed shape; $SYS traffic does not', async () => {
    const sub = node.node.bus.subscribe('test', ['cluster:message_to'], 100)
    const pub = await connect(node.mqttUrl, v5)
    try {
      const topic = `bus/${uniqueId()}`
      await pub.publishAsync(topic, 'hello', { qos: 1, retain: true })
      await pub.publishAsync(topic, '', { qos: 0, retain: true })
      const events = await waitFor(() => {
        const mine = sub.drain().filter((e) => (e.data as { Topic: string }).Topic === topic)
        return mine.length > 0 ? mine : undefined
      }, { message: 'bus event' })
      const all = [...events, ...(await waitFor(async () => { const e = await sub.next(); return e === undefined ? undefined : [e] }))]
      assert.deepEqual(all[0]!.data, { Node: ['all'], Payload: Buffer.from('hello').toString('base64'), Topic: topic, Retain: true, Qos: 1 })
      assert.deepEqual(all[1]!.data, { Node: ['all'], Payload: '', Topic: topic, Retain: true, Qos: 0 })
      assert.ok(all.every((e) => !(e.data as { Topic: string }).Topic.startsWith('$')))
    } finally {
      sub.close()
      await endAll(pub)
    }
  })
})
