// The pure parts of finding a client on other members: the concurrent
// search, the 404 message, and the local-scope marker added to requests.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { notFoundMessage, searchMembers } from '../../../src/server/api/cluster-client-control.js'
import { isLocalScope, SCOPE_HEADER, withLocalScopeHeader } from '../../../src/server/api/local-scope.js'
import { ApiClientError } from '../../../src/client/index.js'
import type { Member } from '../../../src/server/cluster/membership/membership.js'

const member = (name: string): Member =>
  ({ name, addr: '10.0.0.1', port: 7946, meta: { api: 8081, mqtt: 1883, version: 't' }, state: 'alive', incarnation: 0, since: 0 })

test('searchMembers resolves at the first member that has it, without waiting for slow ones', async () => {
  let releaseSlow: () => void = () => {}
  const slow = new Promise<undefined>((resolve) => { releaseSlow = () => resolve(undefined) })
  const search = await searchMembers([member('slow'), member('absent'), member('holder')], async (m) => {
    if (m.name === 'slow') return await slow
    if (m.name === 'absent') return undefined
    return 'here'
  })
  assert.deepEqual(search.found, { member: 'holder', value: 'here' })
  releaseSlow()
})

test('searchMembers: nothing found, members that failed are named with why', async () => {
  const search = await searchMembers([member('absent'), member('late'), member('boom')], async (m) => {
    if (m.name === 'late') throw new ApiClientError('timeout', 'POST u: no answer within 5 ms', { method: 'POST', url: 'u' })
    if (m.name === 'boom') throw new ApiClientError('http', 'x', { status: 401, serverMessage: 'wrong username or password', method: 'POST', url: 'u' })
    return undefined
  })
  assert.equal(search.found, undefined)
  assert.deepEqual(search.unreachable, { late: 'timeout: POST u: no answer within 5 ms', boom: 'HTTP 401: wrong username or password' })
  assert.deepEqual(await searchMembers([], async () => 1), { unreachable: {} })
})

test('the 404 message says when some members could not be asked', () => {
  assert.equal(notFoundMessage('c1', {}), 'client "c1" is not connected to any member')
  assert.equal(
    notFoundMessage('c1', { y: 'network: refused', x: 'timeout: slow' }),
    'client "c1" is not connected to any reachable member; unreachable: x (timeout: slow), y (network: refused)'
  )
})

test('the local-scope marker is added to every header shape undici accepts', () => {
  assert.deepEqual(withLocalScopeHeader(undefined), { [SCOPE_HEADER]: 'local' })
  assert.deepEqual(withLocalScopeHeader({ authorization: 'Basic x' }), { authorization: 'Basic x', [SCOPE_HEADER]: 'local' })
  assert.deepEqual(withLocalScopeHeader(['authorization', 'Basic x']), ['authorization', 'Basic x', SCOPE_HEADER, 'local'])
  assert.deepEqual(withLocalScopeHeader(new Map([['accept', 'application/json']])), { accept: 'application/json', [SCOPE_HEADER]: 'local' })
  assert.equal(isLocalScope({ [SCOPE_HEADER]: 'local' }), true)
  assert.equal(isLocalScope({ [SCOPE_HEADER]: 'cluster' }), false)
  assert.equal(isLocalScope({}), false)
})
