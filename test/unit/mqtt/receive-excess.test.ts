// The packets held past a client's Receive Maximum (receive-excess.ts): in
// order, bounded by count and by bytes; acknowledgements never wait.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ReceiveExcess, passesExcess, MAX_EXCESS_BYTES } from '../../../src/server/mqtt/receive-excess.js'

const publish = (messageId: number, length = 20) => ({ cmd: 'publish', qos: 2, messageId, topic: 't', payload: Buffer.alloc(length - 5), length })

test('held packets come out in the order they came, and the queue empties', () => {
  const q = new ReceiveExcess(10)
  for (let i = 1; i <= 5; i++) assert.equal(q.hold(publish(i)), true)
  assert.equal(q.size, 5)
  assert.equal(q.peek()?.messageId, 1)
  const out: number[] = []
  for (let p = q.shift(); p !== undefined; p = q.shift()) out.push(p.messageId!)
  assert.deepEqual(out, [1, 2, 3, 4, 5])
  assert.equal(q.size, 0)
  assert.equal(q.peek(), undefined)
})

test('past the packet bound nothing more is held', () => {
  const q = new ReceiveExcess(3)
  for (let i = 1; i <= 3; i++) assert.equal(q.hold(publish(i)), true)
  assert.equal(q.hold(publish(4)), false)
  assert.equal(q.size, 3)
  q.shift()
  assert.equal(q.hold(publish(4)), true, 'room again once one went on')
})

test('past the byte bound nothing more is held, whatever the packet bound', () => {
  const q = new ReceiveExcess(1_000_000)
  const big = MAX_EXCESS_BYTES / 4
  for (let i = 1; i <= 3; i++) assert.equal(q.hold(publish(i, big)), true)
  assert.equal(q.hold(publish(4, big)), false)
  q.shift()
  assert.equal(q.hold(publish(4, big)), true)
  q.clear()
  assert.equal(q.size, 0)
  assert.equal(q.hold(publish(5, big)), true, 'clear forgets the bytes too')
})

test('a long run through the queue keeps its order (the consumed head is compacted)', () => {
  const q = new ReceiveExcess(5000)
  let next = 1
  let expected = 1
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i++) assert.equal(q.hold(publish(next++)), true)
    for (let i = 0; i < 90; i++) assert.equal(q.shift()?.messageId, expected++)
  }
  assert.equal(q.size, 500)
})

test('acknowledgements and PINGREQ pass held publishes; everything else waits behind them', () => {
  for (const cmd of ['pubrel', 'puback', 'pubrec', 'pubcomp', 'pingreq']) assert.equal(passesExcess({ cmd }), true, cmd)
  for (const cmd of ['publish', 'subscribe', 'unsubscribe', 'disconnect']) assert.equal(passesExcess({ cmd }), false, cmd)
})
