import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { toMarker, isMarker, displayTopic } from '../../../src/server/mqtt/shared-subscriptions.js'
import { fixedConnack } from '../../../src/server/mqtt/connack.js'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as {
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
  parser: (opts: { protocolVersion: number }) => { on: (e: string, f: (p: Record<string, unknown>) => void) => void, parse: (b: Buffer) => number }
}
const generate = mqttPacket.generate
function parse (bytes: Buffer, protocolVersion = 5): Record<string, unknown> {
  let packet: Record<string, unknown> | undefined
  const p = mqttPacket.parser({ protocolVersion })
  p.on('packet', (x) => { packet = x })
  p.parse(bytes)
  return packet!
}

test('$share/group/filter maps to a marker topic and back', () => {
  assert.equal(toMarker('$share/g/a/+/c'), '$share-group/g/a/+/c')
  assert.equal(displayTopic('$share-group/g/a/+/c'), '$share/g/a/+/c')
  assert.equal(isMarker('$share-group/g/#'), true)
  assert.equal(isMarker('a/b'), false)
  assert.equal(displayTopic('a/b'), 'a/b')
  // Invalid shares stay as they are (aedes then refuses them).
  for (const bad of ['$share/', '$share//a', '$share/g', '$share/g/', '$share/g+/a', '$share/#/a', 'share/g/a']) {
    assert.equal(toMarker(bad), undefined, bad)
  }
})

test('the CONNACK rewrite drops only Shared Subscription Available', () => {
  const v5 = { protocolVersion: 5, resume: false, hasSession: () => false }
  const original = generate({ cmd: 'connack', sessionPresent: true, reasonCode: 0, properties: { sharedSubscriptionAvailable: false, topicAliasMaximum: 5, receiveMaximum: 20 } }, { protocolVersion: 5 })
  const rewritten = fixedConnack(original, v5)
  const decoded = parse(rewritten)
  assert.equal(decoded.cmd, 'connack')
  assert.equal(decoded.sessionPresent, true)
  assert.deepEqual({ ...(decoded.properties as object) }, { topicAliasMaximum: 5, receiveMaximum: 20 })
  // Without the property (or not a CONNACK) the bytes pass unchanged.
  const plain = generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0x87 }, { protocolVersion: 5 })
  assert.equal(fixedConnack(plain, v5), plain)
})

test('the CONNACK says session present for a resumed session without subscriptions (queued or in-flight state), never for a refused or clean one', () => {
  const v3 = generate({ cmd: 'connack', sessionPresent: false, returnCode: 0 }, { protocolVersion: 4 })
  assert.equal(parse(fixedConnack(v3, { protocolVersion: 4, resume: true, hasSession: () => true }), 4).sessionPresent, true)
  assert.equal(fixedConnack(v3, { protocolVersion: 4, resume: true, hasSession: () => false }), v3)
  assert.equal(fixedConnack(v3, { protocolVersion: 4, resume: false, hasSession: () => true }), v3)
  const refused = generate({ cmd: 'connack', sessionPresent: false, returnCode: 5 }, { protocolVersion: 4 })
  assert.equal(fixedConnack(refused, { protocolVersion: 4, resume: true, hasSession: () => true }), refused)
})
