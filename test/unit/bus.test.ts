import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Bus } from '../../src/server/bus.js'

test('subscribers receive only their channels, in order', async () => {
  const bus = new Bus()
  const sub = bus.subscribe('sse', ['cluster:message_to'], 10)
  bus.publish('cluster:message_from', { n: 0 })
  bus.publish('cluster:message_to', { n: 1 })
  bus.publish('cluster:message_to', { n: 2 })
  assert.deepEqual(await sub.next(), { channel: 'cluster:message_to', data: { n: 1 } })
  assert.deepEqual(sub.drain(), [{ channel: 'cluster:message_to', data: { n: 2 } }])
})

test('a full subscriber drops and counts instead of blocking; others are unaffected', () => {
  const bus = new Bus()
  const slow = bus.subscribe('slow', ['cluster:message_to'], 2)
  const fast = bus.subscribe('fast', ['cluster:message_to'], 100)
  for (let i = 0; i < 5; i++) bus.publish('cluster:message_to', i)
  assert.equal(slow.drain().length, 2)
  assert.equal(slow.dropped, 3)
  assert.equal(fast.drain().length, 5)
  assert.equal(bus.dropped.get('cluster:message_to'), 3)
})

test('a waiting reader is woken by publish, and by close with undefined', async () => {
  const bus = new Bus()
  const sub = bus.subscribe('w', ['cluster:new_member'], 1)
  const pending = sub.next()
  bus.publish('cluster:new_member', 'n1')
  assert.deepEqual(await pending, { channel: 'cluster:new_member', data: 'n1' })
  const closed = sub.next()
  sub.close()
  assert.equal(await closed, undefined)
})

test('closing removes the subscription from the bus', () => {
  const bus = new Bus()
  const sub = bus.subscribe('x', ['cluster:message_to', 'cluster:message_from'], 1)
  assert.equal(bus.subscriberCount(), 1)
  assert.equal(bus.hasSubscribers('cluster:message_from'), true)
  sub.close()
  assert.equal(bus.subscriberCount(), 0)
  assert.equal(bus.hasSubscribers('cluster:message_to'), false)
})
