// Topics: retained messages matching a filter (one row per topic, with the
// members holding it), a payload preview of the selected one as text, JSON
// or hex, and the subscribers of a topic across the cluster.
import { useEffect, useState } from 'react'
import { Box, Text } from 'ink'
import { useKeyState } from '../hooks/use-key-state.js'
import { useViewKeys } from '../hooks/use-keys.js'
import type { RetainedRow, SubscriberRow } from '../cluster-model.js'
import { PREVIEW_MODES, previewPayload, type PreviewMode } from '../payload-preview.js'
import { contentWidth, fit, formatCells, layoutColumns, plural, windowStart } from '../text-layout.js'
import { listMove } from '../keys.js'
import { nextSort, sortedTitle, sortRows, UNSORTED, type SortColumn, type SortState } from '../sorting.js'

export interface Listing<T> {
  rows: T[] | undefined
  failures: Record<string, string>
  /** Why there is no answer (the entry node cannot be reached, ...). */
  error: string | undefined
  /** Why the cluster refused the question itself (HTTP 400): the operator's to fix. */
  refused?: string | undefined
}

export interface TopicsViewProps {
  filter: string
  onFilterChange: (filter: string) => void
  retained: Listing<RetainedRow>
  topic: string
  onTopicChange: (topic: string) => void
  subscribers: Listing<SubscriberRow>
  onCapture: (capturing: boolean) => void
  /** False while an overlay (help) has the keyboard. */
  active?: boolean
  width: number
  height: number
}

type Editing = 'filter' | 'topic' | undefined

/** The retained filter when none is set: every topic (but $ ones, per MQTT). */
export const ALL = '#'

const SORT: Array<SortColumn<RetainedRow>> = [
  { title: 'RETAINED TOPIC', value: (r) => r.topic },
  { title: 'QOS', value: (r) => r.qos },
  { title: 'BYTES', value: (r) => r.payload.length },
  { title: 'HELD BY', value: (r) => r.nodes.length }
]

