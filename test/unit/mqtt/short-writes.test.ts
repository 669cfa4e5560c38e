// Packets written without mqtt-packet (wire-writes.ts): four-byte
// acknowledgements (shortAck) and PUBLISHes without MQTT 5 properties in
// one or two buffers (writeShortPublish). The same bytes mqtt-packet writes, and
// anything else left to it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { shortAck, writeShortPublish } from '../../../src/server/mqtt/wire-writes.js'

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

/** What writeShortPublish writes, as one buffer, and the number of writes (undefined: left to mqtt-packet). */
function written (packet: Record<string, unknown>, version = 4): { bytes: Buffer, writes: number } | undefined {
  const chunks: Buffer[] = []
  const r = writeShortPublish({ write: (b) => { chunks.push(b); return true } }, packet, version)
  if (r === undefined) { assert.equal(chunks.length, 0); return undefined }
  return { bytes: Buffer.concat(chunks), writes: chunks.length }
}

test('PUBLISH without properties: the bytes mqtt-packet writes, in one write (two past 512 bytes of payload)', () => {
  const topics = ['t', 'a/b/c', 'temp/ä/温度', '', 'x'.repeat(300)]
  // Around each size where the Remaining Length takes another byte, and past the inline limit.
  const sizes = [0, 1, 64, 100, 122, 123, 124, 125, 126, 127, 128, 512, 513, 16_370, 16_380, 16_384, 70_000]
  for (const version of [3, 4, 5]) {
    for (const topic of topics) {
      for (const size of sizes) {
        for (const [qos, dup, retain] of [[0, false, false], [1, false, true], [2, true, false], [1, true, true]] as const) {
          const payload = Buffer.alloc(size, size % 251)
          const packet = { cmd: 'publish', topic, payload, qos, dup, retain, ...(qos > 0 ? { messageId: 1 + (size % 65535) } : {}) }
          const out = written(packet, version)
          assert.ok(out !== undefined, `${topic} ${size} qos ${qos}`)
          assert.deepEqual(out.bytes, mqttPacket.generate(packet, { protocolVersion: version }), `${topic} ${size} qos ${qos} dup ${dup} retain ${retain}`)
          assert.equal(out.writes, size > 512 ? 2 : 1)
        }
      }
    }
  }
  // String payloads (a will or $SYS message may carry one), ids at the edges.
  for (const packet of [
    { cmd: 'publish', topic: 's', payload: 'héllo', qos: 0 },
    { cmd: 'publish', topic: 's', payload: 'é'.repeat(600), qos: 1, messageId: 65535 },
    { cmd: 'publish', topic: 's', payload: '', qos: 2, messageId: 0 },
    { cmd: 'publish', topic: 's', qos: 0 }
  ]) {
    assert.deepEqual(written(packet)?.bytes, mqttPacket.generate(packet, { protocolVersion: 4 }), JSON.stringify(packet))
  }
  // MQTT 5 with no property to write: absent, empty, or only keys set to undefined (a topic alias taken off).
  for (const properties of [undefined, {}, { topicAlias: undefined, subscriptionIdentifier: undefined }]) {
    const packet = { cmd: 'publish', topic: 'p/5', payload: Buffer.from('v5'), qos: 1, messageId: 9, properties }
    assert.deepEqual(written(packet, 5)?.bytes, mqttPacket.generate(packet, { protocolVersion: 5 }), JSON.stringify(properties))
  }
})

test('a PUBLISH mqtt-packet would refuse or write otherwise is left to it', () => {
  for (const packet of [
    { cmd: 'publish', topic: Buffer.from('t'), payload: Buffer.alloc(1), qos: 0 },
    { cmd: 'publish', topic: 't', payload: Buffer.alloc(1), qos: 1 },
    { cmd: 'publish', topic: 't', payload: Buffer.alloc(1), qos: 1, messageId: 65536 },
    { cmd: 'publish', topic: 't', payload: Buffer.alloc(1), qos: 3, messageId: 1 },
    { cmd: 'publish', topic: 't', payload: 7, qos: 0 },
    { cmd: 'publish', topic: 'x'.repeat(65536), payload: Buffer.alloc(1), qos: 0 }
  ]) {
    assert.equal(written(packet), undefined, JSON.stringify(packet).slice(0, 80))
  }
  // MQTT 5 with properties to write (or a malformed properties value) goes to mqtt-packet.
  for (const properties of [{ messageExpiryInterval: 30 }, { topicAlias: 1 }, { userProperties: { a: 'b' } }, null, [1]]) {
    assert.equal(written({ cmd: 'publish', topic: 't', payload: Buffer.alloc(1), qos: 0, properties }, 5), undefined, JSON.stringify(properties))
  }
  // Properties are ignored before MQTT 5, as mqtt-packet ignores them.
  const v4 = { cmd: 'publish', topic: 't', payload: Buffer.alloc(1), qos: 0, properties: { messageExpiryInterval: 30 } }
  assert.deepEqual(written(v4, 4)?.bytes, mqttPacket.generate(v4, { protocolVersion: 4 }))
})
