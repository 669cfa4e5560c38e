import { test } from 'node:test'
import assert from 'node:assert/strict'
import { grantedQos } from '../../../src/server/mqtt/delivery.js'

test('granted QoS is the highest of the matching subscriptions; shared markers do not count', () => {
  assert.equal(grantedQos({ 'a/+': { qos: 1 }, 'b/#': { qos: 2 } }, 'a/x'), 1)
  assert.equal(grantedQos({ 'a/+': { qos: 1 }, 'a/#': { qos: 2 } }, 'a/x'), 2)
  assert.equal(grantedQos({ '$share-group/g/a/#': { qos: 1 } }, 'a/x'), 2)
})
