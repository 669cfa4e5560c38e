import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import {
  FrameDecoder, LinkProtocolError, PREAMBLE, decodeRecords, encodeRecord, frame, type LinkRecord
} from '../../../../src/server/cluster/dataplane/frame-codec.js'
import { Keyring } from '../../../../src/server/cluster/keyring.js'

const records: LinkRecord[] = [
  { type: 'hello', hello: { proto: 2, name: 'node-a', incarnation: 'abc', recv: { incarnation: null, seq: 0 } } },
  { type: 'data', seq: 2 ** 40 + 7, payload: Buffer.from('reliable'), hold: false },
  { type: 'data', seq: 9, payload: Buffer.from('held'), hold: true },
  { type: 'data', seq: 0, payload: Buffer.alloc(0), hold: false },
  { type: 'ack', seq: 123456 },
  { type: 'held', upTo: 2 ** 40, seqs: [2 ** 40 + 3, 2 ** 40 + 9] },
  { type: 'held', upTo: 0, seqs: [] },
  { type: 'ping' },
  { type: 'refuse', refuse: { code: 'version', message: 'no' } }
]

test('records round-trip, several per frame', () => {
  assert.deepEqual(decodeRecords(Buffer.concat(records.map(encodeRecord))), records)
})

test('the decoder cuts frames at any chunk boundary, through a real cipher', () => {
  const keyring = new Keyring([randomBytes(32)])
  const frames = records.map((r) => keyring.seal(encodeRecord(r)))
  const stream = Buffer.concat([PREAMBLE, ...frames.map(frame)])
  for (const chunkSize of [1, 2, 3, 7, 64, stream.length]) {
    const decoder = new FrameDecoder(1024)
    const out: Buffer[] = []
    for (let off = 0; off < stream.length; off += chunkSize) out.push(...decoder.push(stream.subarray(off, off + chunkSize)))
    assert.deepEqual(out.map((f) => decodeRecords(keyring.open(f))[0]), records, `chunks of ${chunkSize}`)
  }
})

test('a wrong preamble, an oversized length and malformed records are refused with a reason', () => {
  const reason = (fn: () => unknown): string => {
    try { fn() } catch (err) { assert.ok(err instanceof LinkProtocolError); return err.reason }
    return 'none'
  }
  assert.equal(reason(() => new FrameDecoder(1024).push(Buffer.from('GET / HTTP/1.1\r\n'))), 'preamble')
  assert.equal(reason(() => new FrameDecoder(1024).push(Buffer.from('BX'))), 'preamble', 'refused as soon as a byte differs')
  assert.equal(reason(() => new FrameDecoder(1024).push(Buffer.concat([PREAMBLE, Buffer.from([0, 0, 4, 1])]))), 'size')
  assert.equal(reason(() => decodeRecords(Buffer.from([0x02, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 1]))), 'decode', 'truncated data')
  assert.equal(reason(() => decodeRecords(Buffer.from([0x7f]))), 'decode', 'unknown type')
  assert.equal(reason(() => decodeRecords(encodeRecord({ type: 'refuse', refuse: { code: 'x', message: 'y' } }).subarray(0, 8))), 'decode')
  const badHello = Buffer.from(JSON.stringify({ proto: 1, name: '', incarnation: 'x', recv: { incarnation: null, seq: 0 } }))
  const rec = Buffer.concat([Buffer.from([0x01, 0, 0, 0, badHello.length]), badHello])
  assert.equal(reason(() => decodeRecords(rec)), 'handshake')
})
