// The four-byte acknowledgements written without mqtt-packet
// (aedes-internals.ts shortAck): the same bytes mqtt-packet writes, and
// nothing it would write differently.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { shortAck } from '../../../src/server/mqtt/aedes-internals.js'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate: (packet: object, opts: { protocolVersion: number }) => Buffer }

test('PUBACK, PUBREC, PUBREL and PUBCOMP with only an id: the bytes mqtt-packet writes, in every protocol version', () => {
  for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp']) {
    for (const messageId of [1, 255, 256, 4660, 65535]) {
      for (const version of [3, 4]) {
        const packet = { cmd, messageId }
        assert.deepEqual(shortAck(packet, version), mqttPacket.generate(packet, { protocolVersion: version }), `${cmd} ${messageId} v${version}`)
      }
      const success = { cmd, messageId, reasonCode: 0 }
      assert.deepEqual(shortAck(success, 5), mqttPacket.generate(success, { protocolVersion: 5 }), `${cmd} ${messageId} v5`)
    }
  }
})

test('an acknowledgement with more than an id is left to mqtt-packet', () => {
  assert.equal(shortAck({ cmd: 'puback', messageId: 1, reasonCode: 0x10 }, 5), undefined, 'a reason code')
  assert.equal(shortAck({ cmd: 'puback', messageId: 1, reasonCode: 0, properties: { reasonString: 'x' } }, 5), undefined, 'properties')
  assert.equal(shortAck({ cmd: 'puback', messageId: 1 }, 5), undefined, 'no reason code given in MQTT 5')
  assert.equal(shortAck({ cmd: 'pubrel', messageId: 1, dup: true }, 4), undefined, 'a DUP flag')
  assert.equal(shortAck({ cmd: 'publish', messageId: 1 }, 4), undefined, 'not an acknowledgement')
  assert.equal(shortAck({ cmd: 'constructor', messageId: 1 }, 4), undefined)
  for (const messageId of [undefined, '1', -1, 65536, 1.5]) {
    assert.equal(shortAck({ cmd: 'puback', messageId }, 4), undefined, `id ${String(messageId)}`)
  }
})
