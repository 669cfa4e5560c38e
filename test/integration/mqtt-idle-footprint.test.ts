// What an idle connection costs in our layers (issue 18): shared functions
// and listeners instead of closures per connection, state made on first use,
// and the close steps every layer still runs from the one close listener a
// socket gets (the ACL forgets the client, the session sender stops, the log
// says why and from where). Real node, real clients.
import { test, after } from 'node:test'
import { createRequire } from 'node:module'
import { setFlagsFromString } from 'node:v8'
import type { EventEmitter } from 'node:events'
import assert from 'node:assert/strict'
import type { MqttClient, IConnackPacket, IPublishPacket } from 'mqtt'
import type { BrokerNode } from '../../src/server/node.js'
import { brokerInternals, internals, type ClientInternals } from '../../src/server/mqtt/aedes-internals.js'
import { destroyNow } from '../../src/server/mqtt/disconnect.js'
import { startLoggedNode, type ConfigOverrides, type LogLine as Line } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, RawClient, uniqueId } from '../helpers/mqtt-clients.js'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate: (packet: object, opts: { protocolVersion: number }) => Buffer }

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

async function start (overrides: ConfigOverrides = {}): Promise<{ node: BrokerNode, host: string, port: number, url: string, lines: Line[] }> {
  const { node, host, config, lines } = await startLoggedNode(overrides)
  cleanups.push(() => node.stop())
  return { node, host, port: config.mqtt.port, url: `mqtt://${host}:${config.mqtt.port}`, lines }
}

function clientOf (node: BrokerNode, id: string): ClientInternals {
  const c = brokerInternals(node.mqtt.aedes).clients[id]
  assert.ok(c !== undefined, `client ${id} connected`)
  return internals(c)
}

// V8's own word on an object's mode (fast properties or a dictionary); the
// flag applies to functions compiled after it is set.
setFlagsFromString('--allow-natives-syntax')
const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean
const listenerTable = (e: unknown): object => (e as { _events: object })._events

const AUTH = { auth: [{ username: 'a', allow: true }, { username: 'b', allow: true }] }

test('an idle connection gets shared functions and at most two listeners per socket event, not closures of ours', async () => {
  const { node, url } = await start({ mqtt: AUTH as never })
  const ids = [uniqueId('idle-v4'), uniqueId('idle-v5')]
  const clients: MqttClient[] = [
    await connect(url, { clientId: ids[0], protocolVersion: 4, username: 'a' }),
    await connect(url, { clientId: ids[1], protocolVersion: 5, username: 'a' })
  ]
  cleanups.push(async () => { for (const c of clients) await c.endAsync(true) })
  const [one, two] = ids.map((id) => clientOf(node, id!)) as [ClientInternals, ClientInternals]
  for (const c of [one, two]) {
    // aedes puts two on each; a third grows the listener array to 19 slots.
    for (const event of ['close', 'error', 'end']) {
      assert.ok(c.conn.listenerCount(event) <= 2, `'${event}' listeners: ${c.conn.listenerCount(event)}`)
    }
  }
  // The parser keeps what it reads of the CONNECT, not the packet.
  assert.deepEqual({ ...one._parser.settings }, { protocolVersion: 4, bridgeMode: false })
  assert.deepEqual({ ...two._parser.settings }, { protocolVersion: 5, bridgeMode: false })
  // No end-of-stream watch per socket (stream.finished()'s closures), no keep alive Timeout per client.
  assert.equal(one._eos, two._eos, 'one no-op in place of the end-of-stream watch')
  // (The sweep takes a client's keep alive once aedes calls it connected, just after its CONNACK.)
  await waitFor(() => one._keepaliveTimer === two._keepaliveTimer, { message: 'the keep alive sweep, not a timer each' })
  // One function for every connection, where there used to be a closure each.
  assert.equal(one.conn.destroy, two.conn.destroy, 'destroy() is shared')
  assert.equal(one.disconnect, two.disconnect, 'disconnect() is shared')
  assert.deepEqual(one._parser.listeners('packet'), two._parser.listeners('packet'), 'the inbound pipeline listener is shared')
  assert.equal(one.duplicates, two.duplicates, 'one forgetful duplicates table')
  // The listener tables of the client and its parser in fast mode, not the
  // dictionary a plain EventEmitter starts with (160 bytes more each).
  for (const c of [one, two]) {
    assert.ok(hasFastProperties(listenerTable(c)), 'the client\'s listener table is in fast mode')
    assert.ok(hasFastProperties(listenerTable(c._parser)), 'the parser\'s listener table is in fast mode')
  }
  // Once connected, one shared 'connected' listener stays (removing the last one would make a dictionary again).
  const connected = (c: ClientInternals): unknown[] => (c as unknown as EventEmitter).listeners('connected')
  assert.equal(connected(one).length, 1)
  assert.deepEqual(connected(one), connected(two))
  // Clean sessions never get a session sender.
  assert.equal(node.mqtt.senderOf(ids[0]!), undefined)
  assert.equal(node.mqtt.connections, 2)
})

