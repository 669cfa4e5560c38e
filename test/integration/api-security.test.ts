// The HTTP API played by an attacker (issue 14): a member that advertises an
// address to steer /proxy elsewhere, a member that would collect the
// operator's password, a caller from another host reaching /debug,
// client/stop and /chaos without api.user, and a heap snapshot searched for
// the cluster key and passwords.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'
import { pino } from 'pino'
import mqtt from 'mqtt'
import { startNode, startProcessNode, nodeConfigObject, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { loadConfig } from '../../src/config/index.js'
import { BrokerNode } from '../../src/server/node.js'
import type { Member } from '../../src/server/cluster/membership/membership.js'
import { MEMBER_HEADER } from '../../src/security/member-credential.js'

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
const KEY = 'api-security-test-key-of-32bytes'

/** An HTTP listener posing as a member's API: answers every request with `[]` and records it. */
async function fakeMemberApi (host: string): Promise<{ port: number, seen: Array<{ method: string, url: string, headers: IncomingHttpHeaders }> }> {
  const seen: Array<{ method: string, url: string, headers: IncomingHttpHeaders }> = []
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers })
    req.resume()
    // As a member without the client answers client/stop.
    const stop = req.url === '/api/mqtt/client/stop'
    res.writeHead(stop ? 404 : 200, { 'content-type': 'application/json' })
    res.end(stop ? '{"status":404,"error":"not here"}' : '[]')
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  cleanups.push(async () => await new Promise((resolve) => server.close(resolve)))
  return { port: (server.address() as AddressInfo).port, seen }
}

/** Makes `n`'s membership list extra members, as if gossip had brought them. */
function injectMembers (n: TestNode, extra: () => Member[]): void {
  const membership = n.node.membership
  const real = membership.members.bind(membership)
  membership.members = () => [...real(), ...extra()]
}

const fake = (name: string, addr: string, api: number): Member =>
  ({ name, addr, port: 7946, meta: { api, mqtt: 1883, version: 't' }, state: 'alive', incarnation: 1, since: 0 })

/** A caller whose connections come from `from`. */
function from (address: string): Agent {
  const agent = new Agent({ localAddress: address })
  cleanups.push(async () => await agent.close())
  return agent
}

async function call (url: string, options: { method?: 'GET' | 'POST', body?: object, authorization?: string, dispatcher?: Agent } = {}): Promise<{ status: number, text: string }> {
  const headers: Record<string, string> = {}
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  if (options.authorization !== undefined) headers.authorization = options.authorization
  const res = await request(url, {
    method: options.method ?? 'GET',
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher })
  })
  return { status: res.statusCode, text: await res.body.text() }
}

test('/proxy never sends the caller\'s credentials to a member; with a cluster key it presents the member credential instead', async () => {
  const n = await startNode({ api: { user: { ops: 'ops-password-1' }, proxy_timeout: 2000 }, cluster: { config: { secret_key: KEY } } })
  cleanups.push(() => n.stop())
  const member = await fakeMemberApi(n.host)
  injectMembers(n, () => [fake('collector', n.host, member.port)])

  const answer = await call(`${n.apiUrl}/proxy/api/mqtt/clients`, { authorization: basic('ops', 'ops-password-1') })
  assert.equal(answer.status, 200, answer.text)
  assert.deepEqual(JSON.parse(answer.text).collector, [])
  await waitFor(() => member.seen.length > 0, { message: 'the member was asked' })
  for (const r of member.seen) {
    assert.equal(r.headers.authorization, undefined, 'the operator\'s Authorization header never reaches a member')
    assert.ok(!JSON.stringify(r.headers).includes(Buffer.from('ops:ops-password-1').toString('base64')))
    assert.match(String(r.headers[MEMBER_HEADER]), /^v1 \d+ [A-Za-z0-9_-]{43}$/, 'the member credential instead')
    assert.equal(r.headers['x-broker-ha-scope'], 'local')
  }

  // The same for client/stop looking for a client on the other members.
  member.seen.length = 0
  const stop = await call(`${n.apiUrl}/api/mqtt/client/stop`, { method: 'POST', body: { client_id: 'nobody-here' }, authorization: basic('ops', 'ops-password-1') })
  assert.equal(stop.status, 404)
  assert.ok(member.seen.some((r) => r.url === '/api/mqtt/client/stop'), 'the member was asked')
  for (const r of member.seen) assert.equal(r.headers.authorization, undefined)

  // The member credential is accepted by a real node in place of api.user; a forged one is not.
  const forged = await request(`${n.apiUrl}/api/mqtt/clients`, { headers: { [MEMBER_HEADER]: `v1 ${Date.now()} ${'A'.repeat(43)}` } })
  assert.equal(forged.statusCode, 401)
  assert.match(await forged.body.text(), /member credential not valid/)
})

