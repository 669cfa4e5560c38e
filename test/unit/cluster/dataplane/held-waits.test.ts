// Acknowledgements waiting for a peer's settlement (held-waits.ts): each
// released once, by the settlement, the peer's departure or the timeout,
// and counted when it went without the peer's confirmation.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HeldWaits, type HeldSource } from '../../../../src/server/cluster/dataplane/held-waits.js'

/** A link whose verdicts the test gives. */
function fakeLink (peerName: string): HeldSource & { verdict: (seq: number, held: boolean) => void, pending: () => number } {
  const waiting = new Map<number, (held: boolean) => void>()
  return {
    peerName,
    onHeld: (seq, cb) => { waiting.set(seq, cb) },
    verdict: (seq, held) => { const cb = waiting.get(seq); waiting.delete(seq); cb?.(held) },
    pending: () => waiting.size
  }
}

function tracked (p: Promise<void>): { done: () => boolean, p: Promise<void> } {
  let done = false
  return { done: () => done, p: p.then(() => { done = true }) }
}

test('a settled message releases its wait; a lost one releases it as peer-gone', async () => {
  const waits = new HeldWaits(60_000, () => assert.fail('no timeout'))
  const link = fakeLink('b')
  const w = [1, 2, 3].map((seq) => tracked(waits.wait(link, seq)))
  link.verdict(2, true)
  await w[1]!.p
  assert.deepEqual(w.map((x) => x.done()), [false, true, false], 'out of order')
  link.verdict(1, true)
  link.verdict(3, false)
  await Promise.all(w.map((x) => x.p))
  assert.deepEqual(waits.unreplicated, { 'peer-gone': 1, timeout: 0 })
})

test('a verdict given at once (the message was not held) releases the wait at once', async () => {
  const waits = new HeldWaits(60_000, () => assert.fail('no timeout'))
  await waits.wait({ peerName: 'b', onHeld: (_seq, cb) => { cb(true) } }, 1)
  await waits.wait({ peerName: 'b', onHeld: (_seq, cb) => { cb(false) } }, 2)
  assert.deepEqual(waits.unreplicated, { 'peer-gone': 1, timeout: 0 })
})

test('the peer going releases its waits, not the other peers\', and a late verdict changes nothing', async () => {
  const waits = new HeldWaits(60_000, () => assert.fail('no timeout'))
  const b = fakeLink('b')
  const c = fakeLink('c')
  const onB = [1, 2].map((seq) => tracked(waits.wait(b, seq)))
  const onC = tracked(waits.wait(c, 1))
  waits.peerGone('b')
  await Promise.all(onB.map((x) => x.p))
  assert.equal(onC.done(), false)
  b.verdict(1, true)
  b.verdict(2, false)
  assert.deepEqual(waits.unreplicated, { 'peer-gone': 2, timeout: 0 })
  // A new wait on b after its departure has its own timer and queue.
  const again = tracked(waits.wait(b, 3))
  b.verdict(3, true)
  c.verdict(1, true)
  await Promise.all([again.p, onC.p])
  assert.deepEqual(waits.unreplicated, { 'peer-gone': 2, timeout: 0 })
})

test('waits time out oldest first, counted and reported once per expiry, and the timer moves on to the next', async (t) => {
  // The waits' timer does not hold the process open (a stopping node does not wait for it): this test's interval does.
  const alive = setInterval(() => {}, 1000)
  t.after(() => { clearInterval(alive) })
  const reports: Array<[string, number]> = []
  const waits = new HeldWaits(40, (peer, count) => reports.push([peer, count]))
  const link = fakeLink('b')
  const first = [1, 2, 3].map((seq) => tracked(waits.wait(link, seq)))
  link.verdict(2, true)
  await Promise.all(first.map((x) => x.p))
  assert.deepEqual(reports, [['b', 2]])
  assert.deepEqual(waits.unreplicated, { 'peer-gone': 0, timeout: 2 })
  const later = tracked(waits.wait(link, 4))
  await later.p
  assert.deepEqual(reports, [['b', 2], ['b', 1]])
  link.verdict(1, true)
  assert.deepEqual(waits.unreplicated, { 'peer-gone': 0, timeout: 3 }, 'a verdict after the timeout counts nothing')
})

test('thousands of waits settled in order keep the queue short', async () => {
  const waits = new HeldWaits(60_000, () => assert.fail('no timeout'))
  const link = fakeLink('b')
  const all: Array<Promise<void>> = []
  for (let seq = 1; seq <= 5000; seq++) {
    all.push(waits.wait(link, seq))
    if (seq > 100) link.verdict(seq - 100, true)
  }
  for (let seq = 4901; seq <= 5000; seq++) link.verdict(seq, true)
  await Promise.all(all)
  assert.equal(link.pending(), 0)
  assert.deepEqual(waits.unreplicated, { 'peer-gone': 0, timeout: 0 })
})
