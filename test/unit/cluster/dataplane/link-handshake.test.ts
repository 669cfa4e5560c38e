// The link handshake's keys: both sides agree, key rotation works, another
// key or cluster label does not, and a frame is accepted only once, in its place.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Keyring } from '../../../../src/server/cluster/keyring.js'
import { LinkProtocolError, frame } from '../../../../src/server/cluster/dataplane/frame-codec.js'
import { NO_KEY, acceptorSession, dialerSession, newNonce } from '../../../../src/server/cluster/dataplane/link-handshake.js'
import { Admission } from '../../../../src/server/cluster/membership/admission.js'
import { clusterKeyBytes } from '../../../../src/config/cluster-key.js'

function handshake (dialerKeys: Keyring, acceptorKeys: Keyring): { dialer: ReturnType<typeof dialerSession>, acceptor: ReturnType<typeof acceptorSession>['session'] } {
  const [nd, na] = [newNonce(), newNonce()]
  const dialer = dialerSession(dialerKeys, nd, na)
  const { session, plain } = acceptorSession(acceptorKeys, nd, na, dialer.seal(Buffer.from('hello')))
  assert.equal(plain.toString(), 'hello')
  return { dialer, acceptor: session }
}

test('both sides derive the same keys; frames open once, in order, and not on another connection', () => {
  const keys = new Keyring([randomBytes(32)])
  const { dialer, acceptor } = handshake(keys, keys)
  assert.equal(dialer.open(acceptor.seal(Buffer.from('a2d'))).toString(), 'a2d')
  const f1 = dialer.seal(Buffer.from('one'))
  const f2 = dialer.seal(Buffer.from('two'))
  assert.throws(() => acceptor.open(f2), 'out of order')
  assert.equal(acceptor.open(f1).toString(), 'one')
  assert.throws(() => acceptor.open(f1), 'replayed')
  assert.equal(acceptor.open(f2).toString(), 'two')
  // The same bytes on a new connection (new nonces) do not open.
  const other = handshake(keys, keys)
  assert.throws(() => other.acceptor.open(f1))
})

test('sealFrame is frame(seal(...)) in one allocation, sealed or plain', () => {
  const keys = new Keyring([randomBytes(32)])
  const [nd, na] = [newNonce(), newNonce()]
  // Two dialer sessions of one connection: the same keys and frame counter.
  const [a, b] = [dialerSession(keys, nd, na), dialerSession(keys, nd, na)]
  b.seal(Buffer.from('hello'))
  const acceptor = acceptorSession(keys, nd, na, a.seal(Buffer.from('hello'))).session
  for (const plain of [Buffer.from('one'), randomBytes(70_000), Buffer.alloc(0)]) {
    const framed = a.sealFrame(plain)
    assert.deepEqual(framed, frame(b.seal(plain)))
    assert.equal(framed.readUInt32BE(0), framed.length - 4, 'the length prefix')
    assert.deepEqual(acceptor.open(framed.subarray(4)), plain)
  }
  const [p1, p2] = [dialerSession(NO_KEY, nd, na), dialerSession(NO_KEY, nd, na)]
  assert.deepEqual(p1.sealFrame(Buffer.from('x')), frame(p2.seal(Buffer.from('x'))))
})

test('key rotation: an acceptor holding old and new keys accepts a dialer on either', () => {
  const [oldKey, newKey] = [randomBytes(16), randomBytes(32)]
  const both = new Keyring([oldKey, newKey])
  handshake(new Keyring([oldKey]), both)
  handshake(new Keyring([newKey]), both)
  assert.throws(() => handshake(new Keyring([randomBytes(32)]), both), LinkProtocolError)
})

test('another cluster label, or plain text against a key, does not authenticate', () => {
  const key = randomBytes(32)
  assert.throws(() => handshake(new Keyring([key], { label: 'blue' }), new Keyring([key], { label: 'green' })), LinkProtocolError)
  handshake(new Keyring([key], { label: 'blue' }), new Keyring([key], { label: 'blue' }))
  const [nd, na] = [newNonce(), newNonce()]
  assert.throws(() => acceptorSession(new Keyring([key]), nd, na, dialerSession(NO_KEY, nd, na).seal(Buffer.from('hello'))), LinkProtocolError)
  // And UDP packets: the label is bound into every sealed packet.
  assert.throws(() => new Keyring([key], { label: 'green' }).open(new Keyring([key], { label: 'blue' }).seal(Buffer.from('x'))))
})

test('cluster keys: 16, 24 or 32 characters as they are, else base64 of 16, 24 or 32 bytes', () => {
  assert.equal(clusterKeyBytes('k'.repeat(32))!.length, 32)
  const b64 = randomBytes(32).toString('base64')
  assert.equal(b64.length, 44)
  assert.deepEqual(clusterKeyBytes(b64), Buffer.from(b64, 'base64'))
  assert.equal(clusterKeyBytes(randomBytes(16).toString('base64'))!.length, 24, '24 characters are a key as they are')
  assert.equal(clusterKeyBytes('short'), undefined)
  assert.equal(clusterKeyBytes(randomBytes(20).toString('base64')), undefined)
})

test('admission: what discovery yields and ourselves; a live member stays admitted through an incomplete resolution', () => {
  const live = new Set<string>()
  const admission = new Admission({ self: ['127.0.0.1'], liveHosts: () => live })
  admission.update(['127.0.0.2', '127.0.0.3'], true)
  assert.ok(admission.admits('127.0.0.1'))
  assert.ok(admission.admits('127.0.0.2'))
  assert.ok(admission.admits('::ffff:127.0.0.3'))
  assert.ok(!admission.admits('127.0.0.9'))
  // A failed lookup only adds.
  admission.update([], false)
  assert.ok(admission.admits('127.0.0.2'))
  // Gone from discovery: admitted while a live member is there, not after.
  live.add('127.0.0.3')
  admission.update(['127.0.0.2'], true)
  assert.ok(admission.admits('127.0.0.3'))
  live.clear()
  assert.ok(!admission.admits('127.0.0.3'))
})
