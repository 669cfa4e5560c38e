// Each view rendered with ink-testing-library: data shown, keys, filters,
// the confirmation dialog and error states.
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { render, cleanup } from 'ink-testing-library'
import { ClientsView, type InflightState } from '../../../src/tui/views/clients-view.js'
import { OverviewView } from '../../../src/tui/views/overview-view.js'
import { TopicsView, type Listing } from '../../../src/tui/views/topics-view.js'
import { EventsView } from '../../../src/tui/views/events-view.js'
import { MetricsView } from '../../../src/tui/views/metrics-view.js'
import type { ClientRow, MemberRow, RetainedRow, SubscriberRow } from '../../../src/tui/cluster-model.js'
import { clusterAlerts } from '../../../src/tui/alerts.js'
import { recordFailure, recordSnapshot, type MetricsHistory } from '../../../src/tui/node-metrics.js'
import type { LiveEvent } from '../../../src/tui/hooks/use-events.js'
import { KEY, frameWhere, plain, press } from './ink-helpers.js'

afterEach(() => cleanup())

const members: MemberRow[] = [
  { name: 'node-a', addr: '127.0.0.1', port: 7946, state: 'alive', version: '0.1.0', apiUrl: 'http://127.0.0.1:8080', mqttPort: 1883 },
  { name: 'node-b', addr: '127.0.0.2', port: 7946, state: 'suspect', version: '0.1.0', apiUrl: 'http://127.0.0.2:8080', mqttPort: 1883 },
  { name: 'node-c', addr: '127.0.0.3', port: 7946, state: 'dead', version: '0.1.0', apiUrl: 'http://127.0.0.3:8080', mqttPort: 1883 }
]

const clientRow = (id: string, node: string, username = '', filters: string[] = []): ClientRow => ({
  id, node, username, protocol: '5.0', cleanSession: true, filters, remote: undefined, connectedAt: undefined, keepAlive: undefined,
  subscriptions: filters.map((f) => ({ ShareName: null, Filter: f, Identifier: 0, Identifiers: null, RetainHandling: 0, Qos: 1, RetainAsPublished: false, NoLocal: false }))
})

const history = (): MetricsHistory => {
  let h: MetricsHistory = {}
  h = recordSnapshot(h, 'node-a', { at: 0, recv: 0, sent: 0, health: 0, clients: 2, uptime: 65, rss: 50 * 1024 * 1024 })
  h = recordSnapshot(h, 'node-a', { at: 1000, recv: 12, sent: 30, health: 0, clients: 2, uptime: 66, rss: 50 * 1024 * 1024 })
  h = recordSnapshot(h, 'node-b', { at: 0, recv: 0, health: 3, clients: 1 })
  h = recordFailure(h, 'node-b', 'cannot reach http://127.0.0.2:8080: connection refused')
  return h
}

test('Overview: members with state, address, health, clients and rates; alerts for suspect, dead and a small cluster', async () => {
  const { lastFrame } = render(<OverviewView members={members} alerts={clusterAlerts(members, 3, 3, { 'node-b': 'timeout: no answer' })} clientsPerNode={new Map([['node-a', 2]])} history={history()} unanswered={{ 'node-b': 'timeout: no answer' }} width={80} height={20} />)
  const frame = await frameWhere(lastFrame, (f) => f.includes('node-a'), 'overview')
  const lineA = frame.split('\n').find((l) => l.startsWith('› node-a'))!
  assert.match(lineA, /node-a\s+alive\s+127\.0\.0\.1:7946\s+0\s+2\s+12\.0\s+30\.0/)
  assert.match(frame, /node-b\s+suspect\s+127\.0\.0\.2:7946\s+\?\s+\?\s+\?\s+\?/, 'a member that does not answer shows unknowns, not stale figures')
  assert.match(frame, /! node-b does not answer: timeout: no answer/)
  assert.match(frame, /node-c\s+dead\s+127\.0\.0\.3:7946\s+-\s+-/)
  assert.match(frame, /! node-b is suspect/)
  assert.match(frame, /! node-c is dead/)
  assert.match(frame, /! cluster has 1 alive member, expected 3/)
  for (const line of frame.split('\n')) assert.ok(line.length <= 80, `fits 80 columns: ${line}`)
})

