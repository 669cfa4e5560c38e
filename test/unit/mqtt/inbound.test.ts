import { test } from 'node:test'
import assert from 'node:assert/strict'
import { keepaliveRefused } from '../../../src/server/mqtt/inbound.js'

test('keep alive limit applies to MQTT 3.1/3.1.1 CONNECTs only', () => {
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 4, keepalive: 60 }, 30), true)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 4, keepalive: 0 }, 30), true)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 3, keepalive: 30 }, 30), false)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 5, keepalive: 600 }, 30), false)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 4, keepalive: 6000 }, 0), false)
})
