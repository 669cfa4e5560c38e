// The per-address login backoff: free failures, a doubling window, bounded memory.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LoginBackoff, LOGIN_BACKOFF } from '../../../src/security/login-backoff.js'

test('an address may fail a few times; then each failure shuts it out for a doubling window, up to the maximum', () => {
  const b = new LoginBackoff()
  let now = 1_000_000
  for (let i = 0; i < LOGIN_BACKOFF.FREE_FAILURES; i++) {
    assert.equal(b.blockedFor('10.0.0.1', now), 0)
    b.failed('10.0.0.1', now)
  }
  assert.equal(b.blockedFor('10.0.0.1', now), 0, 'the free failures are free')
  b.failed('10.0.0.1', now)
  assert.equal(b.blockedFor('10.0.0.1', now), LOGIN_BACKOFF.BASE_MS)
  assert.equal(b.blockedFor('10.0.0.2', now), 0, 'other addresses are not affected')
  now += LOGIN_BACKOFF.BASE_MS
  b.failed('10.0.0.1', now)
  assert.equal(b.blockedFor('10.0.0.1', now), 2 * LOGIN_BACKOFF.BASE_MS)
  for (let i = 0; i < 20; i++) b.failed('10.0.0.1', now)
  assert.equal(b.blockedFor('10.0.0.1', now), LOGIN_BACKOFF.MAX_MS, 'capped')
  b.succeeded('10.0.0.1')
  assert.equal(b.blockedFor('10.0.0.1', now), 0, 'a success clears the address')
})

test('an address that stops failing is forgotten', () => {
  const b = new LoginBackoff()
  for (let i = 0; i < 10; i++) b.failed('a', 0)
  assert.ok(b.blockedFor('a', 0) > 0)
  assert.equal(b.blockedFor('a', LOGIN_BACKOFF.FORGET_MS + 1), 0)
  b.failed('a', LOGIN_BACKOFF.FORGET_MS + 2)
  assert.equal(b.blockedFor('a', LOGIN_BACKOFF.FORGET_MS + 2), 0, 'counting starts again')
})

test('memory is bounded: the least recently failed addresses are dropped', () => {
  const b = new LoginBackoff({ capacity: 100 })
  for (let i = 0; i < 10_000; i++) b.failed(`10.0.${i >> 8}.${i & 255}`, i)
  assert.equal(b.size, 100)
})
