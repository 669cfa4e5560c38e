import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formationWait, hasDiscovery, resolvePeers } from '../../../../src/server/cluster/membership/discovery.js'
import { advertiseAddress } from '../../../../src/server/cluster/membership/swim-membership.js'
import { seededRandom } from '../../../../src/server/cluster/membership/clock.js'

test('seeds resolve to unique addresses with the default port, ourselves excluded', async () => {
  const r = await resolvePeers({
    domain: '',
    seeds: ['127.0.0.2', '127.0.0.3:7000', '127.0.0.2:7946', '127.0.0.9', '[::1]:7946'],
    dnsServer: '',
    defaultPort: 7946
  }, [{ host: '127.0.0.9', port: 7946 }])
  assert.deepEqual(r.addresses, [{ host: '127.0.0.2', port: 7946 }, { host: '127.0.0.3', port: 7000 }, { host: '::1', port: 7946 }])
  assert.deepEqual(r.errors, [])
})

test('names that do not resolve are reported, not thrown', async () => {
  const r = await resolvePeers({ domain: '', seeds: ['no-such-host.invalid:7946'], dnsServer: '', defaultPort: 7946 })
  assert.deepEqual(r.addresses, [])
  assert.equal(r.errors.length, 1)
})

test('discovery is configured by a domain or seeds', () => {
  assert.equal(hasDiscovery({ domain: '', seeds: [], dnsServer: '', defaultPort: 1 }), false)
  assert.equal(hasDiscovery({ domain: 'x', seeds: [], dnsServer: '', defaultPort: 1 }), true)
  assert.equal(hasDiscovery({ domain: '', seeds: ['a'], dnsServer: '', defaultPort: 1 }), true)
})

test('the formation wait is spread over [min, max]', () => {
  const random = seededRandom(7)
  const waits = Array.from({ length: 200 }, () => formationWait(1000, 5000, random))
  assert.ok(waits.every((w) => w >= 1000 && w <= 5000))
  assert.ok(Math.max(...waits) - Math.min(...waits) > 3000, 'actually spread')
  assert.equal(formationWait(300, 300, random), 300)
})

test('the advertised address: explicit, else the bind address, else a non-loopback IPv4', () => {
  assert.equal(advertiseAddress('127.0.0.5', '10.0.0.1'), '10.0.0.1')
  assert.equal(advertiseAddress('127.0.0.5', ''), '127.0.0.5')
  const any = advertiseAddress('0.0.0.0', '')
  assert.match(any, /^\d+\.\d+\.\d+\.\d+$/)
  assert.notEqual(any, '0.0.0.0')
})
