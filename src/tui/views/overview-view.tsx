// Overview: every member with its state, address, health score and load,
// sortable by column, alerts (suspect or dead members, a cluster smaller
// than expected), and a detail pane for the selected member.
import { Box, Text } from 'ink'
import type { MemberRow } from '../cluster-model.js'
import type { Alert } from '../alerts.js'
import { latest, rates, type MetricsHistory } from '../node-metrics.js'
import { useKeyState } from '../hooks/use-key-state.js'
import { useViewKeys } from '../hooks/use-keys.js'
import { listMove } from '../keys.js'
import { nextSort, sortedTitle, sortRows, UNSORTED, type SortColumn, type SortState } from '../sorting.js'
import { contentWidth, fit, formatBytes, formatCells, formatDuration, formatNumber, layoutColumns, plural, type Column } from '../text-layout.js'

export interface OverviewViewProps {
  members: MemberRow[] | undefined
  alerts: Alert[]
  clientsPerNode: Map<string, number>
  history: MetricsHistory
  /** Members whose /proxy answer failed: their figures are unknown, not stale. */
  unanswered?: Record<string, string>
  /** False while an overlay (help) has the keyboard. */
  active?: boolean
  width: number
  height: number
}

const STATE_COLOR: Record<string, string> = { alive: 'green', suspect: 'yellow', dead: 'red', left: 'gray', unknown: 'magenta' }
const STATE_ORDER: Record<string, number> = { alive: 0, suspect: 1, dead: 2, left: 3, unknown: 4 }
const DETAIL_LINES = 5

export function OverviewView ({ members, alerts, clientsPerNode, history, unanswered = {}, active = true, width, height }: OverviewViewProps) {
  const [selected, setSelected, getSelected] = useKeyState(0)
  const [sort, setSort, getSort] = useKeyState<SortState>(UNSORTED)
  const recv = (m: MemberRow): number => rates(history[m.name]?.snapshots ?? [], 'recv').at(-1) ?? -1
  const sent = (m: MemberRow): number => rates(history[m.name]?.snapshots ?? [], 'sent').at(-1) ?? -1
  const SORT: Array<SortColumn<MemberRow>> = [
    { title: 'MEMBER', value: (m) => m.name },
    { title: 'STATE', value: (m) => STATE_ORDER[m.state] ?? 9 },
    { title: 'ADDRESS', value: (m) => `${m.addr}:${m.port}` },
    { title: 'HEALTH', value: (m) => latest(history[m.name])?.health ?? -1 },
    { title: 'CLIENTS', value: (m) => clientsPerNode.get(m.name) ?? latest(history[m.name])?.clients ?? -1 },
    { title: 'IN/s', value: recv },
    { title: 'OUT/s', value: sent }
  ]
  const rows = sortRows(members ?? [], SORT, sort)

  useViewKeys((input, key) => {
    const at = Math.min(getSelected(), Math.max(0, rows.length - 1))
    const moved = listMove(input, key, at, rows.length)
    const sorted = nextSort(getSort(), SORT.length, input)
    if (moved !== undefined) setSelected(moved)
    else if (sorted !== undefined) setSort(sorted)
  }, { isActive: active })

  if (members === undefined) return <Text dimColor>waiting for the member list…</Text>
  const index = Math.min(selected, Math.max(0, rows.length - 1))
  const current = rows[index]
  // Fixed columns as narrow as their figures; one grows by the sort mark.
  const fixed = (title: string, index: number, width: number): Column => {
    const shown = sortedTitle(title, index, sort)
    return { title: shown, width: Math.max(width, shown.length), align: 'right' }
  }
  const columns = layoutColumns([
    { title: sortedTitle('MEMBER', 0, sort), width: 0, content: contentWidth('MEMBER', rows.map((m) => m.name)) },
    { ...fixed('STATE', 1, 7), align: 'left' },
    { title: sortedTitle('ADDRESS', 2, sort), width: 0, content: contentWidth('ADDRESS', rows.map((m) => `${m.addr}:${m.port}`)) },
    fixed('HEALTH', 3, 6),
    fixed('CLIENTS', 4, 7),
    fixed('IN/s', 5, 6),
    fixed('OUT/s', 6, 6),
    ...(width >= 100 ? [{ title: 'VERSION', width: 8 } satisfies Column] : [])
  ], width - 2)
  const alertLines = alerts.slice(0, Math.max(1, Math.floor(height / 4)))
  const rowsRoom = Math.max(1, height - 3 - alertLines.length - DETAIL_LINES)
  const alive = members.filter((m) => m.state === 'alive').length
  return (
    <Box flexDirection='column'>
      <Text bold>{`  ${formatCells(columns.map((c) => c.title), columns)}`}</Text>
      {rows.slice(0, rowsRoom).map((m, i) => {
        const series = history[m.name]
        const snap = latest(series)
        const up = m.state === 'alive' || m.state === 'suspect'
        const silent = m.name in unanswered || series?.error !== undefined
        const clients = clientsPerNode.get(m.name)
        const cells = [
          m.name,
          m.state,
          `${m.addr}:${m.port}`,
          !up ? '-' : series?.error !== undefined ? '?' : formatNumber(snap?.health),
          !up ? '-' : m.name in unanswered ? '?' : formatNumber(clients ?? snap?.clients),
          !up ? '-' : silent ? '?' : formatNumber(rates(series?.snapshots ?? [], 'recv').at(-1), 1),
          !up ? '-' : silent ? '?' : formatNumber(rates(series?.snapshots ?? [], 'sent').at(-1), 1),
          m.version
        ]
        const line = formatCells(cells, columns)
        const stateStart = columns[0]!.width + 1
        return (
          <Text key={m.name} wrap='truncate' inverse={i === index}>
            {i === index ? '› ' : '  '}
            {line.slice(0, stateStart)}
            <Text color={STATE_COLOR[m.state]}>{line.slice(stateStart, stateStart + columns[1]!.width)}</Text>
            {line.slice(stateStart + columns[1]!.width)}
          </Text>
        )
      })}
      <Text> </Text>
      {alertLines.length === 0
        ? <Text color='green'>{fit(`no alerts: ${plural(alive, 'member')} alive`, width)}</Text>
        : alertLines.map((a, i) => <Text key={i} color={a.level === 'error' ? 'red' : 'yellow'} wrap='truncate'>{`! ${a.text}`}</Text>)}
      <Box flexGrow={1} />
      <MemberDetail member={current} history={history} clients={current === undefined ? undefined : clientsPerNode.get(current.name)} width={width} />
    </Box>
  )
}

