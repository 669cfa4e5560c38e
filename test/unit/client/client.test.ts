// The typed client against a small scripted HTTP server: each kind of
// failure becomes an ApiClientError that says what happened.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { ApiClient, ApiClientError, parseSseBlock } from '../../../src/client/index.js'

let server: Server
let base: string
const seen: Array<{ method: string, url: string, auth: string | undefined, body: string }> = []

before(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body })
      switch (req.url) {
        case '/api/mqtt/clients': res.setHeader('content-type', 'application/json'); res.end('[]'); break
        case '/api/mqtt/topic/messages': res.statusCode = 400; res.end('{"status":400,"error":"topic is bad"}'); break
        case '/api/discovery/members': res.statusCode = 502; res.end('<html>bad gateway</html>'); break
        case '/ready': res.statusCode = 503; res.end('{"status":"down","details":{}}'); break
        case '/debug': res.end('not json'); break
        case '/api/mqtt/topic/subscribers': break // never answers
        default: res.statusCode = 404; res.end('{"status":404,"error":"no route"}')
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(async () => {
  server.closeAllConnections()
  server.close()
})

test('success: JSON body parsed; credentials and JSON body sent', async () => {
  const c = new ApiClient({ baseUrl: `${base}/`, username: 'u', password: 'p' })
  try {
    assert.deepEqual(await c.clients(), [])
    assert.equal(seen.at(-1)!.auth, `Basic ${Buffer.from('u:p').toString('base64')}`)
    await assert.rejects(c.inflight('cid'))
    assert.deepEqual(JSON.parse(seen.at(-1)!.body), { client_id: 'cid' })
    assert.equal(seen.at(-1)!.method, 'POST')
  } finally {
    await c.close()
  }
})

test('HTTP error with the server message', async () => {
  const c = new ApiClient({ baseUrl: base })
  try {
    await assert.rejects(c.topicMessages('#'), (err: ApiClientError) => {
      assert.ok(err instanceof ApiClientError)
      assert.equal(err.kind, 'http')
      assert.equal(err.status, 400)
      assert.equal(err.serverMessage, 'topic is bad')
      assert.equal(err.message, `POST ${base}/api/mqtt/topic/messages: HTTP 400: topic is bad`)
      return true
    })
    await assert.rejects(c.members(), (err: ApiClientError) => err.kind === 'http' && err.status === 502 && err.serverMessage === undefined)
  } finally {
    await c.close()
  }
})

test('probes: 503 is an answer, not an error', async () => {
  const c = new ApiClient({ baseUrl: base })
  try {
    assert.deepEqual(await c.ready(), { ok: false, result: { status: 'down', details: {} } })
  } finally {
    await c.close()
  }
})

test('invalid response, timeout, network error', async () => {
  const c = new ApiClient({ baseUrl: base, timeoutMs: 200 })
  try {
    await assert.rejects(c.runtime(), (err: ApiClientError) => err.kind === 'invalid-response' && err.status === 200)
    const started = Date.now()
    await assert.rejects(c.topicSubscribers('a'), (err: ApiClientError) => err.kind === 'timeout' && /no answer within 200 ms/.test(err.message))
    assert.ok(Date.now() - started < 2000)
  } finally {
    await c.close()
  }
  const refused = new ApiClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 2000 })
  try {
    await assert.rejects(refused.clients(), (err: ApiClientError) => err.kind === 'network' && err.status === 0 && /ECONNREFUSED/.test(err.message))
  } finally {
    await refused.close()
  }
})

test('parseSseBlock', () => {
  assert.deepEqual(parseSseBlock('event: cluster:message_to\ndata: {"a":1}'), { event: 'cluster:message_to', data: { a: 1 } })
  assert.deepEqual(parseSseBlock('event: x\ndata: not json'), { event: 'x', data: 'not json' })
  assert.deepEqual(parseSseBlock('data: "keepalive"'), { event: 'message', data: 'keepalive' })
  assert.equal(parseSseBlock(': comment'), undefined)
})