test('the one close listener still runs every layer\'s close step: the ACL, the session sender, the connection count', async () => {
  const { node, url } = await start({ mqtt: AUTH as never })
  const stays = uniqueId('stays')
  const goes = uniqueId('goes')
  const a = await connect(url, { clientId: stays, protocolVersion: 4, username: 'a', clean: false })
  const b = await connect(url, { clientId: goes, protocolVersion: 5, username: 'b', clean: false, properties: { sessionExpiryInterval: 60 } })
  cleanups.push(async () => { await a.endAsync(true) })
  await waitFor(() => node.mqtt.senderOf(goes), { message: 'the persistent session\'s sender' })
  assert.equal(node.mqtt.connections, 2)
  await b.endAsync()
  await waitFor(() => node.mqtt.connections === 1 && node.mqtt.senderOf(goes) === undefined, { message: 'the closed connection to leave the server and its sender to stop' })
  assert.ok(node.mqtt.senderOf(stays) !== undefined, 'the connected one keeps its sender')
  // A reload that admits neither user disconnects only the connected client:
  // the closed one left the ACL's connected set through the close step.
  const gone = await node.mqtt.access.replace({ auth: [{ username: 'nobody', allow: true }], acl: [] } as never, true)
  assert.deepEqual(gone, [stays])
})

test('a silent client is still cut at 1.5 times its keep alive, and the log says why and from where', async () => {
  const { host, port, lines } = await start()
  const raw = await RawClient.open(host, port)
  cleanups.push(async () => { raw.destroy() })
  const id = uniqueId('silent')
  await raw.connect(id, 4, { keepalive: 1 })
  const t0 = Date.now()
  await raw.waitClosed(5000)
  const took = Date.now() - t0
  assert.ok(took >= 1000 && took < 4000, `closed after ${took} ms (keep alive 1 s: 1.5 s expected)`)
  const line = await waitFor(() => lines.find((l) => l.client === id && l.msg === 'client disconnected'), { message: 'the disconnect line' })
  assert.equal(line.reason, 'keep alive timeout')
  assert.match(String(line.remote), /^127\.\d+\.\d+\.\d+:\d+$/)
  assert.ok(lines.some((l) => l.client === id && l.msg === 'client connected'), 'the connect line')
})

test('the parser keeps half-received bytes in a plain buffer list, not a stream, and packets split byte by byte still parse', async () => {
  const { node, host, port } = await start()
  const raw = await RawClient.open(host, port)
  cleanups.push(async () => { raw.socket.destroy() })
  const id = uniqueId('split')
  const connectBytes = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 60 }, { protocolVersion: 4 })
  // One byte per write, each after the broker read the one before: every
  // packet is half received many times over.
  for (const byte of connectBytes) {
    raw.write(Buffer.of(byte))
    await new Promise((resolve) => setImmediate(resolve))
  }
  assert.equal((await raw.waitFor('connack') as IConnackPacket).returnCode, 0)
  const list = clientOf(node, id)._parser._list as unknown as object
  assert.equal(typeof (list as { pipe?: unknown }).pipe, 'undefined', 'no stream methods on the parser buffer')
  assert.equal(list.constructor.name, 'BufferList')
  const sub = mqttPacket.generate({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'split/#', qos: 1 }] }, { protocolVersion: 4 })
  const pub = mqttPacket.generate({ cmd: 'publish', topic: 'split/a', payload: Buffer.alloc(300, 1), qos: 1, messageId: 8 }, { protocolVersion: 4 })
  raw.write(sub.subarray(0, 3))
  await new Promise((resolve) => setImmediate(resolve))
  raw.write(Buffer.concat([sub.subarray(3), pub.subarray(0, 100)]))
  await new Promise((resolve) => setImmediate(resolve))
  raw.write(pub.subarray(100))
  assert.equal((await raw.waitFor('suback')).messageId, 7)
  const delivered = await raw.waitFor('publish') as IPublishPacket
  assert.equal(delivered.topic, 'split/a')
  assert.equal((delivered.payload as Buffer).length, 300)
})

