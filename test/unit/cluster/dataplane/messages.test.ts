import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { MessageDecodeError, decodeMessage, encodeMessage, type DataPlaneMessage } from '../../../../src/server/cluster/dataplane/messages.js'
import { seededRandom } from '../../../../src/server/cluster/membership/clock.js'

const stamp = { wall: 1_700_000_000_123, logical: 4, node: 'node-b' }

test('every message kind round-trips', () => {
  const messages: DataPlaneMessage[] = [
    { kind: 'publish', publish: { origin: 'node-a', brokerId: 'node-a@1f', brokerCounter: 7, topic: 'home/ä/temp', payload: Buffer.from([0, 1, 2, 255]), qos: 2, retain: true, plain: true, shared: ['$share/g/home/+/temp'], sessions: [], messageExpiry: 1_700_000_060_000 } },
    { kind: 'publish', publish: { origin: 'node-a', brokerId: 'node-a@1f', brokerCounter: 8, topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, plain: false, shared: [], sessions: ['late-1', 'late-2'] } },
    { kind: 'retained', entry: { topic: 'r', stamp, qos: 1, payload: Buffer.from('v') } },
    { kind: 'retained', entry: { topic: 'r', stamp, qos: 0, payload: Buffer.alloc(0) } },
    { kind: 'route-delta', delta: { version: 7, filter: '$share/g/a/#', count: 3 } },
    { kind: 'route-table', table: { version: 9, filters: [['a/+', 1], ['$share/g/x', 2]] } },
    { kind: 'sync-digest', round: 3, digest: randomBytes(64) },
    { kind: 'sync-summary', round: 3, buckets: [1, 5], summary: [['a', '000000000001.00000000.n']] },
    { kind: 'sync-push', round: 3, pull: ['x', 'y'], entries: [{ topic: 'z', stamp, qos: 2, payload: Buffer.from('zz') }] },
    { kind: 'sync-entries', round: 3, entries: [] },
    { kind: 'client-connected', clientId: 'sensor-ä-1', stamp },
    {
      kind: 'replica',
      ops: [
        { clientId: 'c', op: 'snapshot', snapshot: { stamp, connected: true, subscriptions: [{ topic: 'a/#', qos: 1 }], queue: [{ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, messageId: 3, brokerId: 'b@1', brokerCounter: 2 }], ledger: ['b@1\u00002'], incoming: [{ cmd: 'publish', topic: 'q', payload: Buffer.from('z'), qos: 2, messageId: 12, brokerId: 'b@1', brokerCounter: 5 }], will: { cmd: 'publish', topic: 'w', payload: Buffer.from('bye') } } },
        { clientId: 'd', op: 'snapshot', snapshot: { stamp, connected: false, subscriptions: [], queue: [], ledger: [], incoming: [], will: null, promoted: true } },
        { clientId: 'c', op: 'enqueue', packet: { cmd: 'publish', topic: 'a/c', payload: Buffer.from('y'), qos: 2 }, at: 0 },
        { clientId: 'c', op: 'sent', stamp: 'b@1\u00003', messageId: 4, qos: 2 },
        { clientId: 'c', op: 'release', messageId: 4 },
        { clientId: 'c', op: 'clear', messageId: 3 },
        { clientId: 'c', op: 'clear', stamp: 'b@1\u00009' },
        { clientId: 'c', op: 'incoming', messageId: 12 },
        { clientId: 'c', op: 'incoming', messageId: 13, packet: { cmd: 'publish', topic: 'q', payload: Buffer.from('z'), qos: 2, messageId: 13, brokerId: 'b@1', brokerCounter: 5 } },
        { clientId: 'c', op: 'connection', connection: { connected: false, disconnectedAt: 5, expiry: 60 }, stamp },
        { clientId: 'c', op: 'drop' }
      ]
    },
    { kind: 'session-transfer', requestId: 'q', clientId: 'c', session: { stamp, subscriptions: [{ topic: 'a', qos: 2 }], queue: [], ledger: ['x\u00001'], incoming: [{ cmd: 'publish', topic: 'q', payload: Buffer.from('z'), qos: 2, messageId: 3, brokerId: 'b@1', brokerCounter: 5 }], rescueFrom: 'node-a' }, replica: true },
    { kind: 'rescue-request', from: 'node-a', requestId: 'r1' },
    { kind: 'rescue-request', from: 'node-a', requestId: 'r2', filters: ['a/#', 'storm/17'] },
    { kind: 'rescue-request', from: 'node-a', requestId: 'r3', filters: [], takeover: true },
    { kind: 'rescue', requestId: 'r1', publish: { origin: 'node-b', brokerId: 'node-b@9', brokerCounter: 7, topic: 'a/b', payload: Buffer.from('p'), qos: 1, retain: false, plain: true, shared: [], sessions: [] } },
    { kind: 'rescue-done', requestId: 'r1' },
    { kind: 'barrier-request', id: 'b1', from: 'node-c' },
    { kind: 'barrier-done', id: 'b1' },
    { kind: 'replica-lost', clientIds: ['c', 'sensor-ä-1'] },
    { kind: 'sessions-held', clientIds: ['c', 'sensor-ä-1'] },
    { kind: 'sessions-newer', clientIds: [] },
    { kind: 'replicas-done', home: 'process:node-a@1' }
  ]
  for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m, m.kind)
})