/** The selected member: where to reach it and what its /metrics said last. */
export function memberDetailLines (m: MemberRow, history: MetricsHistory, clients: number | undefined): string[] {
  const series = history[m.name]
  const snap = latest(series)
  const mqtt = m.mqttPort === undefined ? '-' : `${m.addr.includes(':') ? `[${m.addr}]` : m.addr}:${m.mqttPort}`
  const load = snap === undefined ? '' : ` · up ${formatDuration(snap.uptime)} · rss ${formatBytes(snap.rss)} · health ${formatNumber(snap.health)}`
  const lines = [
    `${m.name} · ${m.state} · version ${m.version || '-'}${load}`,
    `gossip ${m.addr}:${m.port} · API ${m.apiUrl ?? '-'} · MQTT ${mqtt}`
  ]
  if (series?.error !== undefined) lines.push(`metrics unavailable: ${series.error}`)
  else if (snap === undefined) lines.push(m.state === 'alive' || m.state === 'suspect' ? 'metrics: scraping…' : `not scraped while ${m.state}`)
  else {
    lines.push(`clients ${formatNumber(clients ?? snap.clients)} · subs ${formatNumber(snap.subscriptions)} · retained ${formatNumber(snap.retained)} · inflight ${formatNumber(snap.inflight)} · dropped ${formatNumber(snap.dropped)}`)
    lines.push(`in ${formatNumber(rates(series?.snapshots ?? [], 'recv').at(-1), 1)}/s · out ${formatNumber(rates(series?.snapshots ?? [], 'sent').at(-1), 1)}/s`)
  }
  return lines
}

function MemberDetail ({ member, history, clients, width }: { member: MemberRow | undefined, history: MetricsHistory, clients: number | undefined, width: number }) {
  return (
    <Box flexDirection='column' width={width} borderStyle='single' borderTop borderBottom={false} borderLeft={false} borderRight={false} borderDimColor>
      {member === undefined
        ? <Text dimColor>select a member with ↑/↓</Text>
        : memberDetailLines(member, history, clients).slice(0, DETAIL_LINES - 1).map((l, i) => <Text key={i} wrap='truncate'>{fit(l, width)}</Text>)}
    </Box>
  )
}