export function TopicsView ({ active = true, filter, onFilterChange, retained, topic, onTopicChange, subscribers, onCapture, width, height }: TopicsViewProps) {
  const [editing, setEditing, getEditing] = useKeyState<Editing>(undefined)
  const [draft, setDraft, getDraft] = useKeyState('')
  const [selected, setSelected, getSelected] = useKeyState(0)
  const [sort, setSort, getSort] = useKeyState<SortState>(UNSORTED)
  const [mode, setMode] = useState<PreviewMode>('auto')
  const rows = sortRows(retained.rows ?? [], SORT, sort)
  const index = Math.min(selected, Math.max(0, rows.length - 1))
  const current = rows[index]

  // The key state as it is now (clients-view.tsx says why).
  useEffect(() => { onCapture(getEditing() !== undefined) }, [editing, onCapture, getEditing])
  useEffect(() => () => onCapture(false), [onCapture])

  useViewKeys((input, key) => {
    const field = getEditing()
    if (field !== undefined) {
      // As in Clients: Enter keeps what was typed, Esc clears. A cleared retained
      // filter is # (everything); a cleared subscribers topic asks nothing.
      if (key.return) {
        const value = getDraft().trim()
        if (field === 'filter') { onFilterChange(value === '' ? ALL : value); setSelected(0) } else onTopicChange(value)
        setEditing(undefined)
      } else if (key.escape) {
        if (field === 'filter') { onFilterChange(ALL); setSelected(0) } else onTopicChange('')
        setEditing(undefined)
      } else if (key.backspace || key.delete) setDraft((d) => d.slice(0, -1))
      else if (input !== '' && !key.ctrl && !key.meta && !key.upArrow && !key.downArrow && !key.tab) setDraft((d) => d + input)
      onCapture(getEditing() !== undefined)
      return
    }
    const shown = sortRows(retained.rows ?? [], SORT, getSort())
    const at = Math.min(getSelected(), Math.max(0, shown.length - 1))
    const moved = listMove(input, key, at, shown.length)
    const sorted = nextSort(getSort(), SORT.length, input)
    if (moved !== undefined) setSelected(moved)
    else if (sorted !== undefined) setSort(sorted)
    // Typing starts a fresh value: the default # is not something to append to.
    else if (input === '/') { setDraft(''); setEditing('filter') } else if (input === 's') { setDraft(''); setEditing('topic') } else if (input === 'v') setMode((m) => PREVIEW_MODES[(PREVIEW_MODES.indexOf(m) + 1) % PREVIEW_MODES.length]!)
    else if (key.escape) {
      // Back to the defaults: every retained topic, and no refused subscribers topic left on screen.
      onFilterChange(ALL)
      setSelected(0)
      if (subscribers.refused !== undefined) onTopicChange('')
    }
    else if (key.return && shown[at] !== undefined) onTopicChange(shown[at].topic)
    onCapture(getEditing() !== undefined)
  }, { isActive: active })

  const heldBy = (r: RetainedRow): string => `${plural(r.nodes.length, 'node')}${r.differs ? ' (differ!)' : ''}`
  const retainedColumns = layoutColumns([
    { title: sortedTitle('RETAINED TOPIC', 0, sort), width: 0, content: contentWidth('RETAINED TOPIC', rows.map((r) => r.topic)) },
    { title: sortedTitle('QOS', 1, sort), width: 4, align: 'right' },
    { title: sortedTitle('BYTES', 2, sort), width: 8, align: 'right' },
    { title: sortedTitle('HELD BY', 3, sort), width: 0, content: contentWidth('HELD BY', rows.map(heldBy)) }
  ], width - 2)
  const subRows = subscribers.rows ?? []
  const subColumns = layoutColumns([
    { title: 'SUBSCRIBER', width: 0, content: contentWidth('SUBSCRIBER', subRows.map((r) => r.clientId)) },
    { title: 'NODE', width: 0, content: contentWidth('NODE', subRows.map((r) => r.node)) },
    { title: 'FILTER', width: 0, content: contentWidth('FILTER', subRows.map((r) => r.filter)) },
    { title: 'QOS', width: 3, align: 'right' }
  ], width, 4)
  const previewLines = Math.max(2, Math.min(8, Math.floor((height - 8) / 3)))
  const subRoom = Math.max(1, Math.min((subscribers.rows?.length ?? 0) || 1, Math.floor((height - 8) / 3)))
  const retainedRoom = Math.max(1, height - previewLines - subRoom - 7)
  const start = windowStart(rows.length, index, retainedRoom)
  const preview = current === undefined ? undefined : previewPayload(current.payload, mode, previewLines)
  const editLine = (which: Editing, label: string, value: string, empty: string) => editing === which
    ? <Text color='cyan'>{`${label}: ${draft}█`}<Text dimColor>{draft === '' ? `  (Enter: ${empty}, Esc: clear)` : ''}</Text></Text>
    : <Text>{`${label}: `}<Text bold>{value}</Text></Text>
  const failedNote = (l: Listing<unknown>, clear: string) => {
    if (l.refused !== undefined) return <Text color='red' wrap='truncate'>{`✖ ${l.refused} (Esc: ${clear})`}</Text>
    if (l.error !== undefined) return <Text color='red' wrap='truncate'>{l.error}</Text>
    const failed = Object.entries(l.failures)
    return failed.length === 0 ? null : <Text color='yellow' wrap='truncate'>{`no answer from ${failed.map(([n, e]) => `${n} (${e})`).join(', ')}`}</Text>
  }
  return (
    <Box flexDirection='column'>
      <Text wrap='truncate'>{editLine('filter', 'retained filter (/)', filter, `${ALL}, every topic`)}<Text dimColor>{`   ${plural(rows.length, 'topic')}`}</Text></Text>
      {failedNote(retained, `back to ${ALL}`)}
      <Text bold>{`  ${formatCells(retainedColumns.map((c) => c.title), retainedColumns)}`}</Text>
      {retained.rows === undefined && retained.error === undefined && retained.refused === undefined && <Text dimColor>loading…</Text>}
      {retained.rows !== undefined && rows.length === 0 && <Text dimColor>no retained message matches</Text>}
      {rows.slice(start, start + retainedRoom).map((r, i) => (
        <Text key={r.topic} inverse={start + i === index} wrap='truncate'>
          {`${start + i === index ? '›' : ' '} `}{formatCells([r.topic, String(r.qos), String(r.payload.length), heldBy(r)], retainedColumns)}
        </Text>
      ))}
      <Text dimColor wrap='truncate'>{preview === undefined ? '' : fit(`── payload of ${current!.topic} as ${preview.mode} (v: ${mode}) `, width).replace(/ +$/, (s) => '─'.repeat(s.length))}</Text>
      {preview?.lines.map((l, i) => <Text key={i} wrap='truncate'>{l === '' ? ' ' : l}</Text>)}
      <Text> </Text>
      <Text wrap='truncate'>
        {editLine('topic', 'subscribers of (s)', topic, 'none')}
        <Text dimColor>{topic === '' && editing !== 'topic' ? 'no topic: s to type one, Enter for the selected' : `   ${plural(subscribers.rows?.length ?? 0, 'subscription')}`}</Text>
      </Text>
      {failedNote(subscribers, 'clear')}
      <Text bold>{formatCells(subColumns.map((c) => c.title), subColumns)}</Text>
      {subscribers.rows !== undefined && subscribers.rows.length === 0 && <Text dimColor>nobody would receive a message on this topic</Text>}
      {(subscribers.rows ?? []).slice(0, subRoom).map((s) => (
        <Text key={`${s.node}/${s.clientId}/${s.filter}`} wrap='truncate'>{formatCells([s.clientId, s.node, s.filter, String(s.qos)], subColumns)}</Text>
      ))}
    </Box>
  )
}
