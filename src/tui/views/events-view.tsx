// Events: the live bus events of the chosen members (/api/sse), newest at the
// bottom, pausable and filterable by text and channel.
import { useEffect } from 'react'
import { useKeyState } from '../hooks/use-key-state.js'
import { useViewKeys } from '../hooks/use-keys.js'
import { Box, Text } from 'ink'
import type { LiveEvent } from '../hooks/use-events.js'
import { fit } from '../text-layout.js'
import { previewPayload } from '../payload-preview.js'

export interface EventsViewProps {
  events: LiveEvent[]
  held: number
  errors: Record<string, string>
  paused: boolean
  /** Which members are followed, as a label ("all members" or a name). */
  nodesLabel: string
  /** Channel shown, undefined for all. */
  channel: string | undefined
  onTogglePause: () => void
  onCycleNodes: () => void
  onCycleChannel: () => void
  onClear: () => void
  onCapture: (capturing: boolean) => void
  /** False while an overlay (help) has the keyboard. */
  active?: boolean
  width: number
  height: number
}

function summary (data: unknown): string {
  if (typeof data === 'string') return data
  const o = data as Record<string, unknown> | null
  if (o !== null && typeof o === 'object' && typeof o.Topic === 'string') {
    const bytes = typeof o.Payload === 'string' ? Buffer.from(o.Payload, 'base64') : Buffer.alloc(0)
    const payload = previewPayload(bytes, 'auto', 1).mode === 'hex' ? `hex:${bytes.subarray(0, 16).toString('hex')}` : previewPayload(bytes, 'text', 4).lines.join(' ')
    return `${o.Topic} q${String(o.Qos ?? 0)}${o.Retain === true ? ' retain' : ''} ${payload}`
  }
  return JSON.stringify(data)
}

export function eventLine (e: LiveEvent): string {
  const time = new Date(e.at).toISOString().slice(11, 19)
  return `${time} ${e.node} ${e.event} ${summary(e.data)}`
}

export function EventsView ({ active = true, events, held, errors, paused, nodesLabel, channel, onTogglePause, onCycleNodes, onCycleChannel, onClear, onCapture, width, height }: EventsViewProps) {
  const [filter, setFilter] = useKeyState('')
  const [typing, setTyping, getTyping] = useKeyState(false)
  // The key state as it is now (clients-view.tsx says why).
  useEffect(() => { onCapture(getTyping()) }, [typing, onCapture, getTyping])
  useEffect(() => () => onCapture(false), [onCapture])
  useViewKeys((input, key) => {
    if (getTyping()) {
      if (key.return) setTyping(false)
      else if (key.escape) { setTyping(false); setFilter('') } else if (key.backspace || key.delete) setFilter((f) => f.slice(0, -1))
      else if (input !== '' && !key.ctrl && !key.meta) setFilter((f) => f + input)
      onCapture(getTyping())
      return
    }
    if (input === '/') { setTyping(true); onCapture(true) }
    else if (input === ' ' || input === 'p') onTogglePause()
    else if (input === 'n') onCycleNodes()
    else if (input === 'f') onCycleChannel()
    else if (input === 'c') onClear()
    else if (key.escape) setFilter('')
  }, { isActive: active })
  const needle = filter.toLowerCase()
  const lines = events
    .filter((e) => channel === undefined || e.event === channel)
    .map(eventLine)
    .filter((l) => needle === '' || l.toLowerCase().includes(needle))
  const failed = Object.entries(errors)
  const room = Math.max(1, height - 2 - failed.length)
  return (
    <Box flexDirection='column'>
      <Text wrap='truncate'>
        <Text color={paused ? 'yellow' : 'green'}>{paused ? `PAUSED (${held} new)` : 'LIVE'}</Text>
        {`  members: ${nodesLabel}  channel: ${channel?.replace(/^cluster:/, '') ?? 'all'}  `}
        <Text color={typing ? 'cyan' : undefined} dimColor={!typing && filter === ''}>{typing ? `filter: ${filter}█` : filter === '' ? 'no filter' : `filter: ${filter}`}</Text>
      </Text>
      {failed.map(([node, error]) => <Text key={node} color='yellow' wrap='truncate'>{`${node}: ${error}`}</Text>)}
      {lines.length === 0 && <Text dimColor>{events.length === 0 ? 'waiting for events…' : 'no event matches the filter'}</Text>}
      {lines.slice(-room).map((l, i) => <Text key={i} wrap='truncate'>{fit(l, width)}</Text>)}
    </Box>
  )
}
