// Durable storage (storage.dir): a node killed with SIGKILL, or every node
// of a cluster, comes back with its retained messages, its persistent
// sessions and their queued messages (docs/storage.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { startProcessNode, type ProcessNode, type ConfigOverrides } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitForView, FAST, startStoringCluster, type AfterHook } from '../helpers/cluster.js'
import { connect, connectWithConnack, waitForCount, endAll, uniqueId, offlineSubscriber } from '../helpers/mqtt-clients.js'

function tmpDir (t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-storage-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function publishAll (client: MqttClient, topic: string, payloads: string[], opts: { qos: 1 | 2, retain?: boolean }): Promise<void> {
  // In order, each acknowledged before the next: "acknowledged" is what must survive.
  for (const p of payloads) await client.publishAsync(topic, p, opts)
}

/** One node storing in its own directory (sync always): each call starts it (again) on its address and directory. */
async function storingNode (t: AfterHook): Promise<() => Promise<ProcessNode>> {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  let node: ProcessNode | undefined
  t.after(async () => { await node?.stop('SIGKILL') })
  return async () => (node = await startProcessNode({ storage: { dir, sync: 'always' } }, { host }))
}

/** Three loopback hosts seeding each other, each node storing in its own directory (sync always). */
async function threeStoringNodes (t: { after: (fn: () => void) => void }): Promise<{ hosts: string[], overridesOf: (i: number) => ConfigOverrides }> {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const dirs = hosts.map(() => tmpDir(t))
  const seeds = hosts.map((h) => `${h}:7946`)
  const overridesOf = (i: number): ConfigOverrides => ({
    storage: { dir: dirs[i]!, sync: 'always' },
    discovery: { seeds, formation_wait_min: 200, formation_wait_max: 800, resolve_interval: 1000 },
    cluster: { config: FAST }
  })
  return { hosts, overridesOf }
}

test('one node SIGKILLed comes back with its retained messages, sessions and queued messages (sync always)', async (t) => {
  const start = await storingNode(t)
  let node = await start()

  const subId = uniqueId('persistent')
  await offlineSubscriber(node.mqttUrl, subId, 'jobs/#')
  const pub = await connect(node.mqttUrl, { protocolVersion: 5 })
  await publishAll(pub, 'homeassistant/sensor/a/config', ['{"name":"a"}'], { qos: 1, retain: true })
  await publishAll(pub, 'homeassistant/sensor/b/config', ['{"name":"b"}'], { qos: 1, retain: true })
  await publishAll(pub, 'homeassistant/sensor/b/config', [''], { qos: 1, retain: true }) // cleared: must stay cleared
  const queued = Array.from({ length: 20 }, (_, i) => `job-${i}`)
  await publishAll(pub, 'jobs/x', queued, { qos: 1 })
  await endAll(pub)

  assert.equal(await node.stop('SIGKILL'), 'SIGKILL')
  node = await start()
  assert.match(node.output(), /"sessions":1/, 'the log says one session was loaded')

  const { client: sub, connack, got } = await connectWithConnack(node.mqttUrl, { clientId: subId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } })
  t.after(async () => { await endAll(sub) })
  assert.equal(connack.sessionPresent, true, 'session present after the restart')
  await waitForCount(got, queued.length, 'queued messages after the restart')
  assert.deepEqual(got.map((m) => m.payload), queued, 'every queued message, once, in order')

  const reader = await connect(node.mqttUrl)
  t.after(async () => { await endAll(reader) })
  const retained: string[] = []
  reader.on('message', (topic, payload, packet) => { if (packet.retain) retained.push(`${topic}=${payload.toString()}`) })
  await reader.subscribeAsync('homeassistant/#', { qos: 1 })
  await waitForCount(retained, 1, 'retained messages')
  // A second subscription round trip: anything else retained would have arrived by now.
  await reader.subscribeAsync('nothing/here', { qos: 0 })
  assert.deepEqual(retained, ['homeassistant/sensor/a/config={"name":"a"}'], 'the retained message is back and the cleared one is not')
})

