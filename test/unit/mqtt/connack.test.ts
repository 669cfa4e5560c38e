// The CONNACK fixes on the way to the socket (connack.ts): session present for
// a resumed session aedes calls absent, and no "shared subscriptions: 0".
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fixedConnack } from '../../../src/server/mqtt/connack.js'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as {
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
  parser: (opts: { protocolVersion: number }) => { on: (e: string, f: (p: Record<string, unknown>) => void) => void, parse: (b: Buffer) => number }
}

function parse (bytes: Buffer, protocolVersion: number): Record<string, unknown> {
  let packet: Record<string, unknown> | undefined
  const parser = mqttPacket.parser({ protocolVersion })
  parser.on('packet', (p) => { packet = p })
  parser.parse(bytes)
  assert.ok(packet !== undefined, 'a whole packet')
  return packet
}

const connack311 = (returnCode: number, sessionPresent = false): Buffer => mqttPacket.generate({ cmd: 'connack', returnCode, sessionPresent }, { protocolVersion: 4 })

test('3.1.1: a resumed session that has one is told so (session present), and only that bit changes', () => {
  const bytes = connack311(0)
  const out = fixedConnack(bytes, { protocolVersion: 4, resume: true, hasSession: () => true })
  assert.deepEqual([...out], [0x20, 2, 1, 0])
  assert.equal(parse(out, 4).sessionPresent, true)
  assert.deepEqual([...bytes], [0x20, 2, 0, 0], 'the input buffer is not written to')
})

test('3.1.1: no stored session, a refused CONNECT, or a clean session: the CONNACK goes out as it came', () => {
  const accepted = connack311(0)
  assert.equal(fixedConnack(accepted, { protocolVersion: 4, resume: true, hasSession: () => false }), accepted)
  assert.equal(fixedConnack(accepted, { protocolVersion: 4, resume: false, hasSession: () => true }), accepted)
  const refused = connack311(5)
  assert.equal(fixedConnack(refused, { protocolVersion: 4, resume: true, hasSession: () => true }), refused, 'never present on a refusal [MQTT-3.2.2-4]')
  const present = connack311(0, true)
  assert.equal(fixedConnack(present, { protocolVersion: 4, resume: true, hasSession: () => true }), present)
  const notConnack = Buffer.from([0xd0, 0])
  assert.equal(fixedConnack(notConnack, { protocolVersion: 4, resume: true, hasSession: () => true }), notConnack)
})

test('MQTT 5: "shared subscription available: 0" is taken out, the other properties stay, and session present is fixed', () => {
  const bytes = mqttPacket.generate({ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { sharedSubscriptionAvailable: false, topicAliasMaximum: 10, maximumQoS: 2 } }, { protocolVersion: 5 })
  const out = parse(fixedConnack(bytes, { protocolVersion: 5, resume: true, hasSession: () => true }), 5)
  assert.equal(out.sessionPresent, true)
  const properties = out.properties as Record<string, unknown>
  assert.equal(properties.sharedSubscriptionAvailable, undefined)
  assert.equal(properties.topicAliasMaximum, 10)
  assert.equal(properties.maximumQoS, 2)
})
