// Held messages (held-messages.ts): what the receiver reports settled, and
// the sender's waiters.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HeldMessages, Settlements } from '../../../../src/server/cluster/dataplane/held-messages.js'
import { seededRandom, shuffle } from '../../../../src/server/cluster/membership/clock.js'

test('settlements: all up to the lowest unsettled, and those above it', () => {
  const s = new Settlements()
  for (let seq = 1; seq <= 6; seq++) s.delivered(seq)
  assert.deepEqual(s.report(6), { upTo: 0, seqs: [] })
  assert.equal(s.settle(3), true)
  assert.equal(s.settle(5), true)
  assert.deepEqual(s.report(6), { upTo: 0, seqs: [3, 5] })
  assert.equal(s.settle(1), true)
  assert.deepEqual(s.report(6), { upTo: 1, seqs: [3, 5] })
  assert.equal(s.settle(2), true)
  assert.deepEqual(s.report(6), { upTo: 3, seqs: [5] })
  assert.equal(s.settle(2), false, 'settled already')
  assert.equal(s.settle(4), true)
  assert.equal(s.settle(6), true)
  assert.deepEqual(s.report(6), { upTo: 6, seqs: [] })
  s.delivered(7)
  assert.deepEqual(s.report(7), { upTo: 6, seqs: [] })
})

test('settlements in any order report what a model of them says', () => {
  const random = seededRandom(7)
  for (let round = 0; round < 50; round++) {
    const s = new Settlements()
    const n = 1 + Math.floor(random() * 200)
    const settled = new Set<number>()
    const order = shuffle(Array.from({ length: n }, (_, i) => i + 1), random)
    let delivered = 0
    for (const seq of order) {
      // Deliveries stay ahead of settlements, in sequence order.
      while (delivered < seq || (delivered < n && random() < 0.3)) s.delivered(++delivered)
      s.settle(seq)
      settled.add(seq)
      let upTo = 0
      while (upTo < delivered && settled.has(upTo + 1)) upTo++
      const above = [...settled].filter((x) => x > upTo).sort((a, b) => a - b)
      const got = s.report(delivered)
      assert.equal(got.upTo, upTo)
      assert.deepEqual([...got.seqs].sort((a, b) => a - b), above)
    }
  }
})

test('held messages: each waiter is told once, true when settled, false when orphaned or stopped', async () => {
  const h = new HeldMessages()
  const payload = Buffer.from('p')
  for (let seq = 1; seq <= 5; seq++) h.add(seq, payload)
  const told: Array<[number, boolean]> = []
  for (const seq of [1, 2, 2, 3, 4, 5]) assert.equal(h.onSettled(seq, (held) => told.push([seq, held])), true)
  assert.equal(h.onSettled(9, () => assert.fail('not held')), false)
  const third = new Promise<boolean>((resolve) => h.onSettled(3, resolve))
  h.settled(2, [4])
  assert.deepEqual(told, [[1, true], [2, true], [2, true], [4, true]])
  assert.equal(h.size, 2)
  assert.deepEqual(h.orphan().map((o) => o.seq), [3, 5])
  assert.equal(await third, false)
  assert.deepEqual(told.slice(4), [[3, false], [5, false]])
  h.add(6, payload)
  const sixth = new Promise<boolean>((resolve) => h.onSettled(6, resolve))
  h.stop()
  assert.equal(await sixth, false)
  assert.equal(h.size, 0)
  h.settled(10, [])
  assert.equal(told.length, 6, 'no waiter is told twice')
})
