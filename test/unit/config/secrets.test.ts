// Secrets of a loaded config read as before but are not held as strings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../../src/config/index.js'

test('secrets read back as configured, from getters over masked bytes; the object stays frozen', () => {
  const key = 'k'.repeat(32)
  const { config } = loadConfig({
    object: {
      cluster: { config: { secret_key: key, secondary_keys: ['s'.repeat(16)] } },
      api: { user: { ops: 'ops-pw' } },
      mqtt: { auth: [{ username: 'd', password: 'd-pw', allow: true }] }
    }
  })
  assert.equal(config.cluster.config.secret_key, key)
  assert.deepEqual([...config.cluster.config.secondary_keys], ['s'.repeat(16)])
  assert.deepEqual({ ...config.api.user }, { ops: 'ops-pw' })
  assert.equal(config.mqtt.auth[0]!.password, 'd-pw')
  const d = Object.getOwnPropertyDescriptor(config.cluster.config, 'secret_key')!
  assert.equal(typeof d.get, 'function', 'an accessor, not a string value')
  assert.equal(d.value, undefined)
  assert.ok(Object.isFrozen(config.cluster.config))
  assert.throws(() => { (config.cluster.config as { secret_key: string }).secret_key = 'x' })
  assert.equal(loadConfig({ object: {} }).config.cluster.config.secret_key, '', 'no key stays the empty string')
})
