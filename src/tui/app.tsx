// The admin app: data from hooks (polling the cluster source, SSE for
// events), views that render it, and the global keys. Everything the screen
// shows fits the terminal: the root box is as wide as the terminal and one
// row shorter (Ink repaints the whole screen, flickering, once its output
// reaches the terminal's height).
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { Box, Text, useApp, useInput, type Key } from 'ink'
import type { ClusterSource } from './cluster-source.js'
import { describeError, isAuthError, refusalOf } from './cluster-source.js'
import { clientRows, clientsPerNode, inflightRows, memberRows, retainedRows, subscriberRows, type Answered, type ClientRow, type MemberRow } from './cluster-model.js'
import { plural } from './text-layout.js'
import { clusterAlerts, udpBlockedAlerts } from './alerts.js'
import { usePoll } from './hooks/use-poll.js'
import { useKeyState } from './hooks/use-key-state.js'
import { KeyRouterContext, useKeyRouter } from './hooks/use-keys.js'
import { splitKeys, type KeyPress } from './keys.js'
import { useMetricsHistory } from './hooks/use-metrics-history.js'
import { useEvents } from './hooks/use-events.js'
import { useTerminalSize } from './hooks/use-terminal-size.js'
import { OverviewView } from './views/overview-view.js'
import { ClientsView } from './views/clients-view.js'
import { ALL, TopicsView, type Listing } from './views/topics-view.js'
import { EventsView } from './views/events-view.js'
import { MetricsView } from './views/metrics-view.js'
import { HelpView } from './views/help-view.js'
import { kickClient } from './kick.js'
import { VIEWS, type ViewName } from './view-names.js'

const TITLES: Record<ViewName, string> = { overview: 'Overview', clients: 'Clients', topics: 'Topics', events: 'Events', metrics: 'Metrics' }
const CHANNELS = [undefined, 'cluster:message_to', 'cluster:message_from', 'cluster:new_member']

const FOOTERS: Record<ViewName, string> = {
  overview: '↑↓ select  o sort',
  clients: '↑↓ select  / filter  o sort  Enter detail  K disconnect',
  topics: '/ filter  s subscribers  ↑↓ select  o sort  v payload',
  events: 'space pause  n members  f channel  / filter  c clear',
  metrics: ''
}

export interface AppProps {
  source: ClusterSource
  /** Poll interval, ms. */
  refreshMs?: number
  /** Alert when fewer members are alive (default: the most seen alive this session). */
  expectMembers?: number | undefined
  initialView?: ViewName
}

function clock (ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().slice(11, 19)
}