test('three nodes all SIGKILLed and started again keep retained messages, sessions and their queues', async (t) => {
  const { hosts, overridesOf } = await threeStoringNodes(t)
  const startAll = async (): Promise<ProcessNode[]> => await Promise.all(hosts.map(async (host, i) => await startProcessNode(overridesOf(i), { host })))
  let nodes = await startAll()
  t.after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })
  await waitForView(nodes, nodes, 'alive', 20_000)
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]

  const subId = uniqueId('persistent3')
  await offlineSubscriber(a.mqttUrl, subId, 'orders/#')
  const pub = await connect(b.mqttUrl, { protocolVersion: 5 })
  await publishAll(pub, 'z2m/lamp', ['{"state":"ON"}'], { qos: 1, retain: true })
  const queued = Array.from({ length: 10 }, (_, i) => `order-${i}`)
  await publishAll(pub, 'orders/new', queued, { qos: 1 })
  await endAll(pub)
  const pub2 = await connect(c.mqttUrl, { protocolVersion: 5 })
  await publishAll(pub2, 'orders/new', ['order-10'], { qos: 2 })
  await endAll(pub2)

  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
  nodes = await startAll()
  await waitForView(nodes, nodes, 'alive', 20_000)

  // The retained message, on every node.
  for (const n of nodes) {
    const reader = await connect(n.mqttUrl)
    const seen: string[] = []
    reader.on('message', (topic, payload) => seen.push(`${topic}=${payload.toString()}`))
    await reader.subscribeAsync('z2m/#', { qos: 1 })
    await waitForCount(seen, 1, `the retained message on ${n.host}`)
    assert.deepEqual(seen, ['z2m/lamp={"state":"ON"}'])
    await endAll(reader)
  }

  // The session, resumed on another node than its home: it is fetched from there.
  const { client: sub, connack, got } = await connectWithConnack(c.mqttUrl, { clientId: subId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } })
  t.after(async () => { await endAll(sub) })
  assert.equal(connack.sessionPresent, true, 'session present after the whole cluster restarted')
  await waitForCount(got, queued.length + 1, 'queued messages after the restart', 10_000)
  assert.deepEqual(got.map((m) => m.payload), [...queued, 'order-10'], 'every queued message, once, in order')
})

test('one node of three SIGKILLed and restarted while the others serve: its sessions are not lost or doubled', async (t) => {
  const { hosts, overridesOf } = await threeStoringNodes(t)
  const nodes = await Promise.all(hosts.map(async (host, i) => await startProcessNode(overridesOf(i), { host })))
  t.after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })
  await waitForView(nodes, nodes, 'alive', 20_000)

  const subId = uniqueId('persistent1of3')
  await offlineSubscriber(nodes[0]!.mqttUrl, subId, 'alerts/#')
  const pub = await connect(nodes[1]!.mqttUrl, { protocolVersion: 5 })
  t.after(async () => { await endAll(pub) })
  const before = Array.from({ length: 5 }, (_, i) => `before-${i}`)
  await publishAll(pub, 'alerts/x', before, { qos: 1 })

  await nodes[0]!.stop('SIGKILL')
  // While it is down (its peers promote the replica of the session) ...
  const during = Array.from({ length: 5 }, (_, i) => `during-${i}`)
  await publishAll(pub, 'alerts/x', during, { qos: 1 })
  nodes[0] = await startProcessNode(overridesOf(0), { host: hosts[0] })
  await waitForView(nodes, nodes, 'alive', 20_000)
  // ... and after it is back (both copies are routed now).
  const after = Array.from({ length: 5 }, (_, i) => `after-${i}`)
  await publishAll(pub, 'alerts/x', after, { qos: 1 })

  const { client: sub, connack, got } = await connectWithConnack(nodes[0]!.mqttUrl, { clientId: subId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } })
  t.after(async () => { await endAll(sub) })
  assert.equal(connack.sessionPresent, true)
  const all = [...before, ...during, ...after]
  await waitForCount(got, all.length, 'every message', 10_000)
  // Anything extra would have arrived with the rest; one more round trip to be sure.
  await sub.subscribeAsync('nothing/here', { qos: 0 })
  assert.deepEqual(got.map((m) => m.payload), all, 'every message once, in order')
})

test('a clean start acknowledged (sync always) stays a clean start when the node is killed right after its CONNACK', async (t) => {
  const start = await storingNode(t)
  let node = await start()
  const ids = Array.from({ length: 20 }, () => uniqueId('clean-start'))
  for (const id of ids) await offlineSubscriber(node.mqttUrl, id, `cs/${id}`)

  // Every client starts clean at once; the node dies as soon as the last CONNACK is in.
  const clean = await Promise.all(ids.map(async (clientId) => (await connectWithConnack(node.mqttUrl, { clientId, clean: true, protocolVersion: 4 })).client))
  await node.stop('SIGKILL')
  for (const c of clean) c.end(true)

  node = await start()
  const present: string[] = []
  for (const clientId of ids) {
    const { client, connack } = await connectWithConnack(node.mqttUrl, { clientId, clean: false, protocolVersion: 4 })
    if (connack.sessionPresent) present.push(clientId)
    await client.endAsync()
  }
  assert.deepEqual(present, [], 'no session ended by an acknowledged clean start is read back from disk')
})

