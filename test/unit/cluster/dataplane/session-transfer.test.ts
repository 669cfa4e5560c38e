import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MessageDecodeError, decodeMessage, encodeMessage, type DataPlaneMessage } from '../../../../src/server/cluster/dataplane/messages.js'
import { encodeStamp } from '../../../../src/server/cluster/dataplane/hlc.js'
import { SessionFetch, bestSession, type TransferredSession } from '../../../../src/server/cluster/dataplane/session-transfer.js'

const stamp = { wall: 1_700_000_000_123, logical: 4, node: 'node-b' }
const session: TransferredSession = {
  stamp,
  subscriptions: [{ topic: 'a/#', qos: 1, rh: 0, rap: false, nl: false }, { topic: 'b', qos: 2 }],
  queue: [
    { cmd: 'publish', topic: 'a/x', payload: Buffer.from([0, 1, 255]), qos: 1, retain: false, brokerId: 'x', brokerCounter: 3, messageId: 17, properties: { correlationData: Buffer.from([9, 8]), userProperties: { k: 'v' } }, messageExpiry: 1_700_000_100_000 },
    { cmd: 'publish', topic: 'b', payload: Buffer.alloc(0), qos: 2, brokerId: 'x', brokerCounter: 4 },
    { cmd: 'pubrel', messageId: 65535 }
  ],
  ledger: ['x\u00003', 'x\u00004'],
  incoming: [{ cmd: 'publish', topic: 'q', payload: Buffer.from('z'), qos: 2, messageId: 5, brokerId: 'b@1', brokerCounter: 5 }]
}

test('session messages round-trip, payloads and correlation data stay binary', () => {
  const messages: DataPlaneMessage[] = [
    { kind: 'session-request', requestId: 'r1', clientId: 'sensor-ä', stamp, resume: true },
    { kind: 'session-request', requestId: 'r2', clientId: 'c', stamp, resume: false },
    { kind: 'session-transfer', requestId: 'r1', clientId: 'sensor-ä', session },
    { kind: 'session-transfer', requestId: 'r1', clientId: 'c', session: null },
    { kind: 'session-ack', requestId: 'r1', clientId: 'c' }
  ]
  for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m, m.kind)
  const back = decodeMessage(encodeMessage(messages[2]!))
  assert.ok(back.kind === 'session-transfer' && back.session !== null)
  assert.ok(Buffer.isBuffer(back.session.queue[0]!.payload))
  assert.ok(Buffer.isBuffer(back.session.queue[0]!.properties?.correlationData))
})

test('a malformed session transfer throws MessageDecodeError', () => {
  const bad = (s: unknown): Buffer => {
    const good = encodeMessage({ kind: 'session-transfer', requestId: 'r', clientId: 'c', session })
    const json = JSON.parse(good.subarray(5).toString('utf8')) as Record<string, unknown>
    json.session = s
    const body = Buffer.from(JSON.stringify(json))
    const head = Buffer.alloc(5)
    head[0] = good[0]!
    head.writeUInt32BE(body.length, 1)
    return Buffer.concat([head, body])
  }
  const stampText = encodeStamp(stamp)
  assert.doesNotThrow(() => decodeMessage(bad({ stamp: stampText, subscriptions: [], queue: [{ cmd: 'pubrel', messageId: 1 }] })), 'the helper makes valid messages')
  assert.doesNotThrow(() => decodeMessage(bad({ stamp: stampText, subscriptions: [], queue: [], ledger: ['a'], incoming: [{ cmd: 'publish', topic: 't', payload: { $b64: '' }, qos: 2, messageId: 1 }] })))
  for (const s of [
    {},
    { stamp: 'nope', subscriptions: [], queue: [] },
    { stamp: stampText, subscriptions: [{ topic: 1, qos: 0 }], queue: [] },
    { stamp: stampText, subscriptions: [{ topic: 'a', qos: 3 }], queue: [] },
    { stamp: stampText, subscriptions: [], queue: [{ cmd: 'pubrel' }] },
    { stamp: stampText, subscriptions: [], queue: [{ cmd: 'publish', topic: 't', payload: 'not a buffer', qos: 1 }] },
    { stamp: stampText, subscriptions: [], queue: [{ cmd: 'publish', topic: 't', payload: { $b64: '' }, qos: 1, messageId: 0 }] },
    { stamp: stampText, subscriptions: [], queue: [{ cmd: 'connect' }] },
    { stamp: stampText, subscriptions: [], queue: [], ledger: [1] },
    { stamp: stampText, subscriptions: [], queue: [], incoming: [1] },
    { stamp: stampText, subscriptions: [], queue: [], incoming: [{ cmd: 'publish', topic: 't', payload: { $b64: '' }, qos: 2 }] },
    { stamp: stampText, subscriptions: [], queue: [], rescueFrom: 3 }
  ]) {
    assert.throws(() => decodeMessage(bad(s)), MessageDecodeError, JSON.stringify(s))
  }
})

