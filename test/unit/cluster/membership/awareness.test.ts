import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Awareness } from '../../../../src/server/cluster/membership/awareness.js'

test('the health score stays within [0, max) and stretches timeouts', () => {
  const a = new Awareness(8)
  assert.equal(a.getHealthScore(), 0)
  assert.equal(a.scaleTimeout(500), 500)
  a.applyDelta(-1)
  assert.equal(a.getHealthScore(), 0, 'never below zero')
  a.applyDelta(3)
  assert.equal(a.getHealthScore(), 3)
  assert.equal(a.scaleTimeout(500), 2000)
  a.applyDelta(100)
  assert.equal(a.getHealthScore(), 7, 'capped at max - 1')
  assert.equal(a.scaleTimeout(400), 3200)
  for (let i = 0; i < 7; i++) a.applyDelta(-1)
  assert.equal(a.getHealthScore(), 0, 'successful probes bring it back')
})

test('a multiplier of 1 disables awareness', () => {
  const a = new Awareness(1)
  a.applyDelta(5)
  assert.equal(a.getHealthScore(), 0)
  assert.equal(a.scaleTimeout(500), 500)
})
