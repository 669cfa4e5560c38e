// Clients: every client of every member, filterable by typing after `/`,
// sortable by column, a detail pane with the selected client's connection,
// subscriptions and in-flight messages (Enter or d: the whole of it), and
// disconnect (`K`) behind a confirmation.
import { useEffect, useState } from 'react'
import { Box, Text } from 'ink'
import { useKeyState } from '../hooks/use-key-state.js'
import { useViewKeys } from '../hooks/use-keys.js'
import { listMove } from '../keys.js'
import { filterClients, type ClientRow, type InflightRow } from '../cluster-model.js'
import { contentWidth, fit, formatCells, formatDuration, layoutColumns, plural, windowStart, type Column } from '../text-layout.js'
import { nextSort, sortedTitle, sortRows, UNSORTED, type SortColumn, type SortState } from '../sorting.js'
import { ConfirmDialog } from './confirm-dialog.js'

export interface InflightState { clientId: string | undefined, rows: InflightRow[] | undefined, error: string | undefined }

export interface ClientsViewProps {
  rows: ClientRow[] | undefined
  /** Members whose client list failed, with why. */
  failures: Record<string, string>
  inflight: InflightState
  onSelect: (clientId: string | undefined) => void
  /** Disconnects the client; resolves with a line to show. */
  onDisconnect: (row: ClientRow) => Promise<string>
  /** True while the view takes every key (filter typing, dialog); called from the key handler itself so later keys of the same chunk see it. */
  onCapture: (capturing: boolean) => void
  /** False while an overlay (help) has the keyboard. */
  active?: boolean
  width: number
  height: number
  /** The time now (ms), for "connected 2m ago"; the app ticks it. */
  now?: number
}

const DETAIL_LINES = 6

const SORT: Array<SortColumn<ClientRow>> = [
  { title: 'CLIENT ID', value: (r) => r.id },
  { title: 'NODE', value: (r) => r.node },
  { title: 'USER', value: (r) => r.username },
  { title: 'MQTT', value: (r) => r.protocol },
  { title: 'CLEAN', value: (r) => (r.cleanSession ? 1 : 0) },
  { title: 'SUBS', value: (r) => r.subscriptions.length }
]

