// mqtt.listeners: defaults by type, mqtt.port as the first plain listener,
// the rules between fields, and the BROKER_MQTT_LISTENERS[_<N>_<FIELD>] variables.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig, listenersOf } from '../../../src/config/index.js'
import { BrokerHaError } from '../../../src/errors.js'

function problem (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof BrokerHaError)
    assert.equal(err.code, 'CONFIG_INVALID')
    return err.message
  }
  throw new Error('no config error')
}

test('mqtt.port is the first plain listener; ports default by type', () => {
  const { config } = loadConfig({ object: { mqtt: { bind: '127.0.0.9', listeners: [{ type: 'mqtts', cert: '/c', key: '/k' }, { type: 'ws' }, { type: 'wss', cert: '/c', key: '/k', bind: '127.0.0.10' }] } } })
  assert.deepEqual(listenersOf(config).map((l) => `${l.configKey} ${l.type} ${l.bind}:${l.port}`), [
    'mqtt.port mqtt 127.0.0.9:1883',
    'mqtt.listeners[0] mqtts 127.0.0.9:8883',
    'mqtt.listeners[1] ws 127.0.0.9:8083',
    'mqtt.listeners[2] wss 127.0.0.10:8084'
  ])
  assert.equal(listenersOf(config)[2]!.path, '/mqtt')
  const tlsOnly = loadConfig({ object: { mqtt: { port: 0, listeners: [{ type: 'mqtts', cert: '/c', key: '/k' }] } } }).config
  assert.deepEqual(listenersOf(tlsOnly).map((l) => l.type), ['mqtts'])
})

test('field rules name the key', () => {
  assert.match(problem(() => loadConfig({ object: { mqtt: { listeners: [{ type: 'mqtts' }] } } })), /mqtt\.listeners\[0\]\.cert: is required for type mqtts/)
  assert.match(problem(() => loadConfig({ object: { mqtt: { listeners: [{ type: 'mqtts', cert: '/c', key: '/k', client_auth: 'require' }] } } })), /mqtt\.listeners\[0\]\.ca: is required with client_auth require/)
  assert.match(problem(() => loadConfig({ object: { mqtt: { listeners: [{ type: 'ws', cert: '/c' }] } } })), /mqtt\.listeners\[0\]\.cert: applies to mqtts and wss listeners, not ws/)
  assert.match(problem(() => loadConfig({ object: { mqtt: { listeners: [{ type: 'ws', path: 'mqtt' }] } } })), /mqtt\.listeners\[0\]\.path: "mqtt" must start with \//)
  assert.match(problem(() => loadConfig({ object: { mqtt: { listeners: [{ type: 'ws', port: 1883 }] } } })), /mqtt\.listeners\[0\]\.port: port 1883 is already used by mqtt\.port \(mqtt\.port is the first plain listener: change this port, or set mqtt\.port: 0/)
  assert.match(problem(() => loadConfig({ object: { mqtt: { listeners: [{ type: 'tcp' }] } } })), /mqtt\.listeners\[0\]\.type: must be one of mqtt, mqtts, ws, wss|mqtt\.listeners\/0\/type|listeners\[0\]\.type/)
  assert.match(problem(() => loadConfig({ object: { mqtt: { port: 0 } } })), /mqtt\.port: 0 \(no plain listener\) needs at least one entry in mqtt\.listeners/)
  assert.match(problem(() => loadConfig({ object: { api: { port: 8083 }, mqtt: { listeners: [{ type: 'ws' }] } } })), /port 8083 is already used/)
})

test('environment: the whole list as JSON, or one field of entry N', () => {
  const env = {
    BROKER_MQTT_LISTENERS: '[{"type":"mqtts","cert":"/tls/tls.crt","key":"/tls/tls.key"}]',
    BROKER_MQTT_LISTENERS_0_PORT: '8886',
    BROKER_MQTT_LISTENERS_1_TYPE: 'ws',
    BROKER_MQTT_LISTENERS_1_PROXY_PROTOCOL: 'true',
    BROKER_MQTT_LISTENERS_1_ORIGINS: 'https://a.example,https://b.example'
  }
  const loaded = loadConfig({ object: {}, env })
  const ls = listenersOf(loaded.config)
  assert.deepEqual(ls.map((l) => `${l.type}:${l.port}`), ['mqtt:1883', 'mqtts:8886', 'ws:8083'])
  assert.equal(ls[2]!.proxy_protocol, true)
  assert.deepEqual(ls[2]!.origins, ['https://a.example', 'https://b.example'])
  assert.equal(loaded.warnings.length, 0, loaded.warnings.join('; '))
  assert.deepEqual(loaded.sources.get('mqtt.listeners'), { kind: 'env', name: 'BROKER_MQTT_LISTENERS_1_ORIGINS' })
  // A field over a file's entry keeps the rest of that entry.
  const over = loadConfig({ object: { mqtt: { listeners: [{ type: 'ws', path: '/x' }] } }, env: { BROKER_MQTT_LISTENERS_0_PORT: '9001' } })
  assert.deepEqual(listenersOf(over.config).map((l) => `${l.type}:${l.port}${l.path}`).slice(1), ['ws:9001/x'])
  assert.match(problem(() => loadConfig({ object: {}, env: { BROKER_MQTT_LISTENERS_0_PORT: 'x', BROKER_MQTT_LISTENERS_0_TYPE: 'ws' } })), /BROKER_MQTT_LISTENERS_0_PORT|mqtt\.listeners\[0\]\.port/)
})