test('with api.user and no cluster key, other members are not asked at all (there is nothing to authenticate with)', async () => {
  const n = await startNode({ api: { user: { ops: 'ops-password-2' }, proxy_timeout: 2000 } })
  cleanups.push(() => n.stop())
  const member = await fakeMemberApi(n.host)
  injectMembers(n, () => [fake('collector', n.host, member.port)])
  const answer = await call(`${n.apiUrl}/proxy/api/mqtt/clients`, { authorization: basic('ops', 'ops-password-2') })
  assert.equal(answer.status, 200)
  const body = JSON.parse(answer.text) as Record<string, unknown>
  assert.deepEqual(body[n.config.cluster.name], [])
  assert.match((body.collector as { error: string }).error, /api\.user is set and there is no cluster\.config\.secret_key/)
  assert.equal(member.seen.length, 0)

  // A reload that removes api.user: the API is open again, and so are member calls.
  n.node.api.replaceUsers({})
  const open = await call(`${n.apiUrl}/proxy/api/mqtt/clients`)
  assert.equal(open.status, 200)
  assert.equal((JSON.parse(open.text) as Record<string, { error?: string }>).collector?.error, undefined)
  assert.equal(member.seen.length, 1, 'the member was asked')
})

test('a member advertising an API address with a path or a foreign host is not called; its entry says why', async () => {
  const n = await startNode({ api: { proxy_timeout: 2000 } })
  cleanups.push(() => n.stop())
  const member = await fakeMemberApi(n.host)
  injectMembers(n, () => [
    // Before: http://<addr>:<port> by concatenation, so the path was free and the answer came back.
    fake('with-path', `${n.host}:${member.port}/debug/pprof/heap?`, 80),
    fake('foreign-host', 'metadata.internal.example', member.port),
    fake('user-info', `x@${n.host}`, member.port),
    fake('bad-port', n.host, 0)
  ])
  const answer = await call(`${n.apiUrl}/proxy/api/mqtt/clients`)
  assert.equal(answer.status, 200)
  const body = JSON.parse(answer.text) as Record<string, { error?: string }>
  for (const name of ['with-path', 'foreign-host', 'user-info']) assert.match(body[name]!.error ?? '', /is not an IP address/, name)
  assert.match(body['bad-port']!.error ?? '', /not a port number/)
  assert.equal(member.seen.length, 0, 'nothing reached the listener')
})

test('without api.user, /debug, the heap snapshot and client/stop answer only callers on this host; reads stay open', async () => {
  const n = await startNode()
  cleanups.push(() => n.stop())
  const elsewhere = from(await freeLoopbackAddress())
  for (const [method, path, body] of [
    ['GET', '/debug', undefined], ['GET', '/debug/pprof/heap', undefined], ['GET', '/debug/pprof/profile?seconds=1', undefined],
    ['POST', '/api/mqtt/client/stop', { client_id: 'victim' }]
  ] as const) {
    const res = await call(n.apiUrl + path, { method, ...(body === undefined ? {} : { body }), dispatcher: elsewhere })
    assert.equal(res.status, 403, `${method} ${path}: ${res.text}`)
    assert.match(JSON.parse(res.text).error, /set api\.user/)
  }
  assert.equal((await call(`${n.apiUrl}/api/mqtt/clients`, { dispatcher: elsewhere })).status, 200, 'reads stay open (the seed\'s default)')

  // A victim connected: only a caller on this host may disconnect it.
  const victim = await mqtt.connectAsync(n.mqttUrl, { clientId: 'victim', reconnectPeriod: 0 })
  cleanups.push(() => victim.endAsync(true))
  assert.equal((await call(`${n.apiUrl}/api/mqtt/client/stop`, { method: 'POST', body: { client_id: 'victim' }, dispatcher: elsewhere })).status, 403)
  assert.ok(victim.connected, 'still connected')
  assert.equal((await call(`${n.apiUrl}/debug`)).status, 200, 'from 127.0.0.1 (this host)')
  assert.equal((await call(`${n.apiUrl}/api/mqtt/client/stop`, { method: 'POST', body: { client_id: 'victim' } })).status, 200)
})

