// The REST endpoints of one node over real HTTP, with real mqtt.js clients
// connected: seed shapes field by field, status codes, every 400 path, the
// OpenAPI document, and /metrics reflecting what the clients did. Auth is
// off here (no api.user); api-auth.test.ts covers it on.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { ApiClient, type ApiClientError } from '../../src/client/index.js'

let n: TestNode
let api: ApiClient
const clients: MqttClient[] = []

async function connect (options: mqtt.IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync(n.mqttUrl, { reconnectPeriod: 0, ...options })
  clients.push(c)
  return c
}

async function post (path: string, body: string, contentType = 'application/json'): Promise<{ status: number, body: { status?: number, error?: string } & Record<string, unknown> }> {
  const res = await fetch(n.apiUrl + path, { method: 'POST', body, headers: { 'content-type': contentType } })
  return { status: res.status, body: await res.json() as { status?: number, error?: string } }
}

before(async () => {
  n = await startNode()
  api = new ApiClient({ baseUrl: n.apiUrl, timeoutMs: 5000 })
})

after(async () => {
  await Promise.all(clients.map(async (c) => await c.endAsync(true)))
  await api.close()
  await n.stop()
})

describe('MQTT endpoints', () => {
  let v5: MqttClient
  before(async () => {
    v5 = await connect({ clientId: 'rest-v5', protocolVersion: 5, username: 'alice' })
    await v5.subscribeAsync('sensors/+/temp', { qos: 1, nl: true, rap: true, rh: 1, properties: { subscriptionIdentifier: 7 } })
    const v4 = await connect({ clientId: 'rest-v4', protocolVersion: 4 })
    await v4.subscribeAsync('sensors/#', { qos: 0 })
    // A persistent session that goes offline with a subscription: messages queue for it.
    const offline = await connect({ clientId: 'rest-offline', protocolVersion: 4, clean: false })
    await offline.subscribeAsync('queue/#', { qos: 1 })
    await offline.endAsync()
    await v5.publishAsync('queue/a', 'first', { qos: 1 })
    await v5.publishAsync('queue/b', Buffer.from([0, 1, 2, 255]), { qos: 1 })
    await v5.publishAsync('retained/one', 'hello', { qos: 1, retain: true, properties: { contentType: 'text/plain', userProperties: { k: 'v' }, correlationData: Buffer.from('cd') } })
    await v5.publishAsync('retained/two/deep', 'x', { qos: 0, retain: true })
  })

  test('GET /api/mqtt/clients lists connected clients in the seed shape', async () => {
    const list = await api.clients()
    const byId = new Map(list.map((c) => [c.ID, c]))
    assert.deepEqual([...byId.keys()].sort(), ['rest-v4', 'rest-v5'], 'offline sessions are not connections')
    const v5info = byId.get('rest-v5')!
    // The seed's fields, then where from and since when (not in the seed).
    assert.deepEqual(Object.keys(v5info).sort(), ['CleanSession', 'ConnectedAt', 'Done', 'ID', 'ProtocolVersion', 'Remote', 'Subscriptions', 'Username'])
    const socket = v5.stream as unknown as { localAddress: string, localPort: number }
    assert.equal(v5info.Remote, `${socket.localAddress}:${socket.localPort}`, 'the client\'s own address and port')
    assert.ok(Math.abs(v5info.ConnectedAt! - Date.now() / 1000) < 60, `connected moments ago: ${v5info.ConnectedAt}`)
    assert.equal(v5info.ProtocolVersion, 5)
    assert.equal(v5info.Username, 'alice')
    assert.equal(v5info.CleanSession, true)
    assert.equal(v5info.Done, false)
    assert.deepEqual(v5info.Subscriptions, {
      'sensors/+/temp': { ShareName: null, Filter: 'sensors/+/temp', Identifier: 7, Identifiers: null, RetainHandling: 1, Qos: 1, RetainAsPublished: true, NoLocal: true }
    })
    const v4info = byId.get('rest-v4')!
    assert.equal(v4info.ProtocolVersion, 4)
    assert.equal(v4info.Username, '')
    assert.equal(v4info.Subscriptions['sensors/#']!.Qos, 0)
  })

  test('POST /api/mqtt/topic/subscribers names every matching subscription', async () => {
    const answer = await api.topicSubscribers('sensors/kitchen/temp')
    assert.deepEqual(Object.keys(answer).sort(), ['Shared', 'SharedSelected', 'Subscriptions'])
    assert.deepEqual(answer.Shared, {})
    assert.deepEqual(answer.SharedSelected, {})
    assert.deepEqual(Object.keys(answer.Subscriptions).sort(), ['rest-v4', 'rest-v5'])
    assert.deepEqual(answer.Subscriptions['rest-v5'], {
      ShareName: null, Filter: 'sensors/+/temp', Identifier: 7, Identifiers: { 'sensors/+/temp': 7 }, RetainHandling: 1, Qos: 1, RetainAsPublished: true, NoLocal: true
    })
    // The offline persistent session comes from the persistence.
    const queue = await api.topicSubscribers('queue/z')
    assert.deepEqual(Object.keys(queue.Subscriptions), ['rest-offline'])
    assert.equal(queue.Subscriptions['rest-offline']!.Filter, 'queue/#')
    assert.deepEqual((await api.topicSubscribers('nobody/listens')).Subscriptions, {})
  })

  test('shared subscriptions appear as the client wrote them, grouped under Shared', async () => {
    const w1 = await connect({ clientId: 'rest-worker-1', protocolVersion: 5 })
    const w2 = await connect({ clientId: 'rest-worker-2', protocolVersion: 5 })
    try {
      await w1.subscribeAsync('$share/grp/jobs/+', { qos: 1 })
      await w2.subscribeAsync('$share/grp/jobs/+', { qos: 1 })
      const w1info = (await api.clients()).find((c) => c.ID === 'rest-worker-1')!
      assert.deepEqual(w1info.Subscriptions, {
        '$share/grp/jobs/+': { ShareName: ['grp'], Filter: 'jobs/+', Identifier: 0, Identifiers: null, RetainHandling: 0, Qos: 1, RetainAsPublished: false, NoLocal: false }
      })
      const answer = await api.topicSubscribers('jobs/1')
      assert.deepEqual(Object.keys(answer.Shared), ['$share/grp/jobs/+'])
      assert.deepEqual(Object.keys(answer.Shared['$share/grp/jobs/+']!).sort(), ['rest-worker-1', 'rest-worker-2'])
      assert.deepEqual(Object.keys(answer.SharedSelected), ['rest-worker-1'])
      assert.deepEqual(answer.Subscriptions, {}, 'shared subscribers are not listed as plain ones')
    } finally {
      await w1.endAsync()
      await w2.endAsync()
    }
  })

  test('POST /api/mqtt/client/inflight shows the queue of a persistent session', async () => {
    const queued = await api.inflight('rest-offline')
    assert.deepEqual(queued.map((m) => m.TopicName), ['queue/a', 'queue/b'])
    const [a, b] = queued
    assert.deepEqual(Object.keys(a!).sort(), ['Created', 'Expiry', 'FixedHeader', 'Origin', 'PacketID', 'Payload', 'Properties', 'TopicName'])
    assert.equal(Buffer.from(a!.Payload, 'base64').toString(), 'first')
    assert.deepEqual(Buffer.from(b!.Payload, 'base64'), Buffer.from([0, 1, 2, 255]))
    assert.deepEqual(a!.FixedHeader, { remaining: 0, type: 3, qos: 1, dup: false, retain: false })
    assert.deepEqual(await api.inflight('no-such-client'), [])
  })

  test('POST /api/mqtt/topic/messages returns retained messages matching a filter', async () => {
    const all = await api.topicMessages('#')
    assert.deepEqual(all.map((m) => m.TopicName).sort(), ['retained/one', 'retained/two/deep'])
    const [one] = await api.topicMessages('retained/+')
    assert.equal(one!.TopicName, 'retained/one')
    assert.equal(Buffer.from(one!.Payload, 'base64').toString(), 'hello')
    assert.deepEqual(one!.FixedHeader, { remaining: 0, type: 3, qos: 1, dup: false, retain: true })
    assert.equal(one!.Expiry, 0)
    assert.equal(one!.Properties!.contentType, 'text/plain')
    assert.deepEqual(one!.Properties!.userProperties, { k: 'v' })
    assert.equal(one!.Properties!.correlationData, Buffer.from('cd').toString('base64'))
    assert.deepEqual(await api.topicMessages('nothing/here'), [])
  })

  test('POST /api/mqtt/client/stop disconnects the client; 404 when it is not here', async () => {
    const victim = await connect({ clientId: 'rest-victim', protocolVersion: 5 })
    let reason: number | undefined
    victim.on('disconnect', (packet) => { reason = packet.reasonCode })
    const closed = new Promise<void>((resolve) => victim.once('close', () => resolve()))
    const result = await api.stopClient('rest-victim')
    assert.deepEqual(result, { client_id: 'rest-victim', node: n.config.cluster.name, stopped: true })
    await closed
    assert.equal(reason, 0x98, 'MQTT 5 client told: administrative action')
    await waitFor(async () => !(await api.clients()).some((c) => c.ID === 'rest-victim'), { message: 'victim gone from the client list' })
    await assert.rejects(api.stopClient('rest-victim'), (err: ApiClientError) => {
      assert.equal(err.status, 404)
      assert.match(err.serverMessage!, /rest-victim.*not connected/)
      return true
    })
  })

  test('GET /api/discovery/members answers the seed fields', async () => {
    const members = await api.members()
    assert.equal(members.length, 1)
    const me = members[0]!
    assert.deepEqual(Object.keys(me).sort(), ['Addr', 'DCur', 'DMax', 'DMin', 'Meta', 'Name', 'PCur', 'PMax', 'PMin', 'Port', 'State'])
    assert.equal(me.Name, n.config.cluster.name)
    assert.equal(me.Addr, n.host)
    assert.equal(me.Port, n.config.cluster.port)
    assert.equal(me.State, 0)
    assert.deepEqual(JSON.parse(me.Meta), { api: n.config.api.port, mqtt: n.config.mqtt.port, version: JSON.parse(me.Meta).version })
  })

  test('/metrics carries the seed metrics with live values', async () => {
    // Clients of earlier tests disconnect asynchronously on the broker side.
    await waitFor(async () => (await api.clients()).length === 2, { message: 'two clients left' })
    const text = await api.metrics()
    const value = (name: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `))
      assert.ok(line !== undefined, `${name} is exported`)
      return Number(line.split(' ')[1])
    }
    assert.equal(value('broker_clients_connected'), 2)
    assert.equal(value('broker_cluster_members'), 1)
    assert.equal(value('broker_cluster_member_health'), 0)
    assert.equal(value('broker_retained_messages'), 2)
    assert.equal(value('broker_subscriptions'), 2)
    assert.ok(value('broker_uptime') >= 0)
    assert.ok(value('broker_messages_recv') >= 4, 'four publishes received')
    assert.ok(value('broker_messages_sent') >= 0)
    assert.equal(value('broker_messages_dropped'), 0)
    assert.equal(value('broker_inflight_messages'), 2, 'the offline session holds two messages')
    assert.match(text, /^process_cpu_user_seconds_total /m, 'Node process metrics')
    assert.match(text, /^broker_bus_dropped_total\{channel="cluster:message_to"\} /m)
    assert.match(text, /^broker_api_requests_total\{method="GET",route="\/api\/mqtt\/clients",status="200"\} /m)
  })

  test('broker_messages_sent counts deliveries to subscribers', async () => {
    const before = await api.metrics()
    const sent = (t: string): number => Number(/^broker_messages_sent (\d+)/m.exec(t)![1])
    const sub = await connect({ clientId: 'rest-counter', protocolVersion: 4 })
    await sub.subscribeAsync('count/me', { qos: 1 })
    const got = new Promise<void>((resolve) => sub.once('message', () => resolve()))
    await sub.publishAsync('count/me', 'x', { qos: 1 })
    await got
    assert.equal(sent(await api.metrics()) - sent(before), 1)
  })
})

describe('bad requests answer 400 with a JSON error naming the problem', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['missing field', '/api/mqtt/client/inflight', '{}', /client_id/],
    ['wrong type', '/api/mqtt/client/inflight', '{"client_id": 5}', /client_id.*string/],
    ['empty string', '/api/mqtt/client/stop', '{"client_id": ""}', /client_id/],
    ['unknown field', '/api/mqtt/client/stop', '{"client_id": "a", "force": true}', /additional properties/],
    ['invalid JSON', '/api/mqtt/topic/messages', '{"topic": ', /invalid JSON/],
    ['array body', '/api/mqtt/topic/messages', '["#"]', /body must be object/],
    ['invalid filter', '/api/mqtt/topic/messages', '{"topic": "a/#/b"}', /not a valid MQTT topic filter/],
    ['wildcard topic name', '/api/mqtt/topic/subscribers', '{"topic": "a/+"}', /not a valid MQTT topic name/],
    ['missing topic', '/api/mqtt/topic/subscribers', '{"filter": "a"}', /topic/],
    ['unknown SSE filter', '/api/sse', '{"filters": ["cluster:nope"]}', /unknown SSE filter "cluster:nope"/],
    ['SSE channel_size 0', '/api/sse', '{"channel_size": 0}', /channel_size/],
    ['SSE filters not a list', '/api/sse', '{"filters": "cluster:message_to"}', /filters/],
    ['proxy body checked too', '/proxy/api/mqtt/client/inflight', '{}', /client_id/],
    // Refused once for the whole request, before any member is asked, not as every member's error.
    ['proxy: invalid filter', '/proxy/api/mqtt/topic/messages', '{"topic": "a/#/b"}', /^topic "a\/#\/b" is not a valid MQTT topic filter: '#' must be a whole level and the last one$/],
    ['proxy: wildcard topic name', '/proxy/api/mqtt/topic/subscribers', '{"topic": "c/#"}', /^topic "c\/#" is not a valid MQTT topic name: must be a topic name, without wildcards$/]
  ]
  for (const [name, path, body, pattern] of cases) {
    test(`${name}: POST ${path}`, async () => {
      const res = await post(path, body)
      assert.equal(res.status, 400)
      assert.equal(res.body.status, 400)
      assert.match(res.body.error!, pattern)
    })
  }

  test('curl -d without a JSON content type is still read as JSON', async () => {
    const res = await post('/api/mqtt/topic/messages', '{"topic": "retained/one"}', 'application/x-www-form-urlencoded')
    assert.equal(res.status, 200)
    const bad = await post('/api/mqtt/topic/messages', 'topic=x', 'application/x-www-form-urlencoded')
    assert.equal(bad.status, 400)
    assert.match(bad.body.error!, /invalid JSON/)
  })

  test('profile duration out of range', async () => {
    for (const seconds of ['0', '61', 'abc']) {
      const res = await fetch(`${n.apiUrl}/debug/pprof/profile?seconds=${seconds}`)
      assert.equal(res.status, 400, `seconds=${seconds}`)
      assert.match((await res.json() as { error: string }).error, /seconds/)
    }
  })

  test('unknown route: 404 in the same shape', async () => {
    const res = await fetch(`${n.apiUrl}/api/nope`)
    assert.equal(res.status, 404)
    assert.deepEqual(await res.json(), { status: 404, error: 'no route GET /api/nope' })
  })
})

test('/proxy with one node answers for that node', async () => {
  const name = n.config.cluster.name
  const members = await api.proxyMembers()
  assert.deepEqual(Object.keys(members), [name])
  assert.equal((members[name] as Array<{ Name: string }>)[0]!.Name, name)
  const clientsByMember = await api.proxyClients()
  assert.ok(Array.isArray(clientsByMember[name]))
  assert.deepEqual(await api.proxyTopicMessages('nothing/here'), { [name]: [] })
  const subs = await api.proxyTopicSubscribers('nobody/listens')
  assert.deepEqual(subs, { [name]: { Shared: {}, SharedSelected: {}, Subscriptions: {} } })
  assert.deepEqual(await api.proxyInflight('no-such-client'), { [name]: [] })
})

test('the OpenAPI document lists every route', async () => {
  const doc = await api.openapi()
  assert.match(doc.openapi, /^3\./)
  const expected: Record<string, string[]> = {
    '/ready': ['get'],
    '/healthz': ['get'],
    '/metrics': ['get'],
    '/api/discovery/members': ['get'],
    '/api/mqtt/clients': ['get'],
    '/api/mqtt/client/stop': ['post'],
    '/api/mqtt/client/inflight': ['post'],
    '/api/mqtt/topic/messages': ['post'],
    '/api/mqtt/topic/subscribers': ['post'],
    '/api/sse': ['get', 'post'],
    '/debug': ['get'],
    '/debug/pprof/profile': ['get'],
    '/debug/pprof/heap': ['get'],
    '/proxy/api/discovery/members': ['get'],
    '/proxy/api/mqtt/clients': ['get'],
    '/proxy/api/mqtt/client/inflight': ['post'],
    '/proxy/api/mqtt/topic/messages': ['post'],
    '/proxy/api/mqtt/topic/subscribers': ['post']
  }
  assert.deepEqual(Object.keys(doc.paths).sort(), Object.keys(expected).sort())
  for (const [path, methods] of Object.entries(expected)) {
    assert.deepEqual(Object.keys(doc.paths[path]!).sort(), methods, path)
  }
  const inflight = doc.paths['/api/mqtt/client/inflight']!.post as { requestBody: { content: Record<string, { schema: { required: string[] } }> }, security?: unknown }
  assert.deepEqual(inflight.requestBody.content['application/json']!.schema.required, ['client_id'])
  assert.deepEqual(inflight.security, [{ basicAuth: [] }])
  assert.equal((doc.paths['/metrics']!.get as { security?: unknown }).security, undefined, '/metrics stays open')
})