test('Overview: a detail pane for the selected member; sort by column; g/G/Home/End', async () => {
  const { lastFrame, stdin } = render(<OverviewView members={members} alerts={[]} clientsPerNode={new Map([['node-a', 2]])} history={history()} width={100} height={20} />)
  let frame = await frameWhere(lastFrame, (f) => f.includes('› node-a'), 'first member selected')
  assert.match(frame, /node-a · alive · version 0\.1\.0 · up 1m06s · rss 50\.0 MiB · health 0\n/)
  assert.match(frame, /gossip 127\.0\.0\.1:7946 · API http:\/\/127\.0\.0\.1:8080 · MQTT 127\.0\.0\.1:1883/)
  assert.match(frame, /clients 2 · subs - · retained - · inflight - · dropped -/)
  assert.match(frame, /in 12\.0\/s · out 30\.0\/s/)
  await press(stdin, 'G')
  frame = await frameWhere(lastFrame, (f) => f.includes('› node-c'), 'G: the last member')
  assert.match(frame, /node-c · dead · version 0\.1\.0\n.*\nnot scraped while dead/)
  await press(stdin, KEY.home)
  await frameWhere(lastFrame, (f) => f.includes('› node-a'), 'Home: the first')
  await press(stdin, KEY.end, 'g')
  await frameWhere(lastFrame, (f) => f.includes('› node-a'), 'g: the first')
  // o: next column (STATE), O: reversed.
  await press(stdin, 'o')
  await frameWhere(lastFrame, (f) => f.includes('STATE▲'), 'sorted by state')
  await press(stdin, 'O')
  frame = await frameWhere(lastFrame, (f) => f.includes('STATE▼'), 'reversed')
  const order = frame.split('\n').filter((l) => /^[› ] node-[abc]\s/.test(l)).map((l) => /node-[abc]/.exec(l)![0])
  assert.deepEqual(order, ['node-c', 'node-b', 'node-a'])
})

test('Overview: no alerts when all is well, a waiting line before the first answer', async () => {
  const ok = render(<OverviewView members={[members[0]!]} alerts={[]} clientsPerNode={new Map()} history={{}} width={80} height={20} />)
  await frameWhere(ok.lastFrame, (f) => f.includes('no alerts: 1 member alive'), 'no alerts, singular')
  const waiting = render(<OverviewView members={undefined} alerts={[]} clientsPerNode={new Map()} history={{}} width={80} height={20} />)
  await frameWhere(waiting.lastFrame, (f) => f.includes('waiting for the member list'), 'waiting')
})

function clientsProps (overrides: Partial<Parameters<typeof ClientsView>[0]> = {}) {
  const selected: Array<string | undefined> = []
  const disconnected: ClientRow[] = []
  const captures: boolean[] = []
  const inflight: InflightState = { clientId: undefined, rows: undefined, error: undefined }
  const props = {
    rows: [clientRow('sensor-1', 'node-a', 'recorder', ['home/#']), clientRow('sensor-2', 'node-b'), clientRow('dashboard', 'node-b', 'ops', ['a', 'b'])],
    failures: {},
    inflight,
    onSelect: (id: string | undefined) => { selected.push(id) },
    onDisconnect: async (row: ClientRow) => { disconnected.push(row); return `${row.id} disconnected from ${row.node}` },
    onCapture: (c: boolean) => { captures.push(c) },
    width: 80,
    height: 20,
    ...overrides
  }
  return { props, selected, disconnected, captures }
}