test('a subscription acknowledged (sync always) survives a kill right after its SUBACK', async (t) => {
  const start = await storingNode(t)
  let node = await start()
  const ids = Array.from({ length: 20 }, () => uniqueId('subscribed'))
  // Every client subscribes at once; the node dies as soon as the last SUBACK is in.
  const subscribers = await Promise.all(ids.map(async (clientId) => {
    const c = await connect(node.mqttUrl, { clientId, clean: false, protocolVersion: 4 })
    await c.subscribeAsync(`sa/${clientId}`, { qos: 1 })
    return c
  }))
  await node.stop('SIGKILL')
  for (const c of subscribers) c.end(true)

  node = await start()
  const missing: string[] = []
  for (const clientId of ids) {
    const { client, connack } = await connectWithConnack(node.mqttUrl, { clientId, clean: false, protocolVersion: 4 })
    if (!connack.sessionPresent) missing.push(clientId)
    await client.endAsync()
  }
  assert.deepEqual(missing, [], 'every acknowledged subscription is read back from disk')
})

test('after a whole-cluster restart, the first node back acknowledges a QoS 1 publish only once the sessions on the others\' disks are routed', async (t) => {
  const { nodes, start } = await startStoringCluster(t, { expected_members: 3, config: FAST })
  const subId = uniqueId('first-back')
  const topic = `first-back/${subId}`
  await offlineSubscriber(nodes[1]!.mqttUrl, subId, topic) // its session is on node 1's disk
  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))

  const first = await start(0)
  const pub = await connect(first.mqttUrl, { protocolVersion: 5 })
  t.after(() => pub.end(true))
  let acked = false
  const publish = pub.publishAsync(topic, 'while the others were down', { qos: 1 }).then(() => { acked = true })
  // The others come back while the publish waits (no fixed wait: they start now).
  await Promise.all([start(1), start(2)])
  await publish
  assert.equal(acked, true)
  const { client, connack, got } = await connectWithConnack(nodes[1]!.mqttUrl, { clientId: subId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } })
  t.after(() => client.end(true))
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 1, 'the message acknowledged by the first node back', 10_000)
  assert.deepEqual(got.map((m) => m.payload), ['while the others were down'])
})

test('after a whole-cluster restart a member that stays down: its sessions are taken over from the replicas on disk, and publishes wait for their routes', async (t) => {
  const { nodes, start } = await startStoringCluster(t, { expected_members: 3, config: FAST }, { peers_wait: 4000 })
  const subId = uniqueId('absent-home')
  const topic = `absent-home/${subId}`
  await offlineSubscriber(nodes[2]!.mqttUrl, subId, topic) // its home is node 2, which stays down
  const before = await connect(nodes[0]!.mqttUrl, { protocolVersion: 5 })
  await before.publishAsync(topic, 'queued before the restart', { qos: 1 })
  await endAll(before)
  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))

  const back = await Promise.all([start(0), start(1)])
  // The one that read the session's replica from its disk, and the other.
  const holder = back.findIndex((n) => /"replicas":1\b/.test(n.output()))
  assert.notEqual(holder, -1, 'one of the two read the replica back from its disk')
  const other = back[1 - holder]!
  // Both on the node without the replica, within the start window: the
  // publish is acknowledged only once the holder took the session over and
  // routed it, and the resume fetches it from there.
  const pub = await connect(other.mqttUrl, { protocolVersion: 5 })
  t.after(() => pub.end(true))
  const published = pub.publishAsync(topic, 'published while its home was down', { qos: 1 })
  const { client, connack, got } = await connectWithConnack(other.mqttUrl, { clientId: subId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, connectTimeout: 30_000 })
  t.after(() => client.end(true))
  await published
  // Its logs in the message: a failure here (seen once in CI, not reproduced since) must say what the nodes did.
  assert.equal(connack.sessionPresent, true, `the session of the member that stayed down is resumed\n--- holder ---\n${back[holder]!.output().slice(-4000)}\n--- other ---\n${other.output().slice(-4000)}`)
  await waitForCount(got, 2, 'the queued message and the one published during the window', 10_000)
  assert.deepEqual(got.map((m) => m.payload), ['queued before the restart', 'published while its home was down'])
  assert.match(back[holder]!.output(), /member not back within the start window/)

  // The member comes back late: its disk copy yields to the session that moved on, nothing twice.
  const late = await start(2)
  await waitForView(nodes, nodes, 'alive', 20_000)
  const pub2 = await connect(late.mqttUrl, { protocolVersion: 5 })
  t.after(() => pub2.end(true))
  await pub2.publishAsync(topic, 'after its home came back', { qos: 1 })
  await waitForCount(got, 3, 'the message published on the member back late', 10_000)
  await pub2.publishAsync(`${topic}/fence`, 'x', { qos: 1 }) // a round trip: a second copy would be on its way by now
  assert.deepEqual(got.map((m) => m.payload), ['queued before the restart', 'published while its home was down', 'after its home came back'])
})
