// Node addresses: a loopback address with any of its ports taken is skipped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { allocateEndpoints, nextAddress } from '../../src/chaos/addresses.js'
import { randomBaseAddress } from '../helpers/chaos.js'

test('the next address skips .0 and .255', () => {
  assert.equal(nextAddress('127.0.0.2'), '127.0.0.3')
  assert.equal(nextAddress('127.0.0.254'), '127.0.1.1')
  assert.equal(nextAddress('127.1.255.254'), '127.2.0.1')
})

test('an address whose API port is taken is skipped', { skip: process.platform !== 'linux' }, async () => {
  const base = randomBaseAddress()
  const squatter = createServer()
  squatter.listen(8080, base)
  await once(squatter, 'listening')
  try {
    const endpoints = await allocateEndpoints(2, { baseAddress: base })
    assert.deepEqual(endpoints.map((e) => e.host), [nextAddress(base), nextAddress(nextAddress(base))])
    assert.deepEqual(endpoints.map((e) => e.name), ['chaos-1', 'chaos-2'])
    assert.deepEqual([endpoints[0]!.mqttPort, endpoints[0]!.apiPort, endpoints[0]!.clusterPort], [1883, 8080, 7946])
  } finally {
    squatter.close()
  }
})

test('without per-host loopback (macOS) nodes share 127.0.0.1 with distinct ports', async () => {
  const endpoints = await allocateEndpoints(2, { platform: 'darwin', basePort: 20000 + Math.floor(Math.random() * 20000) })
  assert.deepEqual(endpoints.map((e) => e.host), ['127.0.0.1', '127.0.0.1'])
  assert.notEqual(endpoints[0]!.mqttPort, endpoints[1]!.mqttPort)
  assert.equal(new Set(endpoints.flatMap((e) => [e.mqttPort, e.apiPort, e.clusterPort])).size, 6)
})
