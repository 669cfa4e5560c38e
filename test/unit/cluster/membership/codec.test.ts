// Codec and crypto: what comes off the wire is either a well-formed message
// or a CodecError with a metric reason; nothing else, whatever the bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { CodecError, decodePacket, decodeStream, encodePacket, encodeStream, PROTOCOL, type Message } from '../../../../src/server/cluster/membership/codec.js'
import { Keyring } from '../../../../src/server/cluster/keyring.js'
import { seededRandom } from '../../../../src/server/cluster/membership/clock.js'

const messages: Message[] = [
  { type: 'ping', seq: 1, node: 'b', source: { name: 'a', addr: '127.0.0.1', port: 7946 } },
  { type: 'alive', incarnation: 3, node: 'a', addr: '127.0.0.1', port: 7946, meta: { api: 8080, mqtt: 1883, version: '0.1.0' }, vsn: [1, 1, 1, 0, 0, 0] },
  { type: 'dead', incarnation: 2, node: 'c', from: 'c' }
]

const reasonOf = (fn: () => unknown): string => {
  try { fn() } catch (err) { if (err instanceof CodecError) return err.reason; throw err }
  return 'accepted'
}

test('packets and stream messages round-trip, with every key size', () => {
  assert.deepEqual(decodePacket(encodePacket(messages)), messages)
  for (const key of ['k'.repeat(16), 'k'.repeat(24), 'k'.repeat(32)]) {
    const ring = new Keyring([key])
    assert.deepEqual(decodePacket(ring.open(ring.seal(encodePacket(messages)))), messages)
  }
  const s = { type: 'push-pull' as const, join: true, nodes: [{ name: 'a', addr: '127.0.0.1', port: 7946, meta: { api: 1, mqtt: 2, version: 'v' }, incarnation: 0, state: 'left' as const, vsn: [1, 1, 1, 0, 0, 0] as [number, number, number, number, number, number] }], userState: 'AAE=' }
  assert.deepEqual(decodeStream(encodeStream(s)), s)
  // The TCP fallback probe's request and answer, with gossip (alive, suspect and dead news only).
  const news = messages.filter((m) => m.type === 'alive' || m.type === 'suspect' || m.type === 'dead')
  assert.ok(news.length > 0)
  for (const m of [{ type: 'ping' as const, seq: 7, node: 'b', gossip: news }, { type: 'ack' as const, seq: 7, gossip: [] }]) assert.deepEqual(decodeStream(encodeStream(m)), m)
  assert.equal(reasonOf(() => decodeStream(encodeStream({ type: 'ping', seq: -1, node: 'b', gossip: [] }))), 'decode')
  assert.equal(reasonOf(() => decodeStream(encodeStream({ type: 'ping', seq: 1, node: '', gossip: [] }))), 'decode')
  const ping = messages.find((m) => m.type === 'ping')!
  assert.equal(reasonOf(() => decodeStream(encodeStream({ type: 'ack', seq: 1, gossip: [ping] }))), 'decode', 'a ping smuggled in as gossip')
})

test('a wrong key, tampering, a plain packet and truncation are rejected as such', () => {
  const ring = new Keyring(['0123456789abcdef'])
  const sealed = ring.seal(encodePacket(messages))
  assert.equal(reasonOf(() => new Keyring(['fedcba9876543210']).open(sealed)), 'auth')
  const tampered = Buffer.from(sealed)
  tampered[20] = tampered[20]! ^ 1
  assert.equal(reasonOf(() => ring.open(tampered)), 'auth')
  assert.equal(reasonOf(() => ring.open(sealed.subarray(0, sealed.length - 1))), 'auth')
  assert.equal(reasonOf(() => ring.open(sealed.subarray(0, 10))), 'auth')
  assert.equal(reasonOf(() => ring.open(new Keyring().seal(encodePacket(messages)))), 'encryption')
  assert.equal(reasonOf(() => new Keyring().open(sealed)), 'encryption')
  // Flipping the mode byte to "plain" does not get past an encrypting node.
  const downgraded = Buffer.from(sealed)
  downgraded[0] = 0
  assert.equal(reasonOf(() => ring.open(downgraded)), 'encryption')
})

