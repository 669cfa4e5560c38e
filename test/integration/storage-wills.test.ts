// Wills on disk (storage.dir): a client connected to a node that is killed
// is owed its will (its connection ended without DISCONNECT); the node that
// comes back on the same store publishes it, respecting the Will Delay
// Interval, and not for a client that came back first or said DISCONNECT.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { startProcessNode, type ProcessNode, type ConfigOverrides } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { waitForView, FAST } from '../helpers/cluster.js'
import { connect, connectWithConnack, waitForCount, endAll, uniqueId, offlineSubscriber } from '../helpers/mqtt-clients.js'
import { metricSum } from '../helpers/metrics.js'

function tmpDir (t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-wills-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const SESSION = { clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 3600 } }

/** `count` loopback hosts seeding each other; `overridesOf(i)` is node i's config: its own store (sync always), `count` expected members. */
async function storingHosts (t: { after: (fn: () => void) => void }, count: number): Promise<{ hosts: string[], overridesOf: (i: number) => ConfigOverrides }> {
  const hosts: string[] = []
  for (let i = 0; i < count; i++) hosts.push(await freeLoopbackAddress())
  const dirs = hosts.map(() => tmpDir(t))
  const seeds = hosts.map((h) => `${h}:7946`)
  const overridesOf = (i: number): ConfigOverrides => ({
    storage: { dir: dirs[i]!, sync: 'always' },
    discovery: { seeds, formation_wait_min: 200, formation_wait_max: 800, resolve_interval: 1000 },
    cluster: { expected_members: count, config: FAST }
  })
  return { hosts, overridesOf }
}

test('a client connected when its node was SIGKILLed gets its will published after the restart; one that left with DISCONNECT does not', { timeout: 60_000 }, async (t) => {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  const overrides: ConfigOverrides = { storage: { dir, sync: 'always' } }
  let node: ProcessNode = await startProcessNode(overrides, { host })
  t.after(async () => { await node.stop('SIGKILL') })

  // A persistent watcher of the status topics, offline at the crash: the wills queue for it.
  const watcherId = uniqueId('watcher')
  await offlineSubscriber(node.mqttUrl, watcherId, 'status/#')

  const will = (name: string, extra: object = {}): object => ({ will: { topic: `status/${name}`, payload: Buffer.from(`${name} offline`), qos: 1, retain: false, ...extra } })
  // MQTT 3.1.1 and MQTT 5 devices, connected at the crash; one more that disconnects cleanly first.
  const v3 = await connect(node.mqttUrl, { clientId: uniqueId('dev3'), protocolVersion: 4, ...will('dev3') })
  const v5 = await connect(node.mqttUrl, { clientId: uniqueId('dev5'), protocolVersion: 5, ...will('dev5') })
  const polite = await connect(node.mqttUrl, { clientId: uniqueId('polite'), protocolVersion: 5, ...will('polite') })
  await polite.endAsync()
  // A retained will, for a subscriber that comes after the restart (a Home Assistant availability topic).
  const ha = await connect(node.mqttUrl, { clientId: uniqueId('ha'), protocolVersion: 4, ...will('ha', { retain: true }) })
  // Writes of this turn reach the disk (sync always) before the kill.
  await flushed(node)

  assert.equal(await node.stop('SIGKILL'), 'SIGKILL')
  for (const c of [v3, v5, ha]) c.end(true)
  node = await startProcessNode(overrides, { host })
  assert.match(node.output(), /"wills":3/, 'the log says three wills were read back')

  const { client: back, connack, got } = await connectWithConnack(node.mqttUrl, { clientId: watcherId, ...SESSION })
  t.after(async () => { await endAll(back) })
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 3, 'the wills of the three clients connected at the crash')
  assert.deepEqual(got.map((m) => m.payload).sort(), ['dev3 offline', 'dev5 offline', 'ha offline'])

  // The retained will is there for a newcomer, and no will comes twice or for the polite client.
  const reader = await connect(node.mqttUrl)
  t.after(async () => { await endAll(reader) })
  const retained: string[] = []
  reader.on('message', (_t, p) => retained.push(p.toString()))
  await reader.subscribeAsync('status/ha', { qos: 1 })
  await waitFor(() => retained.length === 1, { message: 'the retained will' })
  assert.deepEqual(retained, ['ha offline'])
  assert.equal(got.length, 3, 'nothing more: no will for a DISCONNECT')

  // Published once: another restart owes nothing.
  await back.endAsync()
  assert.equal(await node.stop('SIGKILL'), 'SIGKILL')
  node = await startProcessNode(overrides, { host })
  assert.match(node.output(), /"wills":0/, 'published wills are gone from the disk')
})