export function App ({ source, refreshMs = 2000, expectMembers, initialView = 'overview' }: AppProps) {
  const app = useApp()
  const { columns, rows } = useTerminalSize()
  const [view, setView, getView] = useKeyState<ViewName>(initialView)
  const [help, setHelp, getHelp] = useKeyState(false)
  // Whether the view takes every key (typing a filter, a dialog). A ref, set
  // by the view's key handler itself, so the next key of the same chunk
  // already goes to the view only.
  const captureRef = useRef(false)
  const setCapture = useCallback((c: boolean) => { captureRef.current = c }, [])
  const [now, setNow] = useState(Date.now())

  // ---- data ---------------------------------------------------------------
  const members = usePoll(() => source.members(), refreshMs)
  const clients = usePoll(() => source.clients(), refreshMs)
  const memberList = useMemo(() => (members.data === undefined ? undefined : memberRows(members.data)), [members.data])
  const [maxSeenAlive, setMaxSeenAlive] = useState(0)
  const aliveCount = memberList?.filter((m) => m.state === 'alive').length ?? 0
  useEffect(() => { if (aliveCount > maxSeenAlive) setMaxSeenAlive(aliveCount) }, [aliveCount, maxSeenAlive])
  const history = useMetricsHistory(source, memberList, refreshMs)
  const clientList = useMemo(() => (clients.data === undefined ? undefined : clientRows(clients.data)), [clients.data])

  const [selectedClient, setSelectedClient] = useState<string | undefined>(undefined)
  // The answer carries its client id: after a selection change the previous
  // client's messages must not be shown as the new one's.
  const inflight = usePoll(async () => (selectedClient === undefined ? undefined : { clientId: selectedClient, ...inflightRows(await source.inflight(selectedClient)) }), refreshMs * 2, [selectedClient], view === 'clients' && selectedClient !== undefined)

  // Answers carry the question they answer: rows for another filter (the
  // previous one, while the new one loads or was refused) are not this one's.
  const [retainedFilter, setRetainedFilter] = useState(ALL)
  const retained = usePoll(async () => ({ filter: retainedFilter, ...retainedRows(await source.retained(retainedFilter)) }), refreshMs * 2, [retainedFilter], view === 'topics')
  const [subscribersTopic, setSubscribersTopic] = useState('')
  const subscribers = usePoll(async () => ({ topic: subscribersTopic, ...subscriberRows(await source.subscribers(subscribersTopic)) }), refreshMs * 2, [subscribersTopic], view === 'topics' && subscribersTopic !== '')

  const [paused, setPaused] = useState(false)
  const [nodeChoice, setNodeChoice] = useState(0)
  const [channelChoice, setChannelChoice] = useState(0)
  const [cleared, setCleared] = useState(0)
  const eventCandidates = (memberList ?? []).filter((m) => (m.state === 'alive' || m.state === 'suspect') && m.apiUrl !== undefined)
  const chosen = nodeChoice === 0 || nodeChoice > eventCandidates.length ? eventCandidates : [eventCandidates[nodeChoice - 1]!]
  const streams = useEvents(source, chosen.map((m) => ({ name: m.name, apiUrl: m.apiUrl! })), paused, view === 'events')
  // Events already received from members no longer followed are not shown either.
  const followed = new Set(chosen.map((m) => m.name))

  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(t)
  }, [])

  const onDisconnect = useCallback(async (row: ClientRow): Promise<string> => {
    const outcome = await kickClient(source, row.id)
    clients.refresh()
    if (outcome.stopped.length > 0) return `${row.id} disconnected from ${outcome.stopped.join(', ')}`
    const failed = Object.entries(outcome.failed).map(([n, e]) => `${n}: ${e}`).join('; ')
    return `disconnect failed: ${failed === '' ? `${row.id} is no longer connected` : failed}`
  }, [source, clients])

  // ---- keys ---------------------------------------------------------------
  // One listener for the whole app, one key at a time (hooks/use-keys.ts).
  const { router, viewHandler } = useKeyRouter()
  // Keys of a chunk that follow a key which switched the view or closed the
  // help: they belong to the screen that key brought up, so they wait until
  // it is mounted (its handler registered).
  const deferred = useRef<KeyPress[]>([])
  const globalKey = (input: string, key: Key): boolean | 'quit' => {
    if (input === 'q' || (key.ctrl && input === 'c')) return 'quit'
    if (input === '?') { setHelp(true); return true }
    if (input === 'r') { members.refresh(); clients.refresh(); return true }
    if (key.tab) {
      const i = VIEWS.indexOf(getView())
      setView(VIEWS[(i + (key.shift ? VIEWS.length - 1 : 1)) % VIEWS.length]!)
      return true
    }
    const n = Number(input)
    if (input !== '' && input !== ' ' && Number.isInteger(n) && n >= 1 && n <= VIEWS.length) { setView(VIEWS[n - 1]!); return true }
    return false
  }
  const dispatch = (presses: KeyPress[]): void => {
    for (const [i, { input, key }] of presses.entries()) {
      const screen = `${getView()} ${getHelp()}`
      if (getHelp()) setHelp(false)
      else if (captureRef.current) viewHandler()?.(input, key)
      else {
        const handled = globalKey(input, key)
        if (handled === 'quit') { app.exit(); return }
        if (!handled) viewHandler()?.(input, key)
      }
      if (`${getView()} ${getHelp()}` !== screen) {
        deferred.current = presses.slice(i + 1)
        return
      }
    }
  }
  useInput((input, key) => dispatch(splitKeys(input, key)))
  useEffect(() => {
    const rest = deferred.current
    deferred.current = []
    if (rest.length > 0) dispatch(rest)
  }, [view, help])

  // ---- screen -------------------------------------------------------------
  const width = Math.max(20, columns)
  const height = Math.max(8, rows - 1)
  const status = statusLine(source.currentUrl, members, clients.error, memberList, clientList?.rows.length, now)
  // An error may take a few lines: the operator must be able to read all of it.
  const statusLines = status.color === 'red' ? Math.min(3, Math.ceil([...status.text].length / width)) : 1
  const bodyHeight = height - 2 - statusLines
  const body = (() => {
    switch (view) {
      case 'overview':
        return <OverviewView active={!help} members={memberList} alerts={memberList === undefined ? [] : [...clusterAlerts(memberList, expectMembers, maxSeenAlive, clientList?.failures), ...udpBlockedAlerts(history)]} clientsPerNode={clientsPerNode(clients.data)} unanswered={clientList?.failures ?? {}} history={history} width={width} height={bodyHeight} />
      case 'clients':
        return (
          <ClientsView
            active={!help} rows={clientList?.rows} failures={clientList?.failures ?? {}} width={width} height={bodyHeight} now={now}
            inflight={{ clientId: inflight.data?.clientId ?? selectedClient, rows: inflight.data?.clientId === selectedClient ? inflight.data?.rows : undefined, error: inflight.error === undefined ? undefined : describeError(inflight.error) }}
            onSelect={setSelectedClient} onDisconnect={onDisconnect} onCapture={setCapture}
          />
        )
      case 'topics':
        return (
          <TopicsView
            active={!help} width={width} height={bodyHeight} onCapture={setCapture}
            filter={retainedFilter} onFilterChange={setRetainedFilter}
            retained={listing(retained, retained.data?.filter === retainedFilter)}
            topic={subscribersTopic} onTopicChange={setSubscribersTopic}
            subscribers={subscribersTopic === '' ? { rows: undefined, failures: {}, error: undefined } : listing(subscribers, subscribers.data?.topic === subscribersTopic)}
          />
        )
      case 'events':
        return (
          <EventsView
            active={!help} width={width} height={bodyHeight} onCapture={setCapture}
            events={streams.events.filter((e) => e.seq > cleared && followed.has(e.node))} held={streams.held} errors={streams.errors} paused={paused}
            nodesLabel={chosen.length === eventCandidates.length ? `all (${chosen.length})` : chosen.map((m) => m.name).join(', ')}
            channel={CHANNELS[channelChoice]}
            onTogglePause={() => setPaused((p) => !p)}
            onCycleNodes={() => setNodeChoice((c) => (c + 1) % (eventCandidates.length + 1))}
            onCycleChannel={() => setChannelChoice((c) => (c + 1) % CHANNELS.length)}
            onClear={() => setCleared(streams.events.at(-1)?.seq ?? cleared)}
          />
        )
      case 'metrics':
        return <MetricsView members={memberList} history={history} width={width} height={bodyHeight} />
    }
  })()

  return (
    <KeyRouterContext.Provider value={router}>
      <Box flexDirection='column' width={width} height={height}>
        <Text wrap='truncate'>
          <Text bold color='cyan'>broker-ha admin </Text>
          {VIEWS.map((v, i) => (
            <Text key={v} inverse={v === view}>{` ${i + 1} ${TITLES[v]} `}</Text>
          ))}
        </Text>
        <Box height={statusLines}><Text wrap={statusLines > 1 ? 'wrap' : 'truncate'} color={status.color}>{status.text}</Text></Box>
        <Box flexDirection='column' height={bodyHeight} overflow='hidden'>
          {help ? <HelpView width={width} /> : body}
        </Box>
        <Text wrap='truncate' dimColor>{FOOTERS[view] === '' ? '1-5 views  ? help  q quit' : `${FOOTERS[view]}  │  ? help  q quit`}</Text>
      </Box>
    </KeyRouterContext.Provider>
  )
}

