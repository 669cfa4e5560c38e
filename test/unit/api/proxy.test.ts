// The pure parts of /proxy: which members are asked, at which address, and
// how one failing member is folded into the answer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fanOut, memberApiUrl, proxyTargets } from '../../../src/server/api/routes/proxy.js'
import { ApiClientError } from '../../../src/client/index.js'
import type { Member } from '../../../src/server/cluster/membership/membership.js'

const member = (name: string, state: Member['state'] = 'alive', addr = '10.0.0.1'): Member =>
  ({ name, addr, port: 7946, meta: { api: 8081, mqtt: 1883, version: 't' }, state, incarnation: 0, since: 0 })

test('alive and suspect members are asked; dead and left ones are not', () => {
  const names = proxyTargets([member('a'), member('b', 'suspect'), member('c', 'dead'), member('d', 'left')]).map((m) => m.name)
  assert.deepEqual(names, ['a', 'b'])
})

test('member API address from Addr and Meta.api, IPv6 in brackets', () => {
  assert.equal(memberApiUrl(member('a')), 'http://10.0.0.1:8081')
  assert.equal(memberApiUrl(member('a', 'alive', 'fd00::1')), 'http://[fd00::1]:8081')
})

test('a member address that is not an IP literal, or a port that is not an integer port, makes no URL', () => {
  const withMeta = (addr: string, api: unknown): Member => ({ ...member('m', 'alive', addr), meta: { api: api as number, mqtt: 1883, version: 't' } })
  for (const addr of ['evil.example.com', '10.0.0.1/admin?x=', '10.0.0.1:9999', 'user:pw@10.0.0.1', '10.0.0.1#', '']) {
    assert.throws(() => memberApiUrl(withMeta(addr, 8081)), /is not an IP address/, addr)
  }
  for (const api of [0, 65536, 80.5, '80/x', -1]) assert.throws(() => memberApiUrl(withMeta('10.0.0.1', api)), /not a port number/, String(api))
})

test('fanOut: answers by member name, failures as {error}', async () => {
  const answer = await fanOut([member('ok'), member('http'), member('slow'), member('plain')], async (m) => {
    if (m.name === 'ok') return [1]
    if (m.name === 'http') throw new ApiClientError('http', 'x', { status: 401, serverMessage: 'wrong username or password', method: 'GET', url: 'u' })
    if (m.name === 'slow') throw new ApiClientError('timeout', 'GET u: no answer within 5 ms', { method: 'GET', url: 'u' })
    throw new Error('boom')
  })
  assert.deepEqual(answer, {
    ok: [1],
    http: { error: 'HTTP 401: wrong username or password' },
    slow: { error: 'timeout: GET u: no answer within 5 ms' },
    plain: { error: 'boom' }
  })
})
