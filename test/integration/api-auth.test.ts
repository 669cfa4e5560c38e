// Basic auth on /api, /proxy and /debug when api.user is set (plain and
// scrypt-hashed passwords), while /metrics, /ready and /healthz stay open.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Agent, fetch as undiciFetch } from 'undici'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { ApiClient, ApiClientError } from '../../src/client/index.js'
import { hashPassword } from '../../src/security/password.js'
import { LOGIN_BACKOFF } from '../../src/security/login-backoff.js'

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

const agents: Agent[] = []
after(async () => { for (const a of agents) await a.close() })

/** A caller whose connections come from `from` (a loopback address of its own), so each test has its own backoff record. */
async function caller (from?: string): Promise<(method: string, path: string, body: string | undefined, authorization?: string) => Promise<Response>> {
  const agent = new Agent({ localAddress: from ?? await freeLoopbackAddress() })
  agents.push(agent)
  return async (method, path, body, authorization) => {
    const headers: Record<string, string> = {}
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (authorization !== undefined) headers.authorization = authorization
    return await undiciFetch(n.apiUrl + path, { method, headers, body, dispatcher: agent }) as unknown as Response
  }
}

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
  const from = await caller()
  for (const authorization of [basic('admin', 'nope'), basic('ops', 'admin-pw'), basic('nobody', 'admin-pw'), 'Basic !!!', 'Bearer abc']) {
    const res = await from('GET', '/api/mqtt/clients', undefined, authorization)
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

test('/proxy answers with the caller\'s credentials checked here (members are asked as member-calls.ts says, never with them)', async () => {
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

test('repeated failed logins from one address back it off (429 with Retry-After), other addresses unaffected, a success clears it', async () => {
  const address = await freeLoopbackAddress()
  const from = await caller(address)
  for (let i = 0; i < LOGIN_BACKOFF.FREE_FAILURES; i++) assert.equal((await from('GET', '/api/mqtt/clients', undefined, basic('admin', `guess-${i}`))).status, 401)
  // One more failure starts the window; from then on not even the right password is checked.
  assert.equal((await from('GET', '/api/mqtt/clients', undefined, basic('admin', 'guess-x'))).status, 401)
  const blocked = await from('GET', '/api/mqtt/clients', undefined, basic('admin', 'admin-pw'))
  assert.equal(blocked.status, 429)
  assert.equal(blocked.headers.get('retry-after'), '1')
  assert.match((await blocked.json() as { error: string }).error, new RegExp(`too many failed logins from ${address.replace(/\./g, '\\.')}`))
  const other = await caller()
  assert.equal((await other('GET', '/api/mqtt/clients', undefined, basic('admin', 'admin-pw'))).status, 200, 'another address is not affected')
  // After the window, the right password works and clears the record.
  await new Promise((resolve) => setTimeout(resolve, LOGIN_BACKOFF.BASE_MS + 100))
  assert.equal((await from('GET', '/api/mqtt/clients', undefined, basic('admin', 'admin-pw'))).status, 200)
  assert.equal((await from('GET', '/api/mqtt/clients', undefined, basic('admin', 'nope'))).status, 401, 'counting starts again from zero')
  assert.equal((await from('GET', '/api/mqtt/clients', undefined, basic('admin', 'admin-pw'))).status, 200)
})

test('an unknown user is refused after as much work as a known one with a wrong password (no user enumeration by timing)', async (t) => {
  // Hashes of one cost (as `broker-ha hash-password` makes them), log2 N = 14
  // so that a skipped scrypt shows against HTTP's own time.
  const timed = await startNode({ api: { user: { timed: hashPassword('timed-pw', 14), other: hashPassword('other-pw', 14) } } })
  t.after(async () => { await timed.stop() })
  const time = async (authorization: string): Promise<number> => {
    const agent = new Agent({ localAddress: await freeLoopbackAddress() })
    agents.push(agent)
    const from = async (method: string, path: string, _body: undefined, auth: string): Promise<Response> =>
      await undiciFetch(timed.apiUrl + path, { method, headers: { authorization: auth }, dispatcher: agent }) as unknown as Response
    const started = process.hrtime.bigint()
    assert.equal((await from('GET', '/api/mqtt/clients', undefined, authorization)).status, 401)
    return Number(process.hrtime.bigint() - started) / 1e6
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const known: number[] = []
  const unknown: number[] = []
  // Interleaved, a fresh source address each (no backoff), medians of 5.
  for (let i = 0; i < 5; i++) {
    known.push(await time(basic('timed', `wrong-${i}`)))
    unknown.push(await time(basic(`nobody-${i}`, `wrong-${i}`)))
  }
  const ratio = median(known) / median(unknown)
  // Before: the unknown user was answered with no scrypt at all (about 1 ms against tens of ms here),
  // a ratio of 10 or more. A loaded 2-core CI machine has given 3.2 with both paths hashing.
  assert.ok(ratio < 5 && ratio > 1 / 5, `known-user/unknown-user median time ratio ${ratio.toFixed(2)} (known ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms)`)
})