export function ClientsView ({ active = true, rows, failures, inflight, onSelect, onDisconnect, onCapture, width, height, now = Date.now() }: ClientsViewProps) {
  const [filter, setFilter, getFilter] = useKeyState('')
  const [typing, setTyping, getTyping] = useKeyState(false)
  const [selected, setSelected, getSelected] = useKeyState(0)
  const [sort, setSort, getSort] = useKeyState<SortState>(UNSORTED)
  const [describe, setDescribe, getDescribe] = useKeyState(false)
  const [confirm, setConfirm, getConfirm] = useKeyState<ClientRow | undefined>(undefined)
  const [message, setMessage] = useState<string | undefined>(undefined)
  const shownRows = (f: string, s: SortState): ClientRow[] => sortRows(filterClients(rows ?? [], f), SORT, s)
  const visible = shownRows(filter, sort)
  const index = Math.min(selected, Math.max(0, visible.length - 1))
  const current = visible[index]

  // From the key state as it is now, not as this render saw it: an effect of
  // an older render may run after a key handler already changed it (K right
  // after Enter under load), and must not release the keyboard the open
  // dialog holds (q would then quit instead of being ignored).
  useEffect(() => { onCapture(getTyping() || getConfirm() !== undefined) }, [typing, confirm, onCapture, getTyping, getConfirm])
  useEffect(() => () => onCapture(false), [onCapture])
  useEffect(() => { onSelect(current === undefined ? undefined : current.id) }, [current?.id, onSelect])

  useViewKeys((input, key) => {
    const pending = getConfirm()
    if (pending !== undefined) {
      if (input === 'y' || input === 'Y') {
        setConfirm(undefined)
        setMessage(`disconnecting ${pending.id}…`)
        onDisconnect(pending).then(setMessage, (err: unknown) => setMessage(`disconnect failed: ${(err as Error).message}`))
      } else if (input === 'n' || input === 'N' || key.escape) {
        setConfirm(undefined)
      }
      onCapture(getTyping() || getConfirm() !== undefined)
      return
    }
    if (getTyping()) {
      if (key.return) setTyping(false)
      else if (key.escape) { setTyping(false); setFilter('') } else if (key.backspace || key.delete) setFilter((f) => f.slice(0, -1))
      else if (input !== '' && !key.ctrl && !key.meta && !key.upArrow && !key.downArrow && !key.tab) { setFilter((f) => f + input); setSelected(0) }
      onCapture(getTyping())
      return
    }
    const shown = shownRows(getFilter(), getSort())
    const at = Math.min(getSelected(), Math.max(0, shown.length - 1))
    const moved = listMove(input, key, at, shown.length)
    const sorted = nextSort(getSort(), SORT.length, input)
    if (moved !== undefined) setSelected(moved)
    else if (sorted !== undefined) setSort(sorted)
    else if (input === '/') setTyping(true)
    else if (key.escape) { if (getDescribe()) setDescribe(false); else setFilter('') }
    // Enter or d describes (as in k9s); K kicks, after a confirmation.
    else if (key.return || input === 'd') setDescribe(!getDescribe())
    else if (input === 'K' && shown[at] !== undefined) { setMessage(undefined); setConfirm(shown[at]) }
    onCapture(getTyping() || getConfirm() !== undefined)
  }, { isActive: active })

  const all = rows ?? []
  // Fixed columns as narrow as their values; one grows by the sort mark.
  const fixed = (title: string, index: number, width: number, align: Column['align'] = 'left'): Column => {
    const shown = sortedTitle(title, index, sort)
    return { title: shown, width: Math.max(width, shown.length), align }
  }
  const columns = layoutColumns([
    { title: sortedTitle('CLIENT ID', 0, sort), width: 0, content: contentWidth('CLIENT ID', all.map((r) => r.id)) },
    { title: sortedTitle('NODE', 1, sort), width: 0, content: contentWidth('NODE', all.map((r) => r.node)) },
    { title: sortedTitle('USER', 2, sort), width: 0, content: contentWidth('USER', all.map((r) => r.username)) },
    fixed('MQTT', 3, 5),
    fixed('CLEAN', 4, 5),
    fixed('SUBS', 5, 4, 'right')
  ], width - 2, 4)
  const failed = Object.entries(failures)
  const detailLines = describe ? Math.max(DETAIL_LINES, height - 6) : DETAIL_LINES
  const tableRoom = Math.max(1, height - detailLines - 3 - (failed.length > 0 ? 1 : 0))
  const start = windowStart(visible.length, index, tableRoom)
  const filterLine = typing ? `filter: ${filter}█` : filter !== '' ? `filter: ${filter}  (Esc clears)` : 'type / to filter'
  return (
    <Box flexDirection='column'>
      <Text wrap='truncate'>
        <Text color={typing ? 'cyan' : undefined} dimColor={!typing && filter === ''}>{filterLine}</Text>
        <Text dimColor>{`   ${visible.length} of ${plural(all.length, 'client')}`}</Text>
      </Text>
      {failed.length > 0 && <Text color='yellow' wrap='truncate'>{`no answer from ${failed.map(([n, e]) => `${n} (${e})`).join(', ')}`}</Text>}
      <Text bold>{`  ${formatCells(columns.map((c) => c.title), columns)}`}</Text>
      {rows === undefined && <Text dimColor>loading clients…</Text>}
      {rows !== undefined && visible.length === 0 && <Text dimColor>{filter === '' ? 'no clients connected' : 'no client matches the filter'}</Text>}
      {!describe && visible.slice(start, start + tableRoom).map((r, i) => (
        <Text key={`${r.node}/${r.id}`} inverse={start + i === index} wrap='truncate'>
          {`${start + i === index ? '›' : ' '} `}{formatCells([r.id, r.node, r.username, r.protocol, r.cleanSession ? 'yes' : 'no', String(r.subscriptions.length)], columns)}
        </Text>
      ))}
      {describe && current !== undefined && (
        <Text inverse wrap='truncate'>{'› '}{formatCells([current.id, current.node, current.username, current.protocol, current.cleanSession ? 'yes' : 'no', String(current.subscriptions.length)], columns)}</Text>
      )}
      <Box flexGrow={1} />
      {confirm !== undefined
        ? <ConfirmDialog question={`Disconnect ${confirm.id} from ${confirm.node}?`} width={width} />
        : <ClientDetail row={current} inflight={inflight} width={width} message={message} lines={detailLines} full={describe} now={now} />}
    </Box>
  )
}

