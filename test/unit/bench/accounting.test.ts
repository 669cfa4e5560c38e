// The load generator's bookkeeping: its loss, duplicate and latency figures
// must be right for the bench results to be trusted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  ReceiveLedger, LatencySamples, account, expectedDeliveries, mergeTallies, percentile, readHeader, writeHeader, HEADER_BYTES
} from '../../../src/bench/accounting.js'

function payload (publisher: number, seq: number, sentAt: number, size = 64): Buffer {
  const b = Buffer.alloc(size)
  writeHeader(b, 0, publisher, seq, sentAt)
  return b
}

test('the header round-trips publisher, sequence and a sub-millisecond timestamp', () => {
  const b = Buffer.alloc(HEADER_BYTES + 4)
  writeHeader(b, 4, 7, 123456, 1764064800123.456)
  assert.deepEqual(readHeader(b, 4), { publisher: 7, seq: 123456, sentAt: 1764064800123.456 })
  assert.equal(readHeader(Buffer.alloc(10)), undefined)
})

test('a message never delivered counts as lost', () => {
  const ledger = new ReceiveLedger()
  for (const seq of [0, 1, 3, 4]) ledger.receive(0, payload(0, seq, 1000), 1001)
  const r = account([{ topic: 't/0', sent: 5 }], ['t/0'], ledger.tally())
  assert.equal(r.sent, 5)
  assert.equal(r.expected, 5)
  assert.equal(r.received, 4)
  assert.equal(r.lost, 1)
  assert.equal(r.duplicated, 0)
})

test('a message delivered twice counts once as received and once as duplicated', () => {
  const ledger = new ReceiveLedger()
  for (const seq of [0, 1, 2, 1]) ledger.receive(0, payload(0, seq, 1000), 1002)
  const r = account([{ topic: 't/0', sent: 3 }], ['t/0'], ledger.tally())
  assert.equal(r.received, 3)
  assert.equal(r.duplicated, 1)
  assert.equal(r.lost, 0)
  // The duplicate adds no latency sample.
  assert.equal(r.latency.samples, 3)
})

test('the same sequence from two publishers, or to two subscribers, is not a duplicate', () => {
  const ledger = new ReceiveLedger()
  ledger.receive(0, payload(0, 0, 0), 1)
  ledger.receive(0, payload(1, 0, 0), 1)
  ledger.receive(1, payload(0, 0, 0), 1)
  assert.equal(ledger.unique, 3)
  assert.equal(ledger.duplicates, 0)
})

test('sequence numbers far apart (a long run) are tracked without confusion', () => {
  const ledger = new ReceiveLedger()
  ledger.receive(0, payload(0, 5_000_000, 0), 1)
  ledger.receive(0, payload(0, 5_000_000, 0), 1)
  ledger.receive(0, payload(0, 4_999_999, 0), 1)
  assert.equal(ledger.unique, 2)
  assert.equal(ledger.duplicates, 1)
})

test('latency is arrival time minus the timestamp in the payload, with exact percentiles', () => {
  const ledger = new ReceiveLedger()
  // Latencies 1..100 ms in a shuffled order.
  const order = Array.from({ length: 100 }, (_, i) => (i * 37) % 100)
  for (const i of order) ledger.receive(0, payload(0, i, 10_000 + i), 10_000 + i + (i + 1))
  const r = account([{ topic: 'a', sent: 100 }], ['a'], ledger.tally())
  assert.equal(r.latency.p50, 50)
  assert.equal(r.latency.p90, 90)
  assert.equal(r.latency.p99, 99)
  assert.equal(r.latency.max, 100)
  assert.equal(r.latency.samples, 100)
})

test('percentile uses nearest rank', () => {
  assert.equal(percentile([], 99), 0)
  assert.equal(percentile([5], 50), 5)
  assert.equal(percentile([4, 1, 3, 2], 50), 2)
  assert.equal(percentile([4, 1, 3, 2], 75), 3)
  assert.equal(percentile([4, 1, 3, 2], 100), 4)
})

test('deliveries owed follow the filters: fan-out multiplies, non-matching filters owe nothing', () => {
  const pubs = [{ topic: 'b/0/data', sent: 10 }, { topic: 'b/1/data', sent: 20 }]
  assert.equal(expectedDeliveries(pubs, ['b/0/data']), 10)
  assert.equal(expectedDeliveries(pubs, ['b/+/data', 'b/#', 'b/1/data', 'c/#']), 30 + 30 + 20)
  assert.equal(expectedDeliveries(pubs, []), 0)
})

test('tallies from several workers merge: counts add, max is the larger, samples concatenate', () => {
  const a = new ReceiveLedger()
  const b = new ReceiveLedger()
  a.receive(0, payload(0, 0, 0), 2)
  a.receive(0, payload(0, 0, 0), 2)
  b.receive(1, payload(0, 0, 0), 7)
  b.receive(1, Buffer.alloc(3), 7)
  const m = mergeTallies([a.tally(), b.tally()])
  assert.equal(m.unique, 2)
  assert.equal(m.duplicates, 1)
  assert.equal(m.foreign, 1)
  assert.equal(m.latencyMax, 7)
  assert.equal(m.lastAt, 7)
  assert.deepEqual([...m.latencyMs].sort((x, y) => x - y), [2, 7])
})

test('latency samples stay bounded past capacity while count and max stay exact', () => {
  const s = new LatencySamples(1000)
  for (let i = 1; i <= 100_000; i++) s.add(i % 10 === 0 ? 1 : 2)
  s.add(500)
  assert.equal(s.samples.length, 1000)
  assert.equal(s.count, 100_001)
  assert.equal(s.max, 500)
  // A uniform sample keeps roughly the 1-in-10 share of the value 1.
  const ones = s.samples.filter((x) => x === 1).length
  assert.ok(ones > 50 && ones < 170, `ones ${ones}`)
})