/**
 * A polled /proxy question as the Topics view lists it. A refusal (HTTP 400:
 * the filter or topic is malformed) is the operator's to fix and is shown as
 * such, not as members that did not answer; rows answering another question
 * (`current` false) are not shown.
 */
function listing<R> (polled: { data: Answered<R> | undefined, error: unknown }, current: boolean): Listing<R> {
  const refused = refusalOf(polled.error) ?? (current ? polled.data?.refused : undefined)
  if (refused !== undefined) return { rows: undefined, failures: {}, error: undefined, refused }
  return {
    rows: current ? polled.data?.rows : undefined,
    failures: current ? polled.data?.failures ?? {} : {},
    error: polled.error === undefined ? undefined : describeError(polled.error)
  }
}

function statusLine (url: string, members: { error: unknown, updatedAt: number | undefined, retryAt: number | undefined, failures: number }, clientsError: unknown, memberList: MemberRow[] | undefined, clientCount: number | undefined, now: number): { text: string, color: string } {
  if (members.error !== undefined) {
    const retry = members.retryAt === undefined ? '' : ` · retrying in ${Math.max(0, Math.ceil((members.retryAt - now) / 1000))}s`
    const stale = members.updatedAt === undefined ? '' : ` · showing data from ${clock(members.updatedAt)}`
    return { text: `✖ ${describeError(members.error, url)}${isAuthError(members.error) ? '' : retry}${stale}`, color: 'red' }
  }
  if (members.updatedAt === undefined) return { text: `connecting to ${url}…`, color: 'yellow' }
  const clientsNote = clientsError === undefined ? (clientCount === undefined ? '? clients' : plural(clientCount, 'client')) : `clients: ${describeError(clientsError, url)}`
  // Alive members are what serves clients; dead ones stay listed until reaped.
  const total = memberList?.length ?? 0
  const alive = memberList?.filter((m) => m.state === 'alive').length ?? 0
  const membersNote = alive === total ? `${plural(alive, 'member')} alive` : `${alive} of ${plural(total, 'member')} alive`
  return { text: `● ${url} · ${membersNote} · ${clientsNote} · updated ${clock(members.updatedAt)}`, color: clientsError === undefined ? 'green' : 'yellow' }
}