/** "127.0.0.1:53422 · connected 09:21:07 (2m13s ago) · keep alive 60s", with what the member reports. */
export function connectionLine (row: ClientRow, now: number): string {
  const since = row.connectedAt === undefined
    ? 'connected -'
    : `connected ${new Date(row.connectedAt * 1000).toISOString().slice(11, 19)} (${formatDuration(Math.max(0, now / 1000 - row.connectedAt))} ago)`
  return `from ${row.remote ?? '-'} · ${since} · keep alive ${row.keepAlive === undefined ? '-' : row.keepAlive === 0 ? 'off' : `${row.keepAlive}s`}`
}

function ClientDetail ({ row, inflight, width, message, lines: room, full, now }: { row: ClientRow | undefined, inflight: InflightState, width: number, message: string | undefined, lines: number, full: boolean, now: number }) {
  const lines: Array<{ text: string, color?: string }> = []
  if (message !== undefined) lines.push({ text: message, color: message.includes('failed') ? 'red' : 'green' })
  if (row !== undefined) {
    lines.push({ text: `${row.id} on ${row.node} · user ${row.username === '' ? '(none)' : row.username} · MQTT ${row.protocol} · ${row.cleanSession ? 'clean session' : 'persistent session'}` })
    lines.push({ text: connectionLine(row, now) })
    const subs = row.subscriptions.map((s, i) => {
      const options = full ? `${s.NoLocal ? ' no-local' : ''}${s.RetainAsPublished ? ' retain-as-published' : ''}${s.RetainHandling !== 0 ? ` rh${s.RetainHandling}` : ''}${s.Identifier !== 0 ? ` id ${s.Identifier}` : ''}` : ''
      return `${row.filters[i] ?? s.Filter} q${s.Qos}${options}`
    })
    if (full) {
      lines.push({ text: `${plural(subs.length, 'subscription')}${subs.length === 0 ? '' : ':'}` })
      for (const s of subs) lines.push({ text: `  ${s}` })
    } else lines.push({ text: `${plural(subs.length, 'subscription')}: ${subs.length === 0 ? '-' : subs.join(', ')}` })
    if (inflight.clientId !== row.id || (inflight.rows === undefined && inflight.error === undefined)) lines.push({ text: 'in-flight: loading…' })
    else if (inflight.error !== undefined) lines.push({ text: `in-flight: ${inflight.error}`, color: 'red' })
    else {
      const msgs = inflight.rows ?? []
      lines.push({ text: `${plural(msgs.length, 'message')} in flight${msgs.length === 0 ? '' : ':'}` })
      for (const m of msgs.slice(0, full ? msgs.length : 1)) lines.push({ text: `  ${m.topic} q${m.qos} id ${m.packetId} ${m.payload.length} B (${m.node})` })
    }
  }
  return (
    <Box flexDirection='column' width={width} borderStyle='single' borderTop borderBottom={false} borderLeft={false} borderRight={false} borderDimColor>
      {lines.length === 0 && <Text dimColor>select a client with ↑/↓</Text>}
      {lines.slice(0, room - 1).map((l, i) => <Text key={i} color={l.color} wrap='truncate'>{fit(l.text, width)}</Text>)}
    </Box>
  )
}
