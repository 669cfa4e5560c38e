import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../../src/config/index.js'
import { aedesOptions } from '../../../src/server/mqtt/options.js'

test('aedes options come from config.mqtt and cluster.name', () => {
  const { config } = loadConfig({
    object: {
      cluster: { name: 'node-a' },
      mqtt: { max_packet_size: 2048, max_inflight: 7, topic_alias_maximum: 3, max_keepalive: 90, max_session_expiry: 3600, max_client_id_length: 64, connect_timeout: 1234 }
    }
  })
  const o = aedesOptions(config, '0badc0de')
  // The broker id names this process: a restarted node is a new sender.
  assert.equal(o.id, 'node-a@0badc0de')
  assert.match(aedesOptions(config).id ?? '', /^node-a@[0-9a-f]{8}$/)
  assert.notEqual(aedesOptions(config).id, aedesOptions(config).id)
  assert.equal(o.maximumPacketSize, 2048)
  assert.equal(o.receiveMaximum, 7)
  assert.equal(o.topicAliasMaximum, 3)
  // No keep alive limit for aedes: keep-alive.ts applies max_keepalive (and server_keep_alive) itself.
  assert.equal((o as unknown as Record<string, unknown>).keepaliveLimit, undefined)
  assert.equal(o.sessionExpiryIntervalLimit, 3600)
  assert.equal(o.maxClientsIdLength, 64)
  assert.equal(o.connectTimeout, 1234)
  // Pipelined packets behind CONNECT: at least what a client may have in flight.
  assert.ok(o.queueLimit >= 7)
})

test('defaults give a usable broker', () => {
  const { config } = loadConfig({ object: {} })
  const o = aedesOptions(config)
  assert.equal(o.maximumPacketSize, config.mqtt.max_packet_size)
  assert.equal(o.sessionExpiryIntervalLimit, 0)
})