test('a will with a Will Delay Interval waits for it after the restart, and is not published when its client comes back first', { timeout: 60_000 }, async (t) => {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  const overrides: ConfigOverrides = { storage: { dir, sync: 'always' } }
  let node: ProcessNode = await startProcessNode(overrides, { host })
  t.after(async () => { await node.stop('SIGKILL') })

  const watcherId = uniqueId('watcher')
  await offlineSubscriber(node.mqttUrl, watcherId, 'late/#')
  const delayed = { protocolVersion: 5 as const, properties: { sessionExpiryInterval: 60 } }
  const slowId = uniqueId('slow')
  const backId = uniqueId('back')
  const slow = await connect(node.mqttUrl, { clientId: slowId, ...delayed, will: { topic: 'late/slow', payload: Buffer.from('slow offline'), qos: 1, retain: false, properties: { willDelayInterval: 2 } } })
  const returning = await connect(node.mqttUrl, { clientId: backId, ...delayed, will: { topic: 'late/back', payload: Buffer.from('back offline'), qos: 1, retain: false, properties: { willDelayInterval: 3 } } })
  await flushed(node)

  assert.equal(await node.stop('SIGKILL'), 'SIGKILL')
  for (const c of [slow, returning]) c.end(true)
  // The delays count from the restart (the crash time is not known): from before the new process read its store.
  const restarted = Date.now()
  node = await startProcessNode(overrides, { host })
  // One device reconnects before its will delay runs out.
  const again = await connect(node.mqttUrl, { clientId: backId, ...delayed })
  t.after(async () => { await endAll(again) })

  const { client: w, got } = await connectWithConnack(node.mqttUrl, { clientId: watcherId, ...SESSION })
  t.after(async () => { await endAll(w) })
  await waitForCount(got, 1, 'the delayed will', 10_000)
  assert.ok(Date.now() - restarted >= 2000, `published after its 2 s delay (${Date.now() - restarted} ms after the restart)`)
  assert.deepEqual(got.map((m) => m.payload), ['slow offline'])
  // The returning client's will would have come 3 s after the restart: wait past it.
  await waitFor(() => Date.now() - restarted > 5000, { timeout: 8000, message: 'past the second will delay' })
  assert.deepEqual(got.map((m) => m.payload), ['slow offline'], 'no will for the client that came back')
})

test('after a whole-cluster restart the will of a client connected at the crash reaches a subscriber on the other node', { timeout: 90_000 }, async (t) => {
  const { hosts, overridesOf } = await storingHosts(t, 2)
  const startAll = async (): Promise<ProcessNode[]> => await Promise.all(hosts.map(async (host, i) => await startProcessNode(overridesOf(i), { host })))
  let nodes = await startAll()
  t.after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })
  await waitForView(nodes, nodes, 'alive', 20_000)
  const [a, b] = nodes as [ProcessNode, ProcessNode]

  const watcherId = uniqueId('watcher')
  await offlineSubscriber(b.mqttUrl, watcherId, 'status/#')
  const device = await connect(a.mqttUrl, { clientId: uniqueId('dev'), protocolVersion: 4, will: { topic: 'status/dev', payload: Buffer.from('dev offline'), qos: 1, retain: false } })
  await flushed(a)

  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
  device.end(true)
  nodes = await startAll()
  await waitForView(nodes, nodes, 'alive', 20_000)
  const [, b2] = nodes as [ProcessNode, ProcessNode]
  const { client: back, connack, got } = await connectWithConnack(b2.mqttUrl, { clientId: watcherId, ...SESSION })
  t.after(async () => { await endAll(back) })
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 1, 'the will from the other node', 20_000)
  assert.deepEqual(got.map((m) => m.payload), ['dev offline'])
  // Nothing else came before a message published after it on the same path (no second copy).
  const pub = await connect(nodes[0]!.mqttUrl)
  t.after(async () => { await endAll(pub) })
  await pub.publishAsync('status/marker', 'marker', { qos: 1 })
  await waitForCount(got, 2, 'the marker after the will')
  assert.deepEqual(got.map((m) => m.payload), ['dev offline', 'marker'])
})

