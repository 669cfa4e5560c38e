import { test } from 'node:test'
import assert from 'node:assert/strict'
import { messageToEvent } from '../../../src/server/mqtt/bus-events.js'

test('cluster:message_to events have the seed shape', () => {
  assert.deepEqual(messageToEvent({ topic: 'a/b', payload: Buffer.from('hi'), retain: true, qos: 2 }),
    { Node: ['all'], Payload: 'aGk=', Topic: 'a/b', Retain: true, Qos: 2 })
  assert.deepEqual(messageToEvent({ topic: 't', payload: Buffer.alloc(0) }),
    { Node: ['all'], Payload: '', Topic: 't', Retain: false, Qos: 0 })
})
