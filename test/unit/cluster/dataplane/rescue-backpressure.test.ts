// The wait of publishes for a dead peer's takeover (rescue-backpressure.ts):
// woken in order by the peer they wait for, bounded by their deadline, and
// what they hold is counted while they wait.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RescueBackpressure, PublishRefusedError, isPublishRefused } from '../../../../src/server/cluster/dataplane/rescue-backpressure.js'

test('waiting publishes are counted with their bytes, and woken in the order they came by their peer only', async () => {
  const bp = new RescueBackpressure()
  const order: string[] = []
  const a1 = bp.wait('a', 100, 60_000).then((woken) => { order.push(`a1:${woken}`) })
  const b1 = bp.wait('b', 50, 60_000).then((woken) => { order.push(`b1:${woken}`) })
  const a2 = bp.wait('a', 10, 60_000).then((woken) => { order.push(`a2:${woken}`) })
  assert.equal(bp.waiting, 3)
  assert.equal(bp.waitingBytes, 160)
  bp.wake('a')
  await Promise.all([a1, a2])
  assert.deepEqual(order, ['a1:true', 'a2:true'])
  assert.equal(bp.waiting, 1)
  assert.equal(bp.waitingBytes, 50)
  bp.wake('a')
  bp.wakeAll()
  await b1
  assert.deepEqual(order, ['a1:true', 'a2:true', 'b1:true'])
  assert.equal(bp.waiting, 0)
  assert.equal(bp.waitingBytes, 0)
})

test('a wait ends at its deadline, false, and no longer counts', async () => {
  const bp = new RescueBackpressure()
  const started = Date.now()
  // The wait's own timer does not keep a process alive (unref): this one does, for the test.
  const alive = setTimeout(() => {}, 10_000)
  assert.equal(await bp.wait('a', 100, 30), false)
  clearTimeout(alive)
  assert.ok(Date.now() - started >= 25)
  assert.equal(bp.waiting, 0)
  assert.equal(bp.waitingBytes, 0)
  assert.equal(await bp.wait('a', 100, 0), false, 'a deadline already past')
  bp.wake('a')
  assert.equal(bp.waiting, 0)
})

test('a refusal is a typed error', () => {
  const err = new PublishRefusedError('no copy')
  assert.equal(err.code, 'PUBLISH_REFUSED')
  assert.ok(isPublishRefused(err))
  assert.ok(!isPublishRefused(new Error('other')))
})