test('with api.user set, /debug and client/stop need it from anywhere, and work from elsewhere with it', async () => {
  const n = await startNode({ api: { user: { ops: 'ops-password-3' } } })
  cleanups.push(() => n.stop())
  const elsewhere = from(await freeLoopbackAddress())
  assert.equal((await call(`${n.apiUrl}/debug`)).status, 401, 'no exemption for this host')
  assert.equal((await call(`${n.apiUrl}/debug`, { dispatcher: elsewhere, authorization: basic('ops', 'ops-password-3') })).status, 200)
})

test('/chaos/faults is behind api.user like everything else, and local-only without it', async () => {
  const start = async (user: Record<string, string>): Promise<{ url: string, stop: () => Promise<void> }> => {
    const host = await freeLoopbackAddress()
    const { config } = loadConfig({ object: nodeConfigObject(host, { api: { user } }) })
    const node = new BrokerNode(config, pino({ level: 'silent' }), { chaosControl: true })
    await node.start()
    cleanups.push(() => node.stop())
    return { url: `http://${host}:${config.api.port}`, stop: () => node.stop() }
  }
  const guarded = await start({ chaos: 'chaos-password' })
  // Before: answered without credentials although api.user was set.
  assert.equal((await call(`${guarded.url}/chaos/faults`)).status, 401)
  assert.equal((await call(`${guarded.url}/chaos/faults`, { method: 'POST', body: { blocked: ['127.0.0.9'] } })).status, 401)
  const ok = await call(`${guarded.url}/chaos/faults`, { authorization: basic('chaos', 'chaos-password') })
  assert.equal(ok.status, 200)
  assert.deepEqual(JSON.parse(ok.text), { blocked: [], links: [], gossip: [], udp: [] })

  const open = await start({})
  assert.equal((await call(`${open.url}/chaos/faults`, { dispatcher: from(await freeLoopbackAddress()) })).status, 403)
  assert.equal((await call(`${open.url}/chaos/faults`)).status, 200, 'the chaos runner, on this host')
})

test('a heap snapshot holds neither the cluster key nor a plain password from the config', async () => {
  const secondary = 'second-api-security-key-32-bytes'
  const opsPassword = 'ops-plain-password-4711'
  const mqttPassword = 'mqtt-plain-password-0815'
  // A process of its own: this test process holds the values itself.
  const node = await startProcessNode({
    api: { user: { ops: opsPassword, reader: 'reader-password' } },
    mqtt: { auth: [{ username: 'device', password: mqttPassword, allow: true }] },
    cluster: { config: { secret_key: KEY, secondary_keys: [secondary] } }
  })
  cleanups.push(() => node.stop('SIGKILL'))
  // Use every secret once, so each has been read from the config.
  assert.equal((await call(`${node.apiUrl}/api/mqtt/clients`, { authorization: basic('ops', opsPassword) })).status, 200)
  const device = await mqtt.connectAsync(node.mqttUrl, { clientId: 'device-1', username: 'device', password: mqttPassword, reconnectPeriod: 0 })
  await device.endAsync()
  const res = await request(`${node.apiUrl}/debug/pprof/heap`, { headers: { authorization: basic('reader', 'reader-password') }, bodyTimeout: 120_000, headersTimeout: 120_000 })
  assert.equal(res.statusCode, 200)
  const snapshot = Buffer.from(await res.body.arrayBuffer()).toString('utf8')
  assert.ok(snapshot.includes(`node-${node.host}`), 'the snapshot has the node\'s strings (the search works)')
  for (const [what, secret] of [['cluster key', KEY], ['secondary key', secondary], ['api.user password', opsPassword], ['mqtt.auth password', mqttPassword]]) {
    assert.equal(snapshot.includes(secret!), false, `${what} found in the heap snapshot`)
  }
})
