// Server-to-client topic aliases (MQTT 5 section 3.3.2.3.4,
// src/server/mqtt/topic-aliases.ts), read off the wire by a raw client:
// a topic once, then its alias alone; the least recently used alias reused
// beyond the client's Topic Alias Maximum; every PUBLISH resolvable, in
// order, whatever path it took.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import type { IPublishPacket } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, collect, waitForCount, endAll, uniqueId, RawClient, encode } from '../helpers/mqtt-clients.js'

const v5 = { protocolVersion: 5 as const }

/** The PUBLISHes a raw client got, as [topic on the wire, alias], and resolved to their topics. */
function publishes (raw: RawClient): { wire: Array<[string, number | undefined]>, topics: string[] } {
  const aliases = new Map<number, string>()
  const wire: Array<[string, number | undefined]> = []
  const topics: string[] = []
  for (const p of raw.packets) {
    if (p.cmd !== 'publish') continue
    const { topic, properties } = p as IPublishPacket
    const alias = properties?.topicAlias
    wire.push([topic, alias])
    if (topic !== '') {
      if (alias !== undefined) aliases.set(alias, topic)
      topics.push(topic)
    } else {
      const known = alias === undefined ? undefined : aliases.get(alias)
      assert.ok(known !== undefined, `PUBLISH with alias ${String(alias)} before any PUBLISH set it`)
      topics.push(known)
    }
  }
  return { wire, topics }
}

async function subscriber (node: TestNode, filter: string, connect: object): Promise<RawClient> {
  const raw = await RawClient.open(node.host, node.config.mqtt.port, 5)
  await raw.connect(uniqueId('alias'), 5, connect)
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }, 5)
  await raw.waitFor('suback')
  return raw
}

describe('server topic aliases (mqtt.server_topic_aliases, default 16)', () => {
  let node: TestNode
  before(async () => { node = await startNode({}) })
  after(async () => { await node.stop() })

  test('a topic once, then its alias; beyond the client maximum the least recently used alias is taken over', async () => {
    const base = `al/${uniqueId()}`
    const raw = await subscriber(node, `${base}/#`, { properties: { topicAliasMaximum: 2 } })
    const pub = await connect(node.mqttUrl, v5)
    try {
      const sequence = ['a', 'a', 'b', 'a', 'c', 'b', 'a']
      for (const [i, t] of sequence.entries()) await pub.publishAsync(`${base}/${t}`, String(i), { qos: (i % 2) as 0 | 1 })
      await waitFor(() => publishes(raw).topics.length === sequence.length, { message: 'every message' })
      const { wire, topics } = publishes(raw)
      assert.deepEqual(topics, sequence.map((t) => `${base}/${t}`))
      const t = (name: string): string => `${base}/${name}`
      assert.deepEqual(wire, [[t('a'), 1], ['', 1], [t('b'), 2], ['', 1], [t('c'), 2], [t('b'), 1], [t('a'), 2]])
    } finally {
      raw.destroy()
      await endAll(pub)
    }
  })

  test('QoS 0, 1 and 2 sent back to back by the subscriber itself: the first sets the alias, the others use it', async () => {
    const topic = `burst/${uniqueId()}`
    const raw = await subscriber(node, topic, { properties: { topicAliasMaximum: 1 } })
    try {
      raw.write(Buffer.concat([0, 1, 2].map((qos) => encode({ cmd: 'publish', topic, payload: `q${qos}`, qos, ...(qos > 0 ? { messageId: 10 + qos } : {}) }, 5))))
      await waitFor(() => publishes(raw).topics.length === 3, { message: 'three messages' })
      const { wire, topics } = publishes(raw)
      assert.deepEqual(topics, [topic, topic, topic])
      assert.deepEqual(wire, [[topic, 1], ['', 1], ['', 1]])
    } finally {
      raw.destroy()
    }
  })

  test('a stored session: its queue goes with full topics, live QoS 0 with aliases, all resolvable', async () => {
    const id = uniqueId('stored')
    const base = `st/${id}`
    const raw = await RawClient.open(node.host, node.config.mqtt.port, 5)
    const pub = await connect(node.mqttUrl, v5)
    try {
      await raw.connect(id, 5, { clean: false, properties: { topicAliasMaximum: 4, sessionExpiryInterval: 60 } })
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 1 }] }, 5)
      await raw.waitFor('suback')
      const sent: string[] = []
      for (let i = 0; i < 12; i++) {
        const topic = `${base}/${i % 3}`
        sent.push(topic)
        await pub.publishAsync(topic, String(i), { qos: (i % 2) as 0 | 1 })
      }
      await waitFor(() => publishes(raw).topics.length === sent.length, { message: 'every message' })
      const { wire, topics } = publishes(raw)
      assert.deepEqual([...topics].sort(), [...sent].sort())
      assert.ok(wire.some(([topic]) => topic === ''), 'some went by alias')
    } finally {
      raw.destroy()
      await endAll(pub)
    }
  })

  test('no aliases for a client that allows none, nor for MQTT 3.1.1; mqtt.js resolves ours', async () => {
    const topic = `none/${uniqueId()}`
    const raw = await subscriber(node, topic, {})
    const resolving = await connect(node.mqttUrl, { ...v5, properties: { topicAliasMaximum: 5 } })
    const old = await connect(node.mqttUrl, { protocolVersion: 4 })
    const pub = await connect(node.mqttUrl, v5)
    try {
      const got = collect(resolving)
      const gotOld = collect(old)
      await resolving.subscribeAsync(topic, { qos: 1 })
      await old.subscribeAsync(topic, { qos: 1 })
      for (let i = 0; i < 4; i++) await pub.publishAsync(topic, String(i), { qos: 1 })
      await waitForCount(got, 4)
      await waitForCount(gotOld, 4)
      await waitFor(() => publishes(raw).topics.length === 4, { message: 'raw client' })
      assert.deepEqual(publishes(raw).wire, Array(4).fill([topic, undefined]))
      assert.deepEqual(got.map((m) => m.topic), Array(4).fill(topic))
      assert.deepEqual(gotOld.map((m) => m.topic), Array(4).fill(topic))
    } finally {
      raw.destroy()
      await endAll(resolving, old, pub)
    }
  })
})

test('mqtt.server_topic_aliases: 0 turns them off', async () => {
  const node = await startNode({ mqtt: { server_topic_aliases: 0 } })
  const topic = `off/${uniqueId()}`
  const raw = await subscriber(node, topic, { properties: { topicAliasMaximum: 5 } })
  const pub = await connect(node.mqttUrl, v5)
  try {
    for (let i = 0; i < 3; i++) await pub.publishAsync(topic, String(i), { qos: 0 })
    await waitFor(() => publishes(raw).topics.length === 3, { message: 'three messages' })
    assert.deepEqual(publishes(raw).wire, Array(3).fill([topic, undefined]))
  } finally {
    raw.destroy()
    await endAll(pub)
    await node.stop()
  }
})
