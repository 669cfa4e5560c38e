// The whole app against a fake cluster source: view switching, help, quit,
// and what the operator sees when the cluster cannot be reached or refuses
// the credentials.
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { render, cleanup } from 'ink-testing-library'
import { App } from '../../../src/tui/app.js'
import { ApiClientError, type ClientInfo, type MemberInfo, type MessageInfo, type ProxyAnswer, type SseEvent } from '../../../src/client/index.js'
import type { ClusterSource } from '../../../src/tui/cluster-source.js'
import { KEY, frameWhere, press } from './ink-helpers.js'
import { waitFor } from '../../helpers/wait.js'

afterEach(() => cleanup())

const member = (name: string, addr: string, state = 0): MemberInfo =>
  ({ Name: name, Addr: addr, Port: 7946, Meta: JSON.stringify({ api: 8080, mqtt: 1883, version: '0.1.0' }), State: state, PMin: 1, PMax: 1, PCur: 1, DMin: 0, DMax: 0, DCur: 0 })

const clientInfo = (id: string): ClientInfo => ({ ID: id, ProtocolVersion: 5, Username: '', CleanSession: true, Done: false, Subscriptions: {} })

class FakeSource implements ClusterSource {
  currentUrl = 'http://127.0.0.1:8080'
  membersError: Error | undefined
  memberList = [member('node-a', '127.0.0.1'), member('node-b', '127.0.0.2')]
  clientAnswer: ProxyAnswer<ClientInfo[]> = { 'node-a': [clientInfo('c1')], 'node-b': [clientInfo('c2')] }
  stopped: Array<[string, string]> = []
  memberCalls = 0
  async members (): Promise<MemberInfo[]> {
    this.memberCalls++
    if (this.membersError !== undefined) throw this.membersError
    return this.memberList
  }

  async clients (): Promise<ProxyAnswer<ClientInfo[]>> {
    if (this.membersError !== undefined) throw this.membersError
    return this.clientAnswer
  }

  async inflight () { return { 'node-a': [], 'node-b': [] } }
  async retained (_filter: string): Promise<ProxyAnswer<MessageInfo[]>> { return { 'node-a': [], 'node-b': [] } }
  async subscribers () { return { 'node-a': { Shared: {}, SharedSelected: {}, Subscriptions: {} } } }
  async stopClient (apiUrl: string, clientId: string) {
    this.stopped.push([apiUrl, clientId])
    this.clientAnswer = { 'node-a': [clientInfo('c1')], 'node-b': [] }
    return { client_id: clientId, node: 'node-b', stopped: true }
  }

  async metrics (apiUrl: string): Promise<string> {
    if (apiUrl.includes('127.0.0.2')) throw new ApiClientError('network', 'GET http://127.0.0.2:8080/metrics: connect ECONNREFUSED', { method: 'GET', url: 'http://127.0.0.2:8080/metrics', cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) })
    return 'broker_clients_connected 1\nbroker_cluster_member_health 0\nbroker_messages_recv 5\nbroker_messages_sent 5\n'
  }

  async * events (apiUrl: string, options: { signal?: AbortSignal }): AsyncGenerator<SseEvent> {
    yield { event: 'cluster:new_member', data: { from: apiUrl } }
    await new Promise((resolve) => options.signal?.addEventListener('abort', resolve, { once: true }))
  }

  async close () {}
}

test('switches views with digits and Tab, shows help on ?, quits on q', async () => {
  const source = new FakeSource()
  const { lastFrame, stdin } = render(<App source={source} refreshMs={50} />)
  let frame = await frameWhere(lastFrame, (f) => f.includes('node-b') && f.includes('2 clients'), 'overview')
  assert.match(frame, /● http:\/\/127\.0\.0\.1:8080 · 2 members alive · 2 clients · updated/)
  assert.match(frame, /↑↓ select {2}o sort {2}│ {2}\? help {2}q quit/)
  await press(stdin, '2')
  frame = await frameWhere(lastFrame, (f) => f.includes('CLIENT ID'), 'clients view')
  assert.match(frame, /› c1\s+node-a/)
  assert.match(frame, /↑↓ select {2}\/ filter {2}o sort {2}Enter detail {2}K disconnect/)
  await press(stdin, KEY.tab)
  await frameWhere(lastFrame, (f) => f.includes('retained filter (/): #') && f.includes('no retained message matches'), 'topics view')
  await press(stdin, '4')
  frame = await frameWhere(lastFrame, (f) => f.includes('cluster:new_member') && f.includes('127.0.0.2'), 'events from both members')
  assert.match(frame, /node-a cluster:new_member \{"from":"http:\/\/127\.0\.0\.1:8080"\}/)
  await press(stdin, '5')
  await frameWhere(lastFrame, (f) => f.includes('metrics unavailable: cannot reach http://127.0.0.2:8080: connection refused'), 'metrics view with a failing member')
  await press(stdin, '?')
  await frameWhere(lastFrame, (f) => f.includes('broker-ha admin: keys'), 'help')
  await press(stdin, 'x')
  await frameWhere(lastFrame, (f) => !f.includes('broker-ha admin: keys'), 'any key closes help')
  await press(stdin, 'q')
  // q unmounts the app (the end-to-end test checks the process exits and the terminal is restored).
  await frameWhere(() => String(source.stopped.length), () => true, 'q handled')
})

