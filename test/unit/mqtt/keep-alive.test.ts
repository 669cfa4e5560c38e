import { test } from 'node:test'
import assert from 'node:assert/strict'
import { keepaliveRefused, serverKeepAlive, keepAliveExpired } from '../../../src/server/mqtt/keep-alive.js'

test('keep alive limit applies to MQTT 3.1/3.1.1 CONNECTs only', () => {
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 4, keepalive: 60 }, 30), true)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 4, keepalive: 0 }, 30), true)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 3, keepalive: 30 }, 30), false)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 5, keepalive: 600 }, 30), false)
  assert.equal(keepaliveRefused({ cmd: 'connect', protocolVersion: 4, keepalive: 6000 }, 0), false)
})

test('MQTT 5 Server Keep Alive: server_keep_alive always; else max_keepalive for none or more', () => {
  const connect = (keepalive: number, protocolVersion = 5) => ({ cmd: 'connect', protocolVersion, keepalive })
  assert.equal(serverKeepAlive(connect(60), { maxKeepalive: 0, serverKeepAlive: 20 }), 20)
  assert.equal(serverKeepAlive(connect(5), { maxKeepalive: 30, serverKeepAlive: 20 }), 20)
  assert.equal(serverKeepAlive(connect(0), { maxKeepalive: 0, serverKeepAlive: 20 }), 20)
  assert.equal(serverKeepAlive(connect(60), { maxKeepalive: 30, serverKeepAlive: 0 }), 30)
  assert.equal(serverKeepAlive(connect(0), { maxKeepalive: 30, serverKeepAlive: 0 }), 30)
  assert.equal(serverKeepAlive(connect(10), { maxKeepalive: 30, serverKeepAlive: 0 }), undefined)
  assert.equal(serverKeepAlive(connect(60), { maxKeepalive: 0, serverKeepAlive: 0 }), undefined)
  // MQTT 3.1.1 has no Server Keep Alive.
  assert.equal(serverKeepAlive(connect(60, 4), { maxKeepalive: 30, serverKeepAlive: 20 }), undefined)
})

test('keep alive sweep: expired once the whole interval passed without a packet, never before; 0 is none', () => {
  // aedes' interval for keep alive 1 s: 1.5 s plus 1 ms.
  assert.equal(keepAliveExpired(10_000, 1501, 11_500), false)
  assert.equal(keepAliveExpired(10_000, 1501, 11_501), true)
  assert.equal(keepAliveExpired(10_000, 1501, 20_000), true)
  assert.equal(keepAliveExpired(10_000, 0, 1e9), false)
  assert.equal(keepAliveExpired(10_000, -1, 1e9), false)
})
