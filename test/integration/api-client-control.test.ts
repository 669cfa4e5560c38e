// /api/mqtt/client/stop and /api/mqtt/client/inflight find the client on any
// member (issue 5): a node that does not have the client asks the others,
// forwarding the caller's credentials, and the local-scope marker makes a
// node answer for itself only. Three in-process nodes with API basic auth on:
// a member request without the caller's Authorization header would be a 401
// there, so every cross-node success below also proves it is forwarded.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { MqttClient } from 'mqtt'
import { Agent } from 'undici'
import { pino } from 'pino'
import type { TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, endAll, uniqueId } from '../helpers/mqtt-clients.js'
import { startCluster, nameOf, waitForRoute } from '../helpers/dataplane-cluster.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { ClusterClientControl } from '../../src/server/api/cluster-client-control.js'
import { memberDispatcher } from '../../src/server/api/member-calls.js'
import { MemberCredential, MEMBER_HEADER } from '../../src/security/member-credential.js'
import { BrokerHaError } from '../../src/errors.js'
import type { Member, Membership } from '../../src/server/cluster/membership/membership.js'
import type { MqttIntrospection } from '../../src/server/mqtt/introspection.js'
import { ApiClient, isMemberError, type ApiClientError, type MessageInfo } from '../../src/client/index.js'

const USER = 'admin'
const PASSWORD = 'admin-pw'
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`

let a: TestNode, b: TestNode, c: TestNode
const apis: ApiClient[] = []
const clients: MqttClient[] = []

before(async () => {
  // startCluster sets a cluster key: with api.user set, members reach each
  // other's API with the credential derived from it (member-calls.ts).
  [a, b, c] = await startCluster(3, { api: { user: { [USER]: PASSWORD }, proxy_timeout: 2000 } }) as [TestNode, TestNode, TestNode]
})
after(async () => {
  await endAll(...clients)
  for (const api of apis) await api.close()
  await Promise.all([a, b, c].filter((n) => n !== undefined).map(async (n) => await n.stop()))
})

function apiOf (n: TestNode): ApiClient {
  const api = new ApiClient({ baseUrl: n.apiUrl, username: USER, password: PASSWORD, timeoutMs: 5000 })
  apis.push(api)
  return api
}

/** A POST with the local-scope marker (not something the typed client sends). */
async function postLocal (n: TestNode, path: string, body: object, scope = 'local'): Promise<{ status: number, body: unknown }> {
  const res = await fetch(`${n.apiUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: AUTH, 'x-broker-ha-scope': scope },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() }
}

const connectedOn = (n: TestNode, id: string): boolean => n.node.api.introspection.clients().some((x) => x.ID === id)

test('stop on B disconnects a v5 client connected to A: 200 naming A, DISCONNECT 0x98', async () => {
  const id = uniqueId('stop-remote')
  const victim = await connect(a.mqttUrl, { clientId: id, protocolVersion: 5 })
  clients.push(victim)
  let reason: number | undefined
  victim.on('disconnect', (packet) => { reason = packet.reasonCode })
  const closed = new Promise<void>((resolve) => victim.once('close', () => resolve()))

  const result = await apiOf(b).stopClient(id)
  assert.deepEqual(result, { client_id: id, node: nameOf(a), stopped: true })
  await closed
  assert.equal(reason, 0x98, 'MQTT 5 client told: administrative action')
  await waitFor(() => !connectedOn(a, id), { message: 'client gone from A' })
})

test('stop of an id no member has: 404 saying so', async () => {
  await assert.rejects(apiOf(b).stopClient(uniqueId('nobody')), (err: ApiClientError) => {
    assert.equal(err.status, 404)
    assert.match(err.serverMessage!, /is not connected to any member$/)
    return true
  })
})