test('the newest home copy of a session wins; a replica only when no home copy answered', () => {
  const older = { peer: 'a', replica: false, session: { ...session, stamp: { wall: 1, logical: 9, node: 'z' } } }
  const newer = { peer: 'b', replica: false, session: { ...session, stamp: { wall: 2, logical: 0, node: 'a' } } }
  const replica = { peer: 'r', replica: true, session: { ...session, stamp: { wall: 3, logical: 0, node: 'a' } } }
  const oldReplica = { peer: 'q', replica: true, session: { ...session, stamp: { wall: 0, logical: 0, node: 'a' } } }
  assert.equal(bestSession([older, newer])?.peer, 'b')
  assert.equal(bestSession([newer, older])?.peer, 'b')
  assert.equal(bestSession([replica, older, newer])?.peer, 'b', 'a home copy beats a newer-stamped replica')
  assert.equal(bestSession([oldReplica, replica])?.peer, 'r')
  assert.equal(bestSession([]), undefined)
  // One stamp, two moments of one session: the copy whose ledger saw more is the later.
  const early = { peer: 'e', replica: true, session: { ...session, ledger: ['x\u00001'] } }
  const late = { peer: 'l', replica: true, session: { ...session, ledger: ['x\u00001', 'x\u00002'] } }
  assert.equal(bestSession([early, late])?.peer, 'l')
  assert.equal(bestSession([late, early])?.peer, 'l')
})

test('a home copy read back from disk and not connected since yields to a replica connected since', () => {
  const disk = { peer: 'd', replica: false, session: { ...session, stamp: { wall: 0, logical: 0, node: 'd' } } }
  const moved = { peer: 'p', replica: true, session: { ...session, stamp: { wall: 5, logical: 0, node: 'c' } } }
  const rebuilt = { peer: 'q', replica: true, session: { ...session, stamp: { wall: 0, logical: 0, node: 'd' } } }
  const home = { peer: 'h', replica: false, session: { ...session, stamp: { wall: 1, logical: 0, node: 'h' } } }
  assert.equal(bestSession([disk, moved])?.peer, 'p')
  assert.equal(bestSession([moved, disk])?.peer, 'p')
  // After a whole-cluster restart the replicas are rebuilt from the disk copy, unstamped too: the home copy wins.
  assert.equal(bestSession([rebuilt, disk])?.peer, 'd')
  // A stamped home copy still beats any replica.
  assert.equal(bestSession([moved, disk, home])?.peer, 'h')
})

test('a session fetch resolves once every peer answered, keeping only non-empty sessions', async () => {
  const f = new SessionFetch('r', 'c', ['a', 'b', 'c'], 10_000)
  assert.equal(f.answer('a', null), true)
  assert.equal(f.answer('a', session), false, 'one answer per peer')
  assert.equal(f.answer('x', session), false, 'not asked')
  assert.equal(f.answer('b', { stamp, subscriptions: [], queue: [], ledger: [], incoming: [] }), true)
  assert.deepEqual(f.pending, ['c'])
  f.answer('c', session)
  const answers = await f.done
  assert.deepEqual(answers.map((x) => x.peer), ['c'])
})

test('a session fetch stops waiting for a peer that went away, and at its deadline', async () => {
  const f = new SessionFetch('r', 'c', ['a', 'b'], 10_000)
  f.answer('a', session)
  f.forget('b')
  assert.deepEqual((await f.done).map((x) => x.peer), ['a'])
  const started = Date.now()
  const g = new SessionFetch('r2', 'c', ['a'], 30)
  assert.deepEqual(await g.done, [])
  assert.ok(Date.now() - started < 1000)
  assert.deepEqual(await new SessionFetch('r3', 'c', [], 10_000).done, [], 'nobody to ask')
})