test('Clients: rows, selection with arrows, detail pane with connection, subscriptions and in-flight messages', async () => {
  const connected = { remote: '127.0.0.9:53422', connectedAt: Date.UTC(2026, 10, 25, 9, 21, 7) / 1000, keepAlive: 60 }
  const rows = [{ ...clientRow('sensor-1', 'node-a', 'recorder', ['home/#']), ...connected }, clientRow('sensor-2', 'node-b'), clientRow('dashboard', 'node-b', 'ops', ['a', 'b'])]
  const { props, selected } = clientsProps({ rows, now: Date.UTC(2026, 10, 25, 9, 23, 20), inflight: { clientId: 'sensor-1', rows: [{ node: 'node-a', topic: 'jobs/1', qos: 1, packetId: 7, payload: Buffer.from('abc') }], error: undefined } })
  const { lastFrame, stdin } = render(<ClientsView {...props} />)
  // Sorted by client id: dashboard, sensor-1, sensor-2.
  let frame = await frameWhere(lastFrame, (f) => f.includes('dashboard on node-b'), 'first client selected')
  assert.match(frame, /› dashboard\s+node-b\s+ops\s+5\.0\s+yes\s+2/)
  assert.match(frame, /from - · connected - · keep alive -/, 'what the member does not report is a dash')
  assert.match(frame, /3 of 3 clients/)
  await press(stdin, KEY.down)
  frame = await frameWhere(lastFrame, (f) => f.includes('sensor-1 on node-a'), 'second selected')
  assert.match(frame, /› sensor-1\s+node-a\s+recorder\s+5\.0\s+yes\s+1/)
  assert.match(frame, /from 127\.0\.0\.9:53422 · connected 09:21:07 \(2m13s ago\) · keep alive 60s/)
  assert.match(frame, /1 subscription: home\/# q1/)
  assert.match(frame, /1 message in flight:/)
  assert.match(frame, /jobs\/1 q1 id 7 3 B \(node-a\)/)
  await press(stdin, 'j')
  frame = await frameWhere(lastFrame, (f) => f.includes('› sensor-2'), 'j moves down')
  assert.match(frame, /sensor-2 on node-b · user \(none\)/)
  assert.match(frame, /0 subscriptions: -/)
  assert.match(frame, /in-flight: loading/, 'in-flight of another client is not shown as this one\'s')
  await frameWhere(() => String(selected.at(-1)), (id) => id === 'sensor-2', 'the app is told which client is selected')
  await press(stdin, KEY.down, KEY.down)
  await frameWhere(lastFrame, (f) => f.includes('› sensor-2'), 'selection stops at the last row')
  await press(stdin, 'k')
  await frameWhere(lastFrame, (f) => f.includes('› sensor-1'), 'k moves up')
  await press(stdin, 'g')
  await frameWhere(lastFrame, (f) => f.includes('› dashboard'), 'g: the first row')
  await press(stdin, 'G')
  await frameWhere(lastFrame, (f) => f.includes('› sensor-2'), 'G: the last row')
  await press(stdin, KEY.home)
  await frameWhere(lastFrame, (f) => f.includes('› dashboard'), 'Home')
  await press(stdin, KEY.end)
  await frameWhere(lastFrame, (f) => f.includes('› sensor-2'), 'End')
})

test('Clients: sorted by column with o, reversed with O; columns as wide as their content', async () => {
  const { props } = clientsProps({ width: 120 })
  const { lastFrame, stdin } = render(<ClientsView {...props} />)
  let frame = await frameWhere(lastFrame, (f) => f.includes('CLIENT ID▲'), 'sorted by id at first')
  const ids = (f: string): string[] => f.split('\n').filter((l) => /^[› ] (sensor|dashboard)/.test(l)).map((l) => l.slice(2).split(/\s+/)[0]!)
  assert.deepEqual(ids(frame), ['dashboard', 'sensor-1', 'sensor-2'])
  // CLIENT ID is as wide as the longest id (10 characters), not most of the 120 columns.
  const header = frame.split('\n').find((l) => l.includes('CLIENT ID'))!
  assert.ok(header.indexOf('NODE') < 16, header)
  await press(stdin, 'o', 'o', 'o', 'o', 'o')
  frame = await frameWhere(lastFrame, (f) => f.includes('SUBS▲'), 'sorted by subscriptions')
  assert.deepEqual(ids(frame), ['sensor-2', 'sensor-1', 'dashboard'])
  await press(stdin, 'O')
  frame = await frameWhere(lastFrame, (f) => f.includes('SUBS▼'), 'reversed')
  assert.deepEqual(ids(frame), ['dashboard', 'sensor-1', 'sensor-2'])
})

test('Clients: Enter (or d) shows the whole detail, as k9s describe; Esc goes back', async () => {
  const rows = [{ ...clientRow('sensor-1', 'node-a', 'recorder', ['a/#', 'b/+', 'c', 'd']) }, clientRow('sensor-2', 'node-b')]
  const { props } = clientsProps({ rows, inflight: { clientId: 'sensor-1', rows: [1, 2, 3].map((n) => ({ node: 'node-a', topic: `jobs/${n}`, qos: 1, packetId: n, payload: Buffer.from('x') })), error: undefined } })
  const { lastFrame, stdin } = render(<ClientsView {...props} />)
  let frame = await frameWhere(lastFrame, (f) => f.includes('4 subscriptions: a/# q1, b/+ q1, c q1, d q1'), 'the short detail')
  assert.doesNotMatch(frame, /jobs\/3/)
  await press(stdin, KEY.enter)
  frame = await frameWhere(lastFrame, (f) => f.includes('jobs/3'), 'the whole detail')
  assert.match(frame, /4 subscriptions:\n\s+a\/# q1\n\s+b\/\+ q1/)
  assert.doesNotMatch(frame, /sensor-2/, 'the detail takes the table\'s room')
  await press(stdin, KEY.escape)
  await frameWhere(lastFrame, (f) => f.includes('sensor-2'), 'back to the list')
  await press(stdin, 'd')
  await frameWhere(lastFrame, (f) => f.includes('jobs/3'), 'd describes too')
})

test('Clients: typing after / filters; Esc clears; the view captures keys while typing', async () => {
  const { props, captures } = clientsProps()
  const { lastFrame, stdin } = render(<ClientsView {...props} />)
  await frameWhere(lastFrame, (f) => f.includes('type / to filter'), 'hint')
  await press(stdin, '/', 'o', 'p', 's')
  let frame = await frameWhere(lastFrame, (f) => f.includes('filter: ops█'), 'typing')
  assert.ok(captures.includes(true), 'keys captured while typing')
  assert.match(frame, /1 of 3 clients/)
  assert.match(frame, /› dashboard/)
  assert.doesNotMatch(frame, /sensor-1/)
  await press(stdin, KEY.backspace, KEY.backspace, KEY.backspace, 'n', 'o', 'd', 'e', '-', 'b', KEY.enter)
  frame = await frameWhere(lastFrame, (f) => f.includes('filter: node-b  (Esc clears)'), 'filter kept after Enter')
  assert.match(frame, /2 of 3 clients/)
  assert.equal(captures.at(-1), false)
  await press(stdin, 'x', 'y', 'z')
  await press(stdin, KEY.escape)
  await frameWhere(lastFrame, (f) => f.includes('3 of 3 clients'), 'Esc clears the filter')
  await press(stdin, '/', 'n', 'o', 'b', 'o', 'd', 'y')
  await frameWhere(lastFrame, (f) => f.includes('no client matches the filter'), 'empty result')
})

test('Clients: K asks for confirmation; n cancels, y disconnects and shows the outcome', async () => {
  const { props, disconnected, captures } = clientsProps()
  const { lastFrame, stdin } = render(<ClientsView {...props} />)
  await frameWhere(lastFrame, (f) => f.includes('› dashboard'), 'rows')
  await press(stdin, KEY.down, 'K')
  const frame = await frameWhere(lastFrame, (f) => f.includes('Disconnect sensor-1 from node-a?'), 'dialog')
  assert.match(frame, /y: yes\s+n\/Esc: no/)
  assert.equal(captures.at(-1), true, 'the dialog takes the keys (q must not quit)')
  await press(stdin, 'n')
  await frameWhere(lastFrame, (f) => !f.includes('Disconnect sensor-1'), 'dialog closed')
  assert.equal(disconnected.length, 0)
  await press(stdin, 'K', 'y')
  await frameWhere(lastFrame, (f) => f.includes('sensor-1 disconnected from node-a'), 'outcome shown')
  assert.deepEqual(disconnected.map((r) => r.id), ['sensor-1'])
})

test('Clients: a failed disconnect and members without an answer are shown, not hidden', async () => {
  const { props } = clientsProps({
    failures: { 'node-c': 'timeout: no answer within 5000 ms' },
    onDisconnect: async () => { throw new Error('HTTP 404: client "sensor-1" is not connected') }
  })
  const { lastFrame, stdin } = render(<ClientsView {...props} />)
  await frameWhere(lastFrame, (f) => f.includes('no answer from node-c (timeout: no answer within 5000 ms)'), 'failure line')
  await press(stdin, 'K', 'y')
  await frameWhere(lastFrame, (f) => f.includes('disconnect failed: HTTP 404'), 'error shown')
  const empty = render(<ClientsView {...clientsProps({ rows: [] }).props} />)
  await frameWhere(empty.lastFrame, (f) => f.includes('no clients connected'), 'empty list')
  const loading = render(<ClientsView {...clientsProps({ rows: undefined }).props} />)
  await frameWhere(loading.lastFrame, (f) => f.includes('loading clients'), 'loading')
})

const retainedRow = (topic: string, payload: Buffer | string, nodes = ['node-a', 'node-b'], differs = false): RetainedRow =>
  ({ topic, nodes, qos: 1, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), properties: null, differs })

test('Topics: retained rows, payload preview modes, filter editing, subscribers of the selected topic', async () => {
  const filters: string[] = []
  const topics: string[] = []
  const retained: Listing<RetainedRow> = {
    rows: [retainedRow('home/config', '{"unit":"C"}'), retainedRow('home/raw', Buffer.from([0, 255, 65]), ['node-a']), retainedRow('home/temp', '21.5', ['node-a', 'node-b'], true)],
    failures: { 'node-c': 'HTTP 401: wrong username or password' },
    error: undefined
  }
  const subscribers: Listing<SubscriberRow> = { rows: [{ node: 'node-b', clientId: 'dashboard', filter: 'home/#', qos: 1, group: '' }], failures: {}, error: undefined }
  const { lastFrame, stdin } = render(
    <TopicsView filter='home/#' onFilterChange={(f) => filters.push(f)} retained={retained} topic='home/temp' onTopicChange={(t) => topics.push(t)} subscribers={subscribers} onCapture={() => {}} width={80} height={22} />
  )
  let frame = await frameWhere(lastFrame, (f) => f.includes('payload of home/config as json'), 'json preview')
  assert.match(frame, /"unit": "C"/)
  assert.match(frame, /home\/temp\s+1\s+4 2 nodes \(differ!\)/)
  assert.match(frame, /no answer from node-c \(HTTP 401: wrong username or password\)/)
  assert.match(frame, /dashboard\s+node-b\s+home\/#\s+1/)
  await press(stdin, KEY.down)
  frame = await frameWhere(lastFrame, (f) => f.includes('payload of home/raw as hex'), 'hex preview')
  assert.match(frame, /000000 {2}00 ff 41/)
  await press(stdin, 'v')
  await frameWhere(lastFrame, (f) => f.includes('payload of home/raw as text (v: text)'), 'forced text')
  await press(stdin, 'v', 'v')
  await frameWhere(lastFrame, (f) => f.includes('payload of home/raw as hex (v: hex)'), 'forced hex')
  await press(stdin, KEY.down, KEY.enter)
  await frameWhere(() => String(topics.at(-1)), (t) => t === 'home/temp', 'Enter asks for the subscribers of the selected topic')
  await press(stdin, '/')
  await frameWhere(lastFrame, (f) => f.includes('retained filter (/): █  (Enter: #, every topic, Esc: clear)'), 'typing starts a fresh filter')
  stdin.write('home/+\r')
  await frameWhere(() => String(filters.at(-1)), (f) => f === 'home/+', 'the typed filter replaces the current one on Enter (not appended to it)')
  await press(stdin, '/', KEY.enter)
  await frameWhere(() => String(filters.at(-1)), (f) => f === '#', 'an empty filter is #')
  await press(stdin, '/', 'x', KEY.escape)
  await frameWhere(() => String(filters.length), (n) => n === '3', 'Esc while typing clears, as in Clients')
  assert.equal(filters.at(-1), '#')
  await press(stdin, 's', 'x', KEY.escape)
  await frameWhere(() => String(topics.at(-1)), (t) => t === '', 'Esc clears the subscribers topic too')
})

test('Topics: a refused filter is the operator\'s error, with its reason; Esc goes back to #', async () => {
  const filters: string[] = []
  const topics: string[] = []
  const reason = 'topic "a/#/b" is not a valid MQTT topic filter: \'#\' must be a whole level and the last one'
  const { lastFrame, stdin } = render(
    <TopicsView filter='a/#/b' onFilterChange={(f) => filters.push(f)} retained={{ rows: undefined, failures: {}, error: undefined, refused: reason }} topic='c/#' onTopicChange={(t) => topics.push(t)} subscribers={{ rows: undefined, failures: {}, error: undefined, refused: 'topic "c/#" is not a valid MQTT topic name' }} onCapture={() => {}} width={100} height={22} />
  )
  const frame = await frameWhere(lastFrame, (f) => f.includes(`✖ ${reason}`), 'the reason, in red, once')
  assert.match(frame, /✖ topic "c\/#" is not a valid MQTT topic name \(Esc: clear\)/)
  assert.doesNotMatch(frame, /no answer from|loading/)
  await press(stdin, KEY.escape)
  await frameWhere(() => `${filters.at(-1)} ${topics.at(-1)}`, (x) => x === '# ', 'Esc: every topic again, and the refused subscribers topic cleared')
})

test('Topics: an error replaces the list with the reason', async () => {
  const { lastFrame } = render(
    <TopicsView filter='#' onFilterChange={() => {}} retained={{ rows: undefined, failures: {}, error: 'HTTP 400: topic "a/#/b" is not a valid MQTT topic filter' }} topic='' onTopicChange={() => {}} subscribers={{ rows: undefined, failures: {}, error: undefined }} onCapture={() => {}} width={80} height={22} />
  )
  await frameWhere(lastFrame, (f) => f.includes('HTTP 400: topic "a/#/b" is not a valid MQTT topic filter'), 'error shown')
})

const live = (seq: number, node: string, event: string, data: unknown): LiveEvent => ({ seq, at: Date.UTC(2026, 10, 25, 9, 0, seq), node, event, data })

test('Events: lines per event, channel and text filters, pause and node keys reach the callbacks', async () => {
  const calls: string[] = []
  const events = [
    live(1, 'node-a', 'cluster:message_to', { Node: ['all'], Payload: Buffer.from('21.5').toString('base64'), Topic: 'home/temp', Retain: true, Qos: 1 }),
    live(2, 'node-b', 'cluster:new_member', { name: 'node-c' }),
    live(3, 'node-a', 'cluster:message_to', { Payload: Buffer.from('on').toString('base64'), Topic: 'lights/1', Qos: 0 }),
    live(4, 'node-b', 'cluster:message_from', { Payload: Buffer.from([0, 255]).toString('base64'), Topic: 'raw', Qos: 0 })
  ]
  const props = {
    events, held: 0, errors: { 'node-c': 'cannot reach http://127.0.0.3:8080: connection refused' }, paused: false, nodesLabel: 'all (2)', channel: undefined as string | undefined,
    onTogglePause: () => calls.push('pause'), onCycleNodes: () => calls.push('nodes'), onCycleChannel: () => calls.push('channel'), onClear: () => calls.push('clear'),
    onCapture: () => {}, width: 90, height: 12
  }
  const { lastFrame, stdin, rerender } = render(<EventsView {...props} />)
  let frame = await frameWhere(lastFrame, (f) => f.includes('lights/1'), 'events')
  assert.match(frame, /09:00:01 node-a cluster:message_to home\/temp q1 retain 21\.5$/m)
  assert.match(frame, /09:00:04 node-b cluster:message_from raw q0 hex:00ff$/m)
  assert.match(frame, /09:00:02 node-b cluster:new_member \{"name":"node-c"\}/)
  assert.match(frame, /node-c: cannot reach/)
  assert.match(frame, /LIVE {2}members: all \(2\) {2}channel: all {2}no filter/)
  await press(stdin, ' ', 'n', 'f', 'c')
  assert.deepEqual(calls, ['pause', 'nodes', 'channel', 'clear'])
  await press(stdin, '/', 'l', 'i', 'g', 'h', 't')
  frame = await frameWhere(lastFrame, (f) => f.includes('filter: light█'), 'text filter')
  assert.doesNotMatch(frame, /home\/temp/)
  assert.match(frame, /lights\/1/)
  await press(stdin, 'n')
  assert.equal(calls.length, 4, 'keys typed into the filter are not commands')
  await press(stdin, KEY.escape)
  rerender(<EventsView {...props} channel='cluster:new_member' paused held={5} />)
  frame = await frameWhere(lastFrame, (f) => f.includes('PAUSED (5 new)'), 'paused')
  assert.doesNotMatch(frame, /message_to/)
  assert.match(frame, /cluster:new_member/)
  rerender(<EventsView {...props} events={[]} errors={{}} />)
  await frameWhere(lastFrame, (f) => f.includes('waiting for events'), 'empty')
})

test('Metrics: figures and sparklines per member; a member whose scrape fails says why', async () => {
  const { lastFrame } = render(<MetricsView members={members} history={history()} width={80} height={20} />)
  const frame = await frameWhere(lastFrame, (f) => f.includes('node-b'), 'metrics')
  assert.match(frame, /node-a {2}up 1m06s {2}rss 50\.0 MiB {2}health 0/)
  assert.match(frame, /clients 2/)
  assert.match(frame, /in {4}12\.0\/s +▁?█/)
  assert.match(frame, /node-b \[suspect\]/)
  assert.match(frame, /metrics unavailable: cannot reach http:\/\/127\.0\.0\.2:8080: connection refused/)
  assert.doesNotMatch(plain(frame), /node-c/, 'a dead member that was never scraped is not listed')
  const gone = render(<MetricsView members={[{ ...members[0]!, state: 'left' }]} history={history()} width={80} height={20} />)
  const left = await frameWhere(gone.lastFrame, (f) => f.includes('node-a [left]'), 'left member')
  assert.match(left, /not scraped while left; last figures:/)
  assert.match(left, /clients 2 {2}subs - {2}retained - {2}at \d\d:\d\d:\d\d/)
})
