// Clients: every client of every member, filterable by typing after `/`, a
// detail pane with the selected client's subscriptions and in-flight
// messages, and disconnect (`d`) behind a confirmation.
import { useEffect, useState } from 'react'
import { Box, Text } from 'ink'
import { useKeyState } from '../hooks/use-key-state.js'
import { useViewKeys } from '../hooks/use-keys.js'
import { filterClients, type ClientRow, type InflightRow } from '../cluster-model.js'
import { fit, formatCells, layoutColumns, windowStart } from '../text-layout.js'
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
}

const DETAIL_LINES = 6

export function ClientsView ({ active = true, rows, failures, inflight, onSelect, onDisconnect, onCapture, width, height }: ClientsViewProps) {
  const [filter, setFilter, getFilter] = useKeyState('')
  const [typing, setTyping, getTyping] = useKeyState(false)
  const [selected, setSelected, getSelected] = useKeyState(0)
  const [confirm, setConfirm, getConfirm] = useKeyState<ClientRow | undefined>(undefined)
  const [message, setMessage] = useState<string | undefined>(undefined)
  const visible = filterClients(rows ?? [], filter)
  const index = Math.min(selected, Math.max(0, visible.length - 1))
  const current = visible[index]

  useEffect(() => { onCapture(typing || confirm !== undefined) }, [typing, confirm, onCapture])
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
    const shown = filterClients(rows ?? [], getFilter())
    const at = Math.min(getSelected(), Math.max(0, shown.length - 1))
    const last = Math.max(0, shown.length - 1)
    if (input === '/') setTyping(true)
    else if (key.escape) setFilter('')
    else if (key.downArrow || input === 'j') setSelected(Math.min(at + 1, last))
    else if (key.upArrow || input === 'k') setSelected(Math.max(0, at - 1))
    else if (key.pageDown) setSelected(Math.min(at + 10, last))
    else if (key.pageUp) setSelected(Math.max(0, at - 10))
    else if (input === 'd' && shown[at] !== undefined) { setMessage(undefined); setConfirm(shown[at]) }
    onCapture(getTyping() || getConfirm() !== undefined)
  }, { isActive: active })

  const columns = layoutColumns([
    { title: 'CLIENT ID', width: 0 },
    // Member names are short and alike: their column need not grow with the terminal.
    { title: 'NODE', width: Math.min(24, Math.max(4, ...(rows ?? []).map((r) => r.node.length))) },
    { title: 'USER', width: 10 },
    { title: 'MQTT', width: 5 },
    { title: 'CLEAN', width: 5 },
    { title: 'SUBS', width: 4, align: 'right' }
  ], width - 2)
  const failed = Object.entries(failures)
  const tableRoom = Math.max(1, height - DETAIL_LINES - 3 - (failed.length > 0 ? 1 : 0))
  const start = windowStart(visible.length, index, tableRoom)
  const filterLine = typing ? `filter: ${filter}█` : filter !== '' ? `filter: ${filter}  (Esc clears)` : 'type / to filter'
  return (
    <Box flexDirection='column'>
      <Text wrap='truncate'>
        <Text color={typing ? 'cyan' : undefined} dimColor={!typing && filter === ''}>{filterLine}</Text>
        <Text dimColor>{`   ${visible.length} of ${rows?.length ?? 0} clients`}</Text>
      </Text>
      {failed.length > 0 && <Text color='yellow' wrap='truncate'>{`no answer from ${failed.map(([n, e]) => `${n} (${e})`).join(', ')}`}</Text>}
      <Text bold>{`  ${formatCells(columns.map((c) => c.title), columns)}`}</Text>
      {rows === undefined && <Text dimColor>loading clients…</Text>}
      {rows !== undefined && visible.length === 0 && <Text dimColor>{filter === '' ? 'no clients connected' : 'no client matches the filter'}</Text>}
      {visible.slice(start, start + tableRoom).map((r, i) => (
        <Text key={`${r.node}/${r.id}`} inverse={start + i === index} wrap='truncate'>
          {`${start + i === index ? '›' : ' '} `}{formatCells([r.id, r.node, r.username, r.protocol, r.cleanSession ? 'yes' : 'no', String(r.subscriptions.length)], columns)}
        </Text>
      ))}
      <Box flexGrow={1} />
      {confirm !== undefined
        ? <ConfirmDialog question={`Disconnect ${confirm.id} from ${confirm.node}?`} width={width} />
        : <ClientDetail row={current} inflight={inflight} width={width} message={message} />}
    </Box>
  )
}

function ClientDetail ({ row, inflight, width, message }: { row: ClientRow | undefined, inflight: InflightState, width: number, message: string | undefined }) {
  const lines: Array<{ text: string, color?: string }> = []
  if (message !== undefined) lines.push({ text: message, color: message.includes('failed') ? 'red' : 'green' })
  if (row !== undefined) {
    lines.push({ text: `${row.id} on ${row.node} · user ${row.username === '' ? '(none)' : row.username} · MQTT ${row.protocol} · ${row.cleanSession ? 'clean session' : 'persistent session'}` })
    const subs = row.subscriptions.map((s, i) => `${row.filters[i] ?? s.Filter} q${s.Qos}`)
    lines.push({ text: `subscriptions (${subs.length}): ${subs.length === 0 ? '-' : subs.join(', ')}` })
    if (inflight.clientId !== row.id || (inflight.rows === undefined && inflight.error === undefined)) lines.push({ text: 'in-flight: loading…' })
    else if (inflight.error !== undefined) lines.push({ text: `in-flight: ${inflight.error}`, color: 'red' })
    else {
      const msgs = inflight.rows ?? []
      lines.push({ text: `in-flight (${msgs.length})${msgs.length === 0 ? ': none' : ':'}` })
      for (const m of msgs.slice(0, 2)) lines.push({ text: `  ${m.topic} q${m.qos} id ${m.packetId} ${m.payload.length} B (${m.node})` })
    }
  }
  return (
    <Box flexDirection='column' borderStyle='single' borderTop borderBottom={false} borderLeft={false} borderRight={false} borderDimColor>
      {lines.length === 0 && <Text dimColor>select a client with ↑/↓</Text>}
      {lines.slice(0, DETAIL_LINES - 1).map((l, i) => <Text key={i} color={l.color} wrap='truncate'>{fit(l.text, width)}</Text>)}
    </Box>
  )
}