test('rotation: any installed key decrypts, the primary encrypts', () => {
  const old = Buffer.from('0123456789abcdef')
  const next = Buffer.from('abcdefghijklmnopqrstuvwxyz012345')
  const a = new Keyring([old])
  const b = new Keyring([old])
  b.addKey(next)
  b.useKey(next)
  assert.equal(reasonOf(() => a.open(b.seal(Buffer.from('x')))), 'auth')
  assert.deepEqual(b.open(a.seal(Buffer.from('x'))), Buffer.from('x'))
  assert.throws(() => b.removeKey(next))
  b.removeKey(old)
  assert.equal(reasonOf(() => b.open(a.seal(Buffer.from('x')))), 'auth')
  assert.throws(() => new Keyring(['short']), RangeError)
})

test('unknown protocol versions and malformed bodies are rejected', () => {
  const frame = encodePacket(messages)
  const future = Buffer.from(frame)
  future[1] = PROTOCOL.max + 1
  assert.equal(reasonOf(() => decodePacket(future)), 'version')
  const body = (v: unknown): Buffer => Buffer.concat([frame.subarray(0, 2), Buffer.from(JSON.stringify(v))])
  for (const bad of [
    {}, [], [{}], [{ type: 'ping' }], [{ type: 'ack', seq: -1 }], [{ type: 'ack', seq: 1.5 }],
    [{ type: 'alive', incarnation: 1, node: 'a', addr: 'x', port: 70000, meta: { api: 1, mqtt: 1, version: 'v' }, vsn: [1, 1, 1, 0, 0, 0] }],
    [{ type: 'alive', incarnation: 1, node: 'a', addr: 'x', port: 7946, meta: { api: 1, mqtt: 1, version: 'v' }, vsn: [1] }],
    [{ type: 'suspect', incarnation: 1, node: '', from: 'x' }], [{ type: 'nope', seq: 1 }]
  ]) {
    assert.equal(reasonOf(() => decodePacket(body(bad))), 'decode', JSON.stringify(bad))
  }
  assert.equal(reasonOf(() => decodeStream(body({ type: 'push-pull', join: true, nodes: [{ name: 'a' }], userState: '' }))), 'decode')
  assert.equal(reasonOf(() => decodePacket(Buffer.concat([frame.subarray(0, 2), Buffer.from('{"a":')]))), 'decode')
})

test('random and truncated bytes never escape as anything but CodecError', () => {
  const random = seededRandom(42)
  const plain = new Keyring()
  const enc = new Keyring(['0123456789abcdef'])
  const valid = encodePacket(messages)
  for (let i = 0; i < 2000; i++) {
    const len = Math.floor(random() * 200)
    const junk = randomBytes(len)
    for (const ring of [plain, enc]) {
      const r = reasonOf(() => decodePacket(ring.open(junk)))
      assert.ok(['auth', 'encryption', 'version', 'decode'].includes(r), r)
    }
    const cut = Buffer.concat([Buffer.from([0]), valid.subarray(0, Math.floor(random() * valid.length))])
    assert.ok(['decode', 'version'].includes(reasonOf(() => decodePacket(plain.open(cut)))))
  }
})

test('a member advertising an API address with a path, a host name or a port that is not one is refused at decode', () => {
  const frame = encodePacket([messages[0]!])
  const body = (v: unknown): Buffer => Buffer.concat([frame.subarray(0, 2), Buffer.from(JSON.stringify(v))])
  const alive = (addr: unknown, api: unknown) => [{ type: 'alive', incarnation: 1, node: 'rogue', addr, port: 7946, meta: { api, mqtt: 1883, version: 'v' }, vsn: [1, 1, 1, 0, 0, 0] }]
  for (const [addr, api] of [
    ['127.0.0.9/debug/pprof/heap?', 8080], ['169.254.169.254/latest/meta-data#', 80], ['evil.example.com', 8080], ['user:pw@10.0.0.1', 8080],
    ['10.0.0.1', 0], ['10.0.0.1', 65536], ['10.0.0.1', 80.5], ['10.0.0.1', '80/x']
  ] as const) {
    assert.equal(reasonOf(() => decodePacket(body(alive(addr, api)))), 'decode', `${String(addr)} ${String(api)}`)
  }
  const node = (addr: string) => ({ type: 'push-pull', join: true, nodes: [{ name: 'rogue', addr, port: 7946, meta: { api: 8080, mqtt: 1883, version: 'v' }, incarnation: 0, state: 'alive', vsn: [1, 1, 1, 0, 0, 0] }], userState: '' })
  assert.equal(reasonOf(() => decodeStream(body(node('10.0.0.1/x')))), 'decode')
  assert.equal(reasonOf(() => decodeStream(body(node('10.0.0.1')))), 'accepted', 'an IP literal is fine')
  assert.doesNotThrow(() => decodePacket(body(alive('fd00::1', 8080))))
})
