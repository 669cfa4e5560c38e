import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BroadcastQueue, retransmitLimit } from '../../../../src/server/cluster/membership/broadcast-queue.js'
import type { Message } from '../../../../src/server/cluster/membership/codec.js'

const suspect = (node: string, incarnation = 1): Message => ({ type: 'suspect', incarnation, node, from: 'x' })

test('retransmit limit is retransmit_mult * ceil(log10(N + 1))', () => {
  assert.equal(retransmitLimit(4, 1), 4)
  assert.equal(retransmitLimit(4, 9), 4)
  assert.equal(retransmitLimit(4, 10), 8)
  assert.equal(retransmitLimit(4, 100), 12)
})

test('an update is handed out exactly the retransmit limit times, then retired', () => {
  const q = new BroadcastQueue(3, () => 5)
  let done = false
  q.queue('a', suspect('a'), () => { done = true })
  for (let i = 0; i < 3; i++) assert.equal(q.getBroadcasts(1, 1400).length, 1)
  assert.equal(done, true)
  assert.equal(q.getBroadcasts(1, 1400).length, 0)
  assert.equal(q.length, 0)
})

test('a newer update about the same member replaces the queued one', () => {
  const q = new BroadcastQueue(3, () => 5)
  let replaced = false
  q.queue('a', suspect('a', 1), () => { replaced = true })
  q.queue('a', suspect('a', 2))
  assert.equal(replaced, true)
  const out = q.getBroadcasts(1, 1400)
  assert.deepEqual(out, [suspect('a', 2)])
})

test('least-transmitted updates go first and the byte limit is respected', () => {
  const q = new BroadcastQueue(10, () => 5)
  q.queue('a', suspect('a'))
  q.getBroadcasts(1, 1400) // a: 1 transmit
  q.queue('b', suspect('b'))
  const size = Buffer.byteLength(JSON.stringify(suspect('b'))) + 1
  // Room for exactly one message: the fresh one wins.
  assert.deepEqual(q.getBroadcasts(1, size + 1), [suspect('b')])
  assert.deepEqual(q.getBroadcasts(1, 10), [])
  assert.equal(q.getBroadcasts(1, 1400).length, 2)
})

test('the queue is bounded', () => {
  const q = new BroadcastQueue(3, () => 5, 10)
  for (let i = 0; i < 50; i++) q.queue(`n${i}`, suspect(`n${i}`))
  assert.equal(q.length, 10)
})
