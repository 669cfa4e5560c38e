// The pure topic rules behind the MQTT introspection endpoints, and the
// message shape built from a stored packet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { filterProblem, messageInfo, parseSharedFilter, topicMatches, topicProblem } from '../../../src/server/mqtt/introspection.js'

test('topicMatches follows MQTT 5 section 4.7', () => {
  const yes: Array<[string, string]> = [
    ['a/b', 'a/b'], ['a/+', 'a/b'], ['a/#', 'a'], ['a/#', 'a/b/c'], ['#', 'a/b'], ['+/+', 'a/b'],
    ['+', ''], ['a//c', 'a//c'], ['a/+/c', 'a//c'], ['$SYS/#', '$SYS/x']
  ]
  const no: Array<[string, string]> = [
    ['a/b', 'a/c'], ['a/+', 'a/b/c'], ['a/+', 'a'], ['a/b/#', 'a'], ['#', '$SYS/x'], ['+/x', '$SYS/x'], ['a', 'a/b']
  ]
  for (const [f, t] of yes) assert.equal(topicMatches(f, t), true, `${f} matches ${t}`)
  for (const [f, t] of no) assert.equal(topicMatches(f, t), false, `${f} does not match ${t}`)
})

test('filterProblem and topicProblem', () => {
  for (const ok of ['a', 'a/b', '#', 'a/#', '+/b/+', '/', '$share/g/a/#']) assert.equal(filterProblem(ok), undefined, ok)
  assert.match(filterProblem('a/#/b')!, /#/)
  assert.match(filterProblem('a#')!, /#/)
  assert.match(filterProblem('a/b+')!, /\+/)
  assert.match(filterProblem('')!, /empty/)
  assert.equal(topicProblem('a/b'), undefined)
  assert.match(topicProblem('a/+')!, /wildcards/)
  assert.match(topicProblem('a\u0000')!, /U\+0000/)
})

test('parseSharedFilter', () => {
  assert.deepEqual(parseSharedFilter('$share/g/a/#'), { group: 'g', filter: 'a/#' })
  assert.equal(parseSharedFilter('a/#'), undefined)
  assert.equal(parseSharedFilter('$share//a'), undefined)
})

test('messageInfo: seed field names, base64 payload and binary properties', () => {
  const m = messageInfo({
    topic: 't',
    payload: Buffer.from([0xff, 0]),
    qos: 2,
    retain: true,
    dup: true,
    messageId: 42,
    clientId: 'pub',
    messageExpiry: 1_700_000_000_999,
    properties: { correlationData: Buffer.from('id'), contentType: 'x' }
  })
  assert.deepEqual(m, {
    TopicName: 't',
    Payload: '/wA=',
    FixedHeader: { remaining: 0, type: 3, qos: 2, dup: true, retain: true },
    PacketID: 42,
    Created: 0,
    Expiry: 1_700_000_000,
    Origin: 'pub',
    Properties: { correlationData: 'aWQ=', contentType: 'x' }
  })
  assert.equal(messageInfo({ topic: 't', payload: 'text' }).Payload, 'dGV4dA==')
  assert.equal(messageInfo({ topic: 't' }).Properties, null)
})