test('messages larger than the writer first guessed grow it, and come out byte for byte', () => {
  // Multi-byte strings (the size hint counts characters), a payload past the pool size, and a sync of many entries.
  const publish: DataPlaneMessage = { kind: 'publish', publish: { origin: 'nœud-ä', brokerId: 'nœud-ä@1f', brokerCounter: 9, topic: '温度/'.repeat(200), payload: randomBytes(70_000), qos: 1, retain: false, plain: true, shared: ['$share/ö/#'], sessions: ['é'.repeat(300)] } }
  const entries = Array.from({ length: 500 }, (_, i) => ({ topic: `t/${i}/ü`, stamp, qos: 1 as const, payload: randomBytes(i) }))
  const sync: DataPlaneMessage = { kind: 'sync-entries', round: 2, entries }
  for (const m of [publish, sync]) {
    const bytes = encodeMessage(m)
    assert.deepEqual(decodeMessage(bytes), m)
    assert.deepEqual(encodeMessage(decodeMessage(bytes)), bytes, 'encoding is deterministic')
  }
})

test('payloads inside JSON sections travel as {"$b64": ...}, the form earlier releases read (rolling upgrades)', () => {
  const m: DataPlaneMessage = { kind: 'replica', ops: [{ clientId: 'c', op: 'enqueue', packet: { cmd: 'publish', topic: 'a', payload: Buffer.from('xyz'), qos: 1 }, at: 0 }] }
  const bytes = encodeMessage(m)
  assert.ok(bytes.includes('{"$b64":"eHl6"}'), 'a payload is a base64 string in an object of its own')
  assert.equal(bytes.includes('"type":"Buffer"'), false, "never Buffer's toJSON form")
  // What an earlier release sent: the same bytes decode to the same message.
  assert.deepEqual(decodeMessage(bytes), m)
})

test('MQTT 5 properties survive the hop; hop-local ones are dropped (the expiry travels as an absolute time)', () => {
  const properties = {
    payloadFormatIndicator: true,
    messageExpiryInterval: 120,
    contentType: 'application/json',
    responseTopic: 'reply/here',
    correlationData: Buffer.from([1, 2, 3, 0, 250]),
    userProperties: { a: '1', multi: ['x', 'y'] },
    topicAlias: 5,
    subscriptionIdentifier: [1, 2]
  }
  const m = decodeMessage(encodeMessage({ kind: 'publish', publish: { origin: 'a', brokerId: 'a@1', brokerCounter: 7, topic: 't', payload: Buffer.from('p'), qos: 1, retain: false, plain: true, shared: [], sessions: [], properties } }))
  assert.equal(m.kind, 'publish')
  if (m.kind !== 'publish') return
  const { topicAlias: _a, subscriptionIdentifier: _s, messageExpiryInterval: _e, ...crossing } = properties
  assert.deepEqual(m.publish.properties, crossing)
  assert.ok(Buffer.isBuffer(m.publish.properties?.correlationData), 'correlation data stays binary')
  const e = decodeMessage(encodeMessage({ kind: 'retained', entry: { topic: 't', stamp, qos: 1, payload: Buffer.from('p'), properties: { contentType: 'text/plain', topicAlias: 3 } } }))
  assert.ok(e.kind === 'retained')
  assert.deepEqual(e.entry.properties, { contentType: 'text/plain' })
})

test('malformed messages throw MessageDecodeError and nothing else', () => {
  const random = seededRandom(3)
  const good = encodeMessage({ kind: 'sync-push', round: 1, pull: ['a'], entries: [{ topic: 'z', stamp, qos: 2, payload: Buffer.from('zz') }] })
  for (let i = 0; i < 3000; i++) {
    let b: Buffer
    if (i % 3 === 0) b = randomBytes(Math.floor(random() * 64))
    else if (i % 3 === 1) b = good.subarray(0, Math.floor(random() * good.length))
    else { b = Buffer.from(good); const at = Math.floor(random() * b.length); b[at] = b[at]! ^ (1 + Math.floor(random() * 255)) }
    try {
      decodeMessage(b)
    } catch (err) {
      assert.ok(err instanceof MessageDecodeError, `input ${b.toString('hex')}: ${String(err)}`)
    }
  }
  assert.throws(() => decodeMessage(Buffer.from([0x09])), MessageDecodeError)
  const bad = (ops: unknown): Buffer => { const j = Buffer.from(JSON.stringify({ ops })); const h = Buffer.alloc(5); h[0] = 13; h.writeUInt32BE(j.length, 1); return Buffer.concat([h, j]) }
  for (const ops of [[{ op: 'enqueue' }], [{ clientId: 'c', op: 'enqueue', packet: { cmd: 'publish' } }], [{ clientId: 'c', op: 'nope' }], [{ clientId: 'c', op: 'clear', messageId: 0 }], [{ clientId: 'c', op: 'sent', stamp: 's', messageId: 1, qos: 0 }], 'x']) {
    assert.throws(() => decodeMessage(bad(ops)), MessageDecodeError, JSON.stringify(ops))
  }
  assert.throws(() => decodeMessage(Buffer.concat([encodeMessage({ kind: 'route-delta', delta: { version: 1, filter: 'a', count: 1 } }), Buffer.from([0])])), MessageDecodeError)
})