test('q typed into a filter does not quit; disconnect through the app reaches the member holding the client', async () => {
  const source = new FakeSource()
  const { lastFrame, stdin } = render(<App source={source} refreshMs={50} initialView='clients' />)
  await frameWhere(lastFrame, (f) => f.includes('› c1'), 'clients')
  await press(stdin, '/', 'q', 'c', '2')
  await frameWhere(lastFrame, (f) => f.includes('no client matches the filter'), 'q went into the filter')
  await press(stdin, KEY.backspace, KEY.backspace, KEY.backspace, KEY.enter, KEY.down, 'K')
  await frameWhere(lastFrame, (f) => f.includes('Disconnect c2 from node-b?'), 'dialog')
  await press(stdin, 'q')
  await frameWhere(lastFrame, (f) => f.includes('Disconnect c2 from node-b?'), 'q does not quit from the dialog')
  await press(stdin, 'y')
  await frameWhere(lastFrame, (f) => f.includes('c2 disconnected from node-b'), 'outcome')
  assert.deepEqual(source.stopped, [['http://127.0.0.2:8080', 'c2']])
  await frameWhere(lastFrame, (f) => /1 of 1 client$/m.test(f), 'list refreshed')
})

test('keys that arrive together are each handled: j j moves twice, /sub opens the filter and types, a view switch takes the rest', async () => {
  const source = new FakeSource()
  source.clientAnswer = { 'node-a': [clientInfo('c1'), clientInfo('c3')], 'node-b': [clientInfo('c2'), clientInfo('sub-9')] }
  const { lastFrame, stdin } = render(<App source={source} refreshMs={50} />)
  await frameWhere(lastFrame, (f) => f.includes('4 clients'), 'overview')
  // One write is one chunk, as a terminal delivers fast typing or tmux `send-keys 2 j j`.
  stdin.write('2jj')
  await frameWhere(lastFrame, (f) => f.includes('› c3'), 'the switch to Clients, then two moves down (c1 -> c2 -> c3)')
  stdin.write('/sub')
  let frame = await frameWhere(lastFrame, (f) => f.includes('filter: sub█'), 'the filter opened and took the rest of the chunk')
  assert.match(frame, /1 of 4 clients/)
  // q, r and digits typed into a filter are text, also within one chunk, and Enter in it ends the typing.
  stdin.write('\u007f\u007f\u007fq2r\r')
  frame = await frameWhere(lastFrame, (f) => f.includes('filter: q2r  (Esc clears)'), 'typed, then kept by Enter')
  assert.match(frame, /CLIENT ID/, 'still in Clients: 2 went into the filter')
  stdin.write('\u001B')
  await frameWhere(lastFrame, (f) => f.includes('4 of 4 clients'), 'Esc clears')
  stdin.write('?x3')
  await frameWhere(lastFrame, (f) => f.includes('retained filter (/)') && !f.includes('admin: keys'), 'help opened, closed by x, then 3 switched view')
  stdin.write('1q')
  // An app that exited stops reading the terminal.
  await waitFor(() => stdin.listenerCount('readable') === 0, { timeout: 3000, message: 'the app to exit: q after a view switch in the same chunk' })
})

test('Topics through the app: a typed filter replaces #, a refused one (HTTP 400) is the operator\'s error with its reason, Esc restores #', async () => {
  const source = new FakeSource()
  const asked: string[] = []
  source.retained = async (filter: string) => {
    asked.push(filter)
    if (filter.includes('#/')) throw new ApiClientError('http', 'POST http://127.0.0.1:8080/proxy/api/mqtt/topic/messages: HTTP 400', { status: 400, serverMessage: `topic ${JSON.stringify(filter)} is not a valid MQTT topic filter: '#' must be a whole level and the last one`, method: 'POST', url: 'http://127.0.0.1:8080/proxy/api/mqtt/topic/messages' })
    return { 'node-a': [], 'node-b': [] }
  }
  const { lastFrame, stdin } = render(<App source={source} refreshMs={50} initialView='topics' />)
  await frameWhere(lastFrame, (f) => f.includes('retained filter (/): #') && f.includes('no retained message matches'), 'topics, filter #')
  stdin.write('/home/+\r')
  await frameWhere(lastFrame, (f) => f.includes('retained filter (/): home/+ '), 'the new filter')
  await waitFor(() => asked.includes('home/+'), { timeout: 3000, message: 'the cluster asked for home/+' })
  assert.ok(!asked.includes('#home/+'), `asked ${asked.join(', ')}`)
  stdin.write('/a/#/b\r')
  const frame = await frameWhere(lastFrame, (f) => f.includes('✖ topic "a/#/b" is not a valid MQTT topic filter'), 'the refusal with its reason')
  assert.doesNotMatch(frame, /no answer from|node-b/)
  stdin.write('\u001B')
  await frameWhere(lastFrame, (f) => f.includes('retained filter (/): # ') && !f.includes('✖'), 'Esc: back to #')
})

