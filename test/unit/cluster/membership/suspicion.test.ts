import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Suspicion, remainingTimeout, suspicionTimeouts } from '../../../../src/server/cluster/membership/suspicion.js'
import { FakeClock } from './fake-clock.js'

const opts = { suspicionMult: 4, suspicionMaxTimeoutMult: 6, probeInterval: 500 }

test('suspicion timeout scales with log10 of the cluster size (memberlist formula)', () => {
  // 3 members: too few to confirm (n - 2 < mult - 2), so the minimum applies at
  // once; below 10 members the node scale is clamped to 1.
  assert.deepEqual(suspicionTimeouts(opts, 3), { min: 2000, max: 12_000, k: 0 })
  assert.equal(suspicionTimeouts(opts, 1).min, 2000)
  assert.equal(suspicionTimeouts(opts, 4).k, 2)
  assert.equal(suspicionTimeouts(opts, 20).min, Math.round(4 * Math.log10(20) * 500))
  const t10 = suspicionTimeouts(opts, 10)
  assert.equal(t10.min, 2000)
  assert.equal(t10.k, 2)
  assert.equal(suspicionTimeouts(opts, 100).min, 4000)
})

test('the timeout falls from max to min as confirmations arrive', () => {
  const t = { min: 1000, max: 6000, k: 3 }
  assert.equal(remainingTimeout(t, 0), 6000)
  assert.ok(remainingTimeout(t, 1) < 6000 && remainingTimeout(t, 1) > remainingTimeout(t, 2))
  assert.equal(remainingTimeout(t, 3), 1000)
  assert.equal(remainingTimeout(t, 10), 1000)
  assert.equal(remainingTimeout({ min: 1000, max: 6000, k: 0 }, 0), 1000)
})

test('a lone accuser waits the maximum; independent confirmations bring the deadline forward', async () => {
  const clock = new FakeClock()
  let fired = -1
  const t = { min: 1000, max: 6000, k: 2 }
  new Suspicion(clock, 'a', t, (c) => { fired = c })
  await clock.advance(5999)
  assert.equal(fired, -1)
  await clock.advance(1)
  assert.equal(fired, 0)

  fired = -1
  const s = new Suspicion(clock, 'a', t, (c) => { fired = c })
  await clock.advance(500)
  assert.equal(s.confirm('a'), false, 'the first accuser does not confirm itself')
  assert.equal(s.confirm('b'), true)
  assert.equal(s.confirm('b'), false, 'a confirmer counts once')
  assert.equal(s.confirm('c'), true)
  assert.equal(s.confirm('d'), false, 'beyond k confirmations nothing changes')
  // With k confirmations the timeout is min, measured from the start.
  await clock.advance(499)
  assert.equal(fired, -1)
  await clock.advance(1)
  assert.equal(fired, 2)
})

test('a cancelled suspicion never fires', async () => {
  const clock = new FakeClock()
  let fired = false
  const s = new Suspicion(clock, 'a', { min: 100, max: 100, k: 0 }, () => { fired = true })
  s.cancel()
  await clock.advance(1000)
  assert.equal(fired, false)
  assert.equal(clock.pending, 0)
})
