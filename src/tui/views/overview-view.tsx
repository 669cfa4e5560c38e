// Overview: every member with its state, address, health score and load,
// plus alerts (suspect or dead members, a cluster smaller than expected).
import { Box, Text } from 'ink'
import type { MemberRow } from '../cluster-model.js'
import type { Alert } from '../alerts.js'
import { latest, rates, type MetricsHistory } from '../node-metrics.js'
import { fit, formatCells, formatNumber, layoutColumns, type Column } from '../text-layout.js'

export interface OverviewViewProps {
  members: MemberRow[] | undefined
  alerts: Alert[]
  clientsPerNode: Map<string, number>
  history: MetricsHistory
  /** Members whose /proxy answer failed: their figures are unknown, not stale. */
  unanswered?: Record<string, string>
  width: number
  height: number
}

const STATE_COLOR: Record<string, string> = { alive: 'green', suspect: 'yellow', dead: 'red', left: 'gray', unknown: 'magenta' }

export function OverviewView ({ members, alerts, clientsPerNode, history, unanswered = {}, width, height }: OverviewViewProps) {
  if (members === undefined) return <Text dimColor>waiting for the member list…</Text>
  const columns = layoutColumns([
    { title: 'MEMBER', width: 0 },
    { title: 'STATE', width: 7 },
    { title: 'ADDRESS', width: 0 },
    { title: 'HEALTH', width: 6, align: 'right' },
    { title: 'CLIENTS', width: 7, align: 'right' },
    { title: 'IN/s', width: 7, align: 'right' },
    { title: 'OUT/s', width: 7, align: 'right' },
    ...(width >= 100 ? [{ title: 'VERSION', width: 8 } satisfies Column] : [])
  ], width)
  const alertLines = alerts.slice(0, Math.max(1, Math.floor(height / 3)))
  const rowsRoom = Math.max(1, height - 3 - alertLines.length)
  return (
    <Box flexDirection='column'>
      <Text bold>{formatCells(columns.map((c) => c.title), columns)}</Text>
      {members.slice(0, rowsRoom).map((m) => {
        const series = history[m.name]
        const snap = latest(series)
        const up = m.state === 'alive' || m.state === 'suspect'
        const silent = m.name in unanswered || series?.error !== undefined
        const clients = clientsPerNode.get(m.name)
        const inRate = rates(series?.snapshots ?? [], 'recv').at(-1)
        const outRate = rates(series?.snapshots ?? [], 'sent').at(-1)
        const cells = [
          m.name,
          m.state,
          `${m.addr}:${m.port}`,
          !up ? '-' : series?.error !== undefined ? '?' : formatNumber(snap?.health),
          !up ? '-' : m.name in unanswered ? '?' : formatNumber(clients ?? snap?.clients),
          !up ? '-' : silent ? '?' : formatNumber(inRate, 1),
          !up ? '-' : silent ? '?' : formatNumber(outRate, 1),
          m.version
        ]
        const line = formatCells(cells, columns)
        const stateStart = columns[0]!.width + 1
        return (
          <Text key={m.name} wrap='truncate'>
            {line.slice(0, stateStart)}
            <Text color={STATE_COLOR[m.state]}>{line.slice(stateStart, stateStart + columns[1]!.width)}</Text>
            {line.slice(stateStart + columns[1]!.width)}
          </Text>
        )
      })}
      <Text> </Text>
      {alertLines.length === 0
        ? <Text color='green'>{fit(`no alerts: ${members.filter((m) => m.state === 'alive').length} members alive`, width)}</Text>
        : alertLines.map((a, i) => <Text key={i} color={a.level === 'error' ? 'red' : 'yellow'} wrap='truncate'>{`! ${a.text}`}</Text>)}
    </Box>
  )
}