test('the header counts alive members; Events drop what came from members no longer followed', async () => {
  const source = new FakeSource()
  source.memberList = [member('node-a', '127.0.0.1'), member('node-b', '127.0.0.2'), member('node-c', '127.0.0.3', 2)]
  source.clientAnswer = { 'node-a': [clientInfo('c1')], 'node-b': [] }
  const { lastFrame, stdin } = render(<App source={source} refreshMs={50} initialView='events' />)
  await frameWhere(lastFrame, (f) => f.includes('· 2 of 3 members alive · 1 client ·'), 'alive members counted, singular client')
  await frameWhere(lastFrame, (f) => f.includes('node-a cluster:new_member') && f.includes('node-b cluster:new_member'), 'events of both alive members')
  await press(stdin, 'n')
  const frame = await frameWhere(lastFrame, (f) => f.includes('members: node-a '), 'following node-a only')
  assert.doesNotMatch(frame, /node-b cluster:new_member/, 'node-b\'s events are filtered out at once')
  assert.match(frame, /node-a cluster:new_member/)
})

test('bad credentials: a clear message, not a crash', async () => {
  const source = new FakeSource()
  source.membersError = new ApiClientError('http', 'GET http://127.0.0.1:8080/api/discovery/members: HTTP 401: wrong username or password', { status: 401, serverMessage: 'wrong username or password', method: 'GET', url: 'http://127.0.0.1:8080/api/discovery/members' })
  const { lastFrame } = render(<App source={source} refreshMs={50} />)
  const frame = await frameWhere(lastFrame, (f) => f.includes('credentials refused'), 'auth message')
  assert.match(frame.replace(/\s*\n\s*/g, ' '), /✖ credentials refused by http:\/\/127\.0\.0\.1:8080 \(HTTP 401: wrong username or password\): check --user or BROKER_ADMIN_USER/)
  assert.match(frame, /waiting for the member list/)
})

test('unreachable URL: the reason and a retry countdown; recovers when the node comes back, keeping the last data meanwhile', async () => {
  const source = new FakeSource()
  const refused = new ApiClientError('network', 'connect ECONNREFUSED', { method: 'GET', url: 'http://127.0.0.1:8080/api/discovery/members', cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) })
  const { lastFrame } = render(<App source={source} refreshMs={50} />)
  await frameWhere(lastFrame, (f) => f.includes('2 members'), 'connected')
  source.membersError = refused
  const frame = await frameWhere(lastFrame, (f) => f.includes('cannot reach'), 'unreachable')
  assert.match(frame.replace(/\s*\n\s*/g, ' '), /✖ cannot reach http:\/\/127\.0\.0\.1:8080: connection refused · retrying in \d+s · showing data from \d\d:\d\d:\d\d/)
  assert.match(frame, /node-a\s+alive/, 'the last member list stays on screen')
  source.membersError = undefined
  await frameWhere(lastFrame, (f) => f.includes('● http://127.0.0.1:8080 · 2 members alive'), 'recovered')
})

test('fits an 80x24 terminal on every view', async () => {
  const source = new FakeSource()
  source.clientAnswer = { 'node-a': Array.from({ length: 40 }, (_, i) => clientInfo(`a-very-long-client-identifier-${i}-${'x'.repeat(60)}`)) }
  const { lastFrame, stdin, stdout } = render(<App source={source} refreshMs={50} />)
  // The test terminal is 100 columns without rows; make it 80x24 and tell the app, as a resize would.
  Object.defineProperty(stdout, 'columns', { value: 80, configurable: true })
  Object.defineProperty(stdout, 'rows', { value: 24, configurable: true })
  stdout.emit('resize')
  const marks: Record<string, string> = { 1: 'no alerts', 2: 'of 40 clients', 3: 'no retained message', 4: 'cluster:new_member', 5: 'rss' }
  for (const key of ['1', '2', '3', '4', '5']) {
    await press(stdin, key)
    const frame = await frameWhere(lastFrame, (f) => f.includes(marks[key]!), `view ${key}`)
    const lines = frame.split('\n')
    assert.ok(lines.length <= 23, `view ${key}: ${lines.length} lines`)
    for (const line of lines) assert.ok([...line].length <= 80, `view ${key} line within 80 columns: ${line}`)
  }
})
