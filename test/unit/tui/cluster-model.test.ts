import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ClientInfo, MemberInfo, MessageInfo, ProxyAnswer, SubscriptionInfo, TopicSubscribers } from '../../../src/client/index.js'
import {
  clientRows, clientsPerNode, filterClients, memberRows, memberStateName, parseMeta, reachableCandidates, retainedRows, subscriberRows, inflightRows
} from '../../../src/tui/cluster-model.js'

export function member (name: string, addr: string, state = 0, meta = '{"api":8080,"mqtt":1883,"version":"0.1.0"}'): MemberInfo {
  return { Name: name, Addr: addr, Port: 7946, Meta: meta, State: state, PMin: 1, PMax: 1, PCur: 1, DMin: 0, DMax: 0, DCur: 0 }
}

const sub = (filter: string, qos = 0, share: string[] | null = null): SubscriptionInfo =>
  ({ ShareName: share, Filter: filter, Identifier: 0, Identifiers: null, RetainHandling: 0, Qos: qos, RetainAsPublished: false, NoLocal: false })

const client = (id: string, extra: Partial<ClientInfo> = {}): ClientInfo =>
  ({ ID: id, ProtocolVersion: 5, Username: '', CleanSession: true, Done: false, Subscriptions: {}, ...extra })

const message = (topic: string, payload: string, qos = 0): MessageInfo => ({
  TopicName: topic, Payload: Buffer.from(payload).toString('base64'), FixedHeader: { remaining: 0, type: 3, qos, dup: false, retain: true },
  PacketID: 0, Created: 0, Expiry: 0, Origin: '', Properties: null
})

test('member rows: state names, API URL from metadata, IPv6 bracketed, sorted by name', () => {
  const rows = memberRows([member('b', '10.0.0.2', 1), member('a', 'fd00::1'), member('c', '10.0.0.3', 2, 'not json')])
  assert.deepEqual(rows.map((r) => [r.name, r.state, r.apiUrl, r.version]), [
    ['a', 'alive', 'http://[fd00::1]:8080', '0.1.0'],
    ['b', 'suspect', 'http://10.0.0.2:8080', '0.1.0'],
    ['c', 'dead', undefined, '']
  ])
  assert.equal(memberStateName(3), 'left')
  assert.equal(memberStateName(9), 'unknown')
  assert.deepEqual(parseMeta('{"api":"x","mqtt":1883}'), { mqtt: 1883 })
  assert.deepEqual(reachableCandidates(rows).map((r) => r.name), ['a', 'b'])
})

test('client rows merge every member, keep failures apart, and filter by id, node or user', () => {
  const answer: ProxyAnswer<ClientInfo[]> = {
    'node-b': [client('zeta', { Username: 'ops', ProtocolVersion: 4, CleanSession: false, Subscriptions: { 'a/#': sub('a/#', 1), '$share/g/b': sub('b', 2, ['g']) } })],
    'node-a': [client('alpha')],
    'node-c': { error: 'timeout: no answer' },
    'node-d': { error: 'network: GET http://10.0.0.4:8080/api/mqtt/clients: connect ECONNREFUSED 10.0.0.4:8080' }
  }
  const { rows, failures } = clientRows(answer)
  assert.deepEqual(rows.map((r) => [r.id, r.node, r.protocol, r.cleanSession, r.subscriptions.length]), [['alpha', 'node-a', '5.0', true, 0], ['zeta', 'node-b', '3.1.1', false, 2]])
  assert.deepEqual(rows[1]!.filters, ['$share/g/b', 'a/#'])
  assert.deepEqual(failures, { 'node-c': 'timeout: no answer', 'node-d': 'network: connect ECONNREFUSED 10.0.0.4:8080' }, 'the request line is dropped, the reason kept')
  assert.deepEqual(filterClients(rows, 'OPS').map((r) => r.id), ['zeta'])
  assert.deepEqual(filterClients(rows, 'node-a').map((r) => r.id), ['alpha'])
  assert.deepEqual(filterClients(rows, '  ').length, 2)
  assert.deepEqual([...clientsPerNode(answer)], [['node-a', 1], ['node-b', 1]])
})

test('retained rows: one per topic, with the members holding it and whether they differ', () => {
  const { rows, failures } = retainedRows({
    a: [message('t/1', 'x'), message('t/2', 'same', 1)],
    b: [message('t/1', 'y'), message('t/2', 'same', 1)],
    c: { error: 'HTTP 401: wrong username or password' }
  })
  assert.deepEqual(rows.map((r) => [r.topic, r.nodes, r.differs, r.qos, r.payload.toString()]), [['t/1', ['a', 'b'], true, 0, 'x'], ['t/2', ['a', 'b'], false, 1, 'same']])
  assert.equal(failures.c, 'HTTP 401: wrong username or password')
})

test('subscriber rows list plain and shared subscriptions of every member', () => {
  const subs: TopicSubscribers = {
    Shared: { '$share/g/t': { w1: sub('t', 1, ['g']) } },
    SharedSelected: { w1: sub('t', 1, ['g']) },
    Subscriptions: { c1: sub('#', 2) }
  }
  const { rows } = subscriberRows({ a: subs, b: { Shared: {}, SharedSelected: {}, Subscriptions: {} } })
  assert.deepEqual(rows.map((r) => [r.clientId, r.node, r.filter, r.qos, r.group]), [['c1', 'a', '#', 2, ''], ['w1', 'a', '$share/g/t', 1, 'g']])
})

test('inflight rows decode payloads', () => {
  const { rows } = inflightRows({ a: [message('x', 'hello', 1)] })
  assert.equal(rows[0]!.payload.toString(), 'hello')
  assert.equal(rows[0]!.node, 'a')
})

test('members that refuse the request itself (HTTP 400) make it the caller\'s mistake, said once, not unreachable members', () => {
  // What a node older than the /proxy check answers: every member's own 400.
  const reason = 'topic "c/#" is not a valid MQTT topic name: must be a topic name, without wildcards'
  const answer: ProxyAnswer<TopicSubscribers> = {
    'node-a': { error: `HTTP 400: ${reason}` },
    'node-b': { error: `HTTP 400: ${reason}` },
    'node-c': { error: 'timeout: no answer' }
  }
  const { rows, failures, refused } = subscriberRows(answer)
  assert.deepEqual(rows, [])
  assert.equal(refused, reason)
  assert.deepEqual(failures, { 'node-c': 'timeout: no answer' })
  assert.equal(retainedRows({ 'node-a': [] }).refused, undefined)
})