test('wrong credentials are refused by the node asked, whatever the scope', async () => {
  const bad = new ApiClient({ baseUrl: b.apiUrl, username: USER, password: 'wrong' })
  apis.push(bad)
  await assert.rejects(bad.stopClient('x'), (err: ApiClientError) => err.status === 401)
  const res = await fetch(`${b.apiUrl}/api/mqtt/client/stop`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-broker-ha-scope': 'local' }, body: '{"client_id":"x"}' })
  assert.equal(res.status, 401, 'the marker does not bypass auth')
})

test('inflight on B answers the queued QoS 1 messages of an offline persistent session held on A', async () => {
  const id = uniqueId('inflight-remote')
  const topic = `control/${id}`
  const subscriber = await connect(a.mqttUrl, { clientId: id, clean: false, protocolVersion: 4 })
  await subscriber.subscribeAsync(topic, { qos: 1 })
  await subscriber.endAsync()
  await waitForRoute(c, a, topic)
  const publisher = await connect(c.mqttUrl)
  clients.push(publisher)
  for (let i = 0; i < 3; i++) await publisher.publishAsync(topic, `m${i}`, { qos: 1 })
  await waitFor(() => a.node.mqtt.persistence.queuedFor(id) === 3, { message: 'three messages queued on A' })

  const payloads = (messages: MessageInfo[]): string[] => messages.map((m) => Buffer.from(m.Payload, 'base64').toString())
  const fromB = await apiOf(b).inflight(id)
  assert.deepEqual(payloads(fromB), ['m0', 'm1', 'm2'])
  assert.ok(fromB.every((m) => m.TopicName === topic && m.FixedHeader.qos === 1))
  assert.deepEqual(fromB, await apiOf(a).inflight(id), 'the same answer as from A itself')

  // Local scope: B answers from its own persistence, without asking A.
  const local = await postLocal(b, '/api/mqtt/client/inflight', { client_id: id })
  assert.equal(local.status, 200)
  assert.deepEqual(local.body, [])

  // /proxy asks each member for itself: only A lists the session.
  const proxied = await apiOf(b).proxyInflight(id)
  assert.deepEqual(Object.keys(proxied).sort(), [nameOf(a), nameOf(b), nameOf(c)].sort())
  assert.deepEqual(payloads(proxied[nameOf(a)] as MessageInfo[]), ['m0', 'm1', 'm2'])
  assert.deepEqual(proxied[nameOf(b)], [])
  assert.deepEqual(proxied[nameOf(c)], [])
  assert.ok(!Object.values(proxied).some(isMemberError))

  assert.deepEqual(await apiOf(c).inflight(uniqueId('nobody')), [], 'empty when nobody has it')
})

test('local scope: B answers 404 for a client on A and leaves it connected', async () => {
  const id = uniqueId('stop-local')
  const client = await connect(a.mqttUrl, { clientId: id, protocolVersion: 5 })
  clients.push(client)
  const res = await postLocal(b, '/api/mqtt/client/stop', { client_id: id })
  assert.equal(res.status, 404)
  assert.deepEqual(res.body, { status: 404, error: `client ${JSON.stringify(id)} is not connected to ${nameOf(b)}` })
  assert.ok(connectedOn(a, id) && client.connected, 'still connected to A')

  const bad = await postLocal(b, '/api/mqtt/client/stop', { client_id: id }, 'everywhere')
  assert.equal(bad.status, 400)
  assert.match((bad.body as { error: string }).error, /x-broker-ha-scope/)

  const explicit = await postLocal(b, '/api/mqtt/client/stop', { client_id: id }, 'cluster')
  assert.equal(explicit.status, 200)
  assert.equal((explicit.body as { node: string }).node, nameOf(a))
})

test('members that cannot be asked are named in the 404; members are asked locally with the member credential, never the caller\'s', async () => {
  const host = await freeLoopbackAddress()
  // A member that has no such client, recording what it was sent.
  const seen: Array<{ url: string, headers: IncomingHttpHeaders }> = []
  const stub = createServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers })
    req.resume()
    const stop = req.url === '/api/mqtt/client/stop'
    res.writeHead(stop ? 404 : 200, { 'content-type': 'application/json' })
    res.end(stop ? '{"status":404,"error":"not here"}' : '[]')
  })
  await new Promise<void>((resolve) => stub.listen(0, host, resolve))
  // A member whose API port refuses connections.
  const gone = createServer()
  await new Promise<void>((resolve) => gone.listen(0, host, resolve))
  const gonePort = (gone.address() as AddressInfo).port
  await new Promise((resolve) => gone.close(resolve))
  const agent = new Agent()
  const credential = new MemberCredential(['0123456789abcdef0123456789abcdef'])
  const dispatcher = memberDispatcher(agent, credential)
  try {
    const m = (name: string, api: number): Member => ({ name, addr: host, port: 7946, meta: { api, mqtt: 1883, version: 't' }, state: 'alive', incarnation: 0, since: 0 })
    const self = m('self', 1)
    const membership = { self, members: () => [self, m('stub', (stub.address() as AddressInfo).port), m('gone', gonePort), { ...m('dead', 2), state: 'dead' }] } as unknown as Membership
    const introspection = { disconnect: async () => false, inflight: async () => [], clients: () => [] } as unknown as MqttIntrospection
    const control = new ClusterClientControl({ introspection, membership, dispatcher, timeoutMs: 2000, log: pino({ level: 'silent' }) })

    await assert.rejects(control.stop('ghost', {}), (err: BrokerHaError) => {
      assert.ok(err instanceof BrokerHaError)
      assert.equal(err.code, 'NOT_FOUND')
      assert.match(err.message, /^client "ghost" is not connected to any reachable member; unreachable: gone \(network: /)
      return true
    })
    assert.deepEqual(await control.inflight('ghost', {}), [])
    assert.deepEqual(seen.map((r) => r.url), ['/api/mqtt/client/stop', '/api/mqtt/client/inflight'], 'dead members are not asked')
    for (const r of seen) {
      assert.equal(r.headers.authorization, undefined, 'no Authorization header reaches a member')
      assert.ok(credential.verify(r.headers[MEMBER_HEADER] as string, r.url === '/api/mqtt/client/stop' ? 'POST' : 'POST', r.url), 'signed with the member credential')
      assert.equal(r.headers['x-broker-ha-scope'], 'local', 'the member is asked for itself only')
    }

    seen.length = 0
    await assert.rejects(control.stop('ghost', { local: true }), /is not connected to self$/)
    assert.deepEqual(await control.inflight('ghost', { local: true }), [])
    assert.equal(seen.length, 0, 'local scope asks nobody')
  } finally {
    await agent.close()
    await new Promise((resolve) => stub.close(resolve))
  }
})