test('one node of three SIGKILLed and restarted alone: the will comes once, from the replica holder, not again from the disk', { timeout: 90_000 }, async (t) => {
  const { hosts, overridesOf } = await storingHosts(t, 3)
  const nodes = await Promise.all(hosts.map(async (host, i) => await startProcessNode(overridesOf(i), { host })))
  t.after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })
  await waitForView(nodes, nodes, 'alive', 20_000)

  const watcherId = uniqueId('watcher')
  const watcher = await connect(nodes[1]!.mqttUrl, { clientId: watcherId, ...SESSION })
  await watcher.subscribeAsync('status/#', { qos: 1 })
  await watcher.endAsync()
  const device = await connect(nodes[0]!.mqttUrl, { clientId: uniqueId('dev'), protocolVersion: 4, will: { topic: 'status/dev', payload: Buffer.from('dev offline'), qos: 1, retain: false } })
  // The watcher's session and the device's will are replicated.
  await waitFor(async () => (await Promise.all(nodes.map(async (n) => await metricSum(n.apiUrl, 'broker_cluster_session_replicas').catch(() => 0)))).reduce((a, b) => a + b, 0) >= 2, { timeout: 10_000, message: 'the replicas held' })
  await flushed(nodes[0]!)

  assert.equal(await nodes[0]!.stop('SIGKILL'), 'SIGKILL')
  device.end(true)
  nodes[0] = await startProcessNode(overridesOf(0), { host: hosts[0] })
  const restarted = nodes[0]
  const { client: back, got } = await connectWithConnack(nodes[1]!.mqttUrl, { clientId: watcherId, ...SESSION })
  t.after(async () => { await endAll(back) })
  await waitForCount(got, 1, 'the will', 20_000)
  await waitFor(() => /stored will left to the replica holder|publishing the will of a client connected when this node stopped/.test(restarted.output()), { timeout: 20_000, message: 'the restarted node to decide on the stored will' })
  // A message from the restarted node after that decision: a will it published would come before it.
  const pub = await connect(restarted.mqttUrl)
  t.after(async () => { await endAll(pub) })
  await pub.publishAsync('status/marker', 'marker', { qos: 1 })
  await waitForCount(got, 2, 'the marker')
  assert.deepEqual(got.map((m) => m.payload), ['dev offline', 'marker'], 'the will once')
})

test('the will reaches a mosquitto_sub subscriber (second client stack)', { timeout: 60_000, skip: hasMosquittoSub() ? false : 'mosquitto_sub not installed' }, async (t) => {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  const overrides: ConfigOverrides = { storage: { dir, sync: 'always' } }
  let node: ProcessNode = await startProcessNode(overrides, { host })
  t.after(async () => { await node.stop('SIGKILL') })
  const port = new URL(node.mqttUrl).port
  const device = await connect(node.mqttUrl, { clientId: uniqueId('dev'), protocolVersion: 4, will: { topic: 'status/dev', payload: Buffer.from('dev offline'), qos: 1, retain: true } })
  await flushed(node)
  assert.equal(await node.stop('SIGKILL'), 'SIGKILL')
  device.end(true)
  node = await startProcessNode(overrides, { host })
  const sub = spawn('mosquitto_sub', ['-h', host, '-p', port, '-t', 'status/dev', '-C', '1', '-W', '10', '-q', '1'])
  let out = ''
  sub.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => sub.on('exit', resolve))
  assert.equal(code, 0)
  assert.equal(out.trim(), 'dev offline')
})

function hasMosquittoSub (): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'mosquitto_sub')))
}

/**
 * Waits until what the node wrote so far is on disk: with sync always, a
 * retained QoS 1 publish is acknowledged once the commit holding it is
 * flushed, and LMDB commits are ordered, so the wills written before are too.
 */
async function flushed (node: ProcessNode): Promise<void> {
  const c = await connect(node.mqttUrl)
  await c.publishAsync('sync/flush', String(Date.now()), { qos: 1, retain: true })
  await c.endAsync()
}

test('after a whole-cluster restart a client back on another node before its old node rejoined gets no will from the old node\'s disk', { timeout: 90_000 }, async (t) => {
  const { hosts, overridesOf } = await storingHosts(t, 2)
  const nodes = await Promise.all(hosts.map(async (host, i) => await startProcessNode(overridesOf(i), { host })))
  t.after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })
  await waitForView(nodes, nodes, 'alive', 20_000)
  const deviceId = uniqueId('dev')
  const will = { topic: 'status/dev', payload: Buffer.from('dev offline'), qos: 1 as const, retain: false }
  const device = await connect(nodes[0]!.mqttUrl, { clientId: deviceId, protocolVersion: 4, will })
  await flushed(nodes[0]!)
  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
  device.end(true)

  // Node 1 comes back first; the device reconnects there, and a watcher listens.
  nodes[1] = await startProcessNode(overridesOf(1), { host: hosts[1] })
  const again = await connect(nodes[1].mqttUrl, { clientId: deviceId, protocolVersion: 4, will })
  t.after(async () => { await endAll(again) })
  const watcher = await connect(nodes[1].mqttUrl, { protocolVersion: 5 })
  t.after(async () => { await endAll(watcher) })
  const got: string[] = []
  watcher.on('message', (_topic, payload) => got.push(payload.toString()))
  await watcher.subscribeAsync('status/#', { qos: 1 })

  // Node 0, whose disk holds the device's will, comes back: node 1 tells it the device is online.
  nodes[0] = await startProcessNode(overridesOf(0), { host: hosts[0] })
  await waitFor(() => /stored will not published: its client connected again/.test(nodes[0]!.output()), { timeout: 20_000, message: 'node 0 to drop the stored will' })
  const pub = await connect(nodes[0].mqttUrl)
  t.after(async () => { await endAll(pub) })
  await pub.publishAsync('status/marker', 'marker', { qos: 1 })
  await waitFor(() => got.includes('marker'), { message: 'the marker' })
  assert.deepEqual(got, ['marker'], 'no will for a device that is online')
})