test('keep alive by one sweep: a silent client goes at 1.5 times its keep alive, not before; one that sends stays; keep alive 0 never goes', async () => {
  const { node, host, port } = await start()
  const [silent, pinger, publisher, none] = await Promise.all([0, 1, 2, 3].map(async () => await RawClient.open(host, port)))
  const raws = [silent!, pinger!, publisher!, none!]
  cleanups.push(async () => { for (const r of raws) r.destroy() })
  const ids = raws.map(() => uniqueId('keepalive'))
  await Promise.all([silent!.connect(ids[0]!, 4, { keepalive: 1 }), pinger!.connect(ids[1]!, 4, { keepalive: 1 }), publisher!.connect(ids[2]!, 4, { keepalive: 1 }), none!.connect(ids[3]!, 4, { keepalive: 0 })])
  const t0 = Date.now()
  assert.equal(clientOf(node, ids[0]!)._keepaliveInterval, 1501, 'aedes\' interval: 1.5 times the keep alive, plus 1 ms')
  // A PINGREQ, or a QoS 1 PUBLISH (acknowledged by publish-acks.ts, past aedes' handler), every 0.7 s: each within the interval.
  let messageId = 0
  const sending = setInterval(() => {
    pinger!.send({ cmd: 'pingreq' })
    publisher!.send({ cmd: 'publish', topic: 'keepalive/x', payload: Buffer.from('x'), qos: 1, messageId: ++messageId })
  }, 700)
  try {
    await silent!.waitClosed(5000)
    const took = Date.now() - t0
    assert.ok(took >= 1400 && took < 3500, `silent client closed after ${took} ms (1.5 s, plus at most one sweep period)`)
    // Three more intervals: the others are still there.
    await waitFor(() => Date.now() - t0 > 6000, { timeout: 8000, message: 'three more keep alive intervals' })
    assert.deepEqual([pinger!.closed, publisher!.closed, none!.closed], [false, false, false])
    assert.ok(pinger!.packets.some((p) => p.cmd === 'pingresp'), 'PINGRESPs')
    assert.ok(publisher!.packets.filter((p) => p.cmd === 'puback').length >= 5, 'PUBACKs')
  } finally {
    clearInterval(sending)
  }
  // Once the sender stops, it goes too.
  await publisher!.waitClosed(5000)
})

test('a socket the server destroys outright still closes its client: unregistered, its will published', async () => {
  const { node, url, host, port } = await start()
  const watcher = await connect(url, { clientId: uniqueId('watcher'), protocolVersion: 4 })
  cleanups.push(async () => { await watcher.endAsync(true) })
  const willTopic = `wills/${uniqueId('w')}`
  await watcher.subscribeAsync(willTopic, { qos: 1 })
  const raw = await RawClient.open(host, port)
  cleanups.push(async () => { raw.destroy() })
  const id = uniqueId('cut')
  await raw.connect(id, 4, { will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false } })
  let will: string | undefined
  watcher.on('message', (topic, payload) => { if (topic === willTopic) will = payload.toString() })
  // No 'end' and no 'error' reach aedes: only the socket's 'close'.
  destroyNow(clientOf(node, id).conn)
  assert.equal(await waitFor(() => will, { message: 'the will' }), 'gone')
  await waitFor(() => brokerInternals(node.mqtt.aedes).clients[id] === undefined && node.mqtt.connections === 1, { message: 'the client to leave aedes and the server' })
  await raw.waitClosed()
})
