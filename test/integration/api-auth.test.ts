// Basic auth on /api, /proxy and /debug when api.user is set (plain and
// scrypt-hashed passwords), while /metrics, /ready and /healthz stay open.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startNode, type TestNode } from '../helpers/node.js'
import { ApiClient, ApiClientError } from '../../src/client/index.js'
import { hashPassword } from '../../src/security/password.js'

let n: TestNode
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

before(async () => {
  // log2 N = 10: a real scrypt hash, cheap enough for a test.
  n = await startNode({ api: { user: { admin: 'admin-pw', ops: hashPassword('ops-pw', 10) } } })
})
after(async () => { await n.stop() })

const PROTECTED: Array<[string, string, string?]> = [
  ['GET', '/api/discovery/members'],
  ['GET', '/api/mqtt/clients'],
  ['POST', '/api/mqtt/topic/messages', '{"topic":"#"}'],
  ['POST', '/api/mqtt/client/stop', '{"client_id":"x"}'],
  ['POST', '/api/sse', '{"filters":[]}'],
  ['GET', '/proxy/api/mqtt/clients'],
  ['GET', '/debug'],
  ['GET', '/debug/pprof/profile?seconds=1']
]

async function call (method: string, path: string, body: string | undefined, authorization?: string): Promise<Response> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (authorization !== undefined) headers.authorization = authorization
  return await fetch(n.apiUrl + path, { method, headers, body })
}

test('without credentials: 401 with a Basic challenge, before the body is looked at', async () => {
  for (const [method, path, body] of PROTECTED) {
    const res = await call(method, path, body)
    assert.equal(res.status, 401, path)
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="broker-ha"/)
    assert.deepEqual(await res.json(), { status: 401, error: 'authentication required (HTTP basic auth)' })
  }
})

test('wrong password, unknown user, malformed header: 401', async () => {
  for (const authorization of [basic('admin', 'nope'), basic('ops', 'admin-pw'), basic('nobody', 'admin-pw'), 'Basic !!!', 'Bearer abc', basic('admin', '')]) {
    const res = await call('GET', '/api/mqtt/clients', undefined, authorization)
    assert.equal(res.status, 401, authorization)
    assert.equal((await res.json() as { error: string }).error, 'wrong username or password')
  }
})

test('right credentials, plain and scrypt-hashed: 200', async () => {
  for (const authorization of [basic('admin', 'admin-pw'), basic('ops', 'ops-pw'), basic('ops', 'ops-pw')]) {
    const res = await call('GET', '/api/mqtt/clients', undefined, authorization)
    assert.equal(res.status, 200, authorization)
    assert.deepEqual(await res.json(), [])
  }
})

test('/metrics, /ready, /healthz and /openapi.json stay open', async () => {
  for (const path of ['/metrics', '/ready', '/healthz', '/openapi.json']) {
    const res = await fetch(n.apiUrl + path)
    assert.equal(res.status, 200, path)
    await res.arrayBuffer()
  }
})

test('/proxy forwards the caller\'s credentials to every member', async () => {
  const good = new ApiClient({ baseUrl: n.apiUrl, username: 'ops', password: 'ops-pw' })
  try {
    assert.deepEqual(await good.proxyTopicMessages('none/#'), { [n.config.cluster.name]: [] })
  } finally {
    await good.close()
  }
})

test('the client reports a refusal as an ApiClientError with status and server message', async () => {
  const bad = new ApiClient({ baseUrl: n.apiUrl, username: 'admin', password: 'wrong' })
  try {
    await assert.rejects(bad.clients(), (err: unknown) => {
      assert.ok(err instanceof ApiClientError)
      assert.equal(err.kind, 'http')
      assert.equal(err.status, 401)
      assert.equal(err.serverMessage, 'wrong username or password')
      assert.match(err.message, /GET http:.*\/api\/mqtt\/clients: HTTP 401: wrong username or password/)
      return true
    })
    // Probes need no credentials, so the same client still reads them.
    assert.equal((await bad.ready()).ok, true)
  } finally {
    await bad.close()
  }
})
