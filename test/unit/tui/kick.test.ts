import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ApiClientError, type ClientInfo, type MemberInfo, type ProxyAnswer } from '../../../src/client/index.js'
import type { ClusterSource } from '../../../src/tui/cluster-source.js'
import { kickClient } from '../../../src/tui/kick.js'
import { kickJson, kickText, textTable } from '../../../src/tui/report-tables.js'

const member = (name: string, addr: string, meta = '{"api":8080}'): MemberInfo =>
  ({ Name: name, Addr: addr, Port: 7946, Meta: meta, State: 0, PMin: 1, PMax: 1, PCur: 1, DMin: 0, DMax: 0, DCur: 0 })
const client = (id: string): ClientInfo => ({ ID: id, ProtocolVersion: 4, Username: '', CleanSession: true, Done: false, Subscriptions: {} })

function source (answer: ProxyAnswer<ClientInfo[]>, members: MemberInfo[], stop: (url: string, id: string) => Promise<boolean>): ClusterSource & { asked: string[] } {
  const asked: string[] = []
  return {
    asked,
    currentUrl: 'http://x',
    members: async () => members,
    clients: async () => answer,
    inflight: async () => ({}),
    retained: async () => ({}),
    subscribers: async () => ({}),
    stopClient: async (url, id) => { asked.push(url); return { client_id: id, node: '?', stopped: await stop(url, id) } },
    metrics: async () => '',
    events: async function * () {},
    close: async () => {}
  }
}

test('kick asks the member(s) listing the client, at their own API address', async () => {
  // During a partition one client id can be listed by two members: both are asked.
  const s = source({ a: [client('c1')], b: [client('c1'), client('c2')], c: [] }, [member('a', '10.0.0.1'), member('b', '10.0.0.2'), member('c', '10.0.0.3')], async () => true)
  const outcome = await kickClient(s, 'c1')
  assert.deepEqual(outcome, { clientId: 'c1', stopped: ['a', 'b'], failed: {}, unreachable: {} })
  assert.deepEqual(s.asked.sort(), ['http://10.0.0.1:8080', 'http://10.0.0.2:8080'])
  assert.equal(kickText(outcome), 'c1 disconnected from a\nc1 disconnected from b\n')
})

test('kick reports members that failed, could not be asked, or did not answer the list', async () => {
  const s = source(
    { a: [client('c1')], b: [client('c1')], c: { error: 'timeout: no answer' } },
    [member('a', '10.0.0.1', '{}'), member('b', '10.0.0.2'), member('c', '10.0.0.3')],
    async () => { throw new ApiClientError('http', 'HTTP 404', { status: 404, serverMessage: 'client "c1" is not connected to b', method: 'POST', url: 'u' }) }
  )
  const outcome = await kickClient(s, 'c1')
  assert.deepEqual(outcome.stopped, [])
  assert.deepEqual(outcome.failed, { a: 'member does not advertise its API address', b: 'HTTP 404: client "c1" is not connected to b' })
  assert.deepEqual(outcome.unreachable, { c: 'timeout: no answer' })
  assert.deepEqual(kickJson(outcome), { client_id: 'c1', stopped: [], failed: outcome.failed, unreachable: outcome.unreachable })
  const none = await kickClient(source({ a: [] }, [member('a', '10.0.0.1')], async () => true), 'zz')
  assert.equal(kickText(none), 'zz is not connected to any member that answered\n')
})

test('text tables align columns and never pad the last one', () => {
  assert.equal(textTable(['A', 'LONG HEADER', 'Z'], [['xyz', 'b', 'last'], ['1', '', '']]), 'A    LONG HEADER  Z\nxyz  b            last\n1\n')
})
