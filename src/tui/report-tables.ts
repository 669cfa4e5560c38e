// Output of the scriptable admin subcommands: aligned text tables for people
// (like kubectl), stable JSON for machines. Pure.
import type { ClientRow, MemberRow, RetainedRow, SubscriberRow } from './cluster-model.js'
import { previewPayload } from './payload-preview.js'
import type { KickOutcome } from './kick.js'

export function textTable (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}

/** An instant as people read it in a table (UTC, like the logs), '-' when unknown. */
export function isoSeconds (unixSeconds: number | undefined): string {
  return unixSeconds === undefined ? '-' : new Date(unixSeconds * 1000).toISOString().replace('.000Z', 'Z')
}

export function membersTable (rows: MemberRow[], wide = false): string {
  const header = ['NAME', 'STATE', 'ADDRESS', 'API', ...(wide ? ['MQTT'] : []), 'VERSION']
  return textTable(header, rows.map((m) => [m.name, m.state, `${m.addr}:${m.port}`, m.apiUrl ?? '-', ...(wide ? [m.mqttPort === undefined ? '-' : `${m.addr.includes(':') ? `[${m.addr}]` : m.addr}:${m.mqttPort}`] : []), m.version || '-']))
}

export function membersJson (rows: MemberRow[]): unknown {
  return rows.map((m) => ({ name: m.name, state: m.state, addr: m.addr, port: m.port, api: m.apiUrl ?? null, mqtt_port: m.mqttPort ?? null, version: m.version }))
}

export function clientsTable (rows: ClientRow[], wide = false): string {
  const header = ['CLIENT ID', 'NODE', 'USER', 'MQTT', 'CLEAN', ...(wide ? ['ADDRESS', 'CONNECTED', 'KEEPALIVE'] : []), 'SUBSCRIPTIONS']
  return textTable(header, rows.map((c) => [
    c.id, c.node, c.username || '-', c.protocol, c.cleanSession ? 'yes' : 'no',
    ...(wide ? [c.remote ?? '-', isoSeconds(c.connectedAt), c.keepAlive === undefined ? '-' : `${c.keepAlive}s`] : []),
    // Wide: with the QoS granted, as mosquitto_sub -v people read filters.
    (wide ? c.filters.map((f, i) => `${f}:q${c.subscriptions[i]?.Qos ?? '?'}`) : c.filters).join(',') || '-'
  ]))
}

export function clientsJson (rows: ClientRow[], unreachable: Record<string, string>): unknown {
  return {
    clients: rows.map((c) => ({
      id: c.id,
      node: c.node,
      username: c.username,
      protocol: c.protocol,
      clean_session: c.cleanSession,
      subscriptions: c.filters,
      remote: c.remote ?? null,
      connected_at: c.connectedAt === undefined ? null : isoSeconds(c.connectedAt),
      keep_alive: c.keepAlive ?? null
    })),
    unreachable
  }
}

function oneLine (payload: Buffer, max: number): string {
  const p = previewPayload(payload, 'auto', 1)
  const text = p.mode === 'json' ? JSON.stringify(JSON.parse(payload.toString('utf8'))) : p.mode === 'text' ? p.lines[0] ?? '' : `hex:${payload.subarray(0, Math.ceil(max / 2)).toString('hex')}`
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

export function retainedTable (rows: RetainedRow[], wide = false): string {
  // Wide: which members hold each topic, and more of the payload.
  return textTable(['TOPIC', 'QOS', 'BYTES', 'NODES', 'PAYLOAD'], rows.map((r) => [
    r.topic, String(r.qos), String(r.payload.length),
    `${wide ? r.nodes.join(',') : r.nodes.length}${r.differs ? ' (differ)' : ''}`,
    oneLine(r.payload, wide ? 200 : 60)
  ]))
}

export function retainedJson (rows: RetainedRow[], unreachable: Record<string, string>): unknown {
  return {
    retained: rows.map((r) => ({ topic: r.topic, qos: r.qos, payload: r.payload.toString('base64'), nodes: r.nodes, differs: r.differs, properties: r.properties })),
    unreachable
  }
}

/** No wider form: every field is already a column. */
export function subscribersTable (rows: SubscriberRow[]): string {
  return textTable(['CLIENT ID', 'NODE', 'FILTER', 'QOS', 'GROUP'], rows.map((s) => [s.clientId, s.node, s.filter, String(s.qos), s.group || '-']))
}

export function subscribersJson (rows: SubscriberRow[], unreachable: Record<string, string>): unknown {
  return { subscribers: rows.map((s) => ({ client_id: s.clientId, node: s.node, filter: s.filter, qos: s.qos, group: s.group === '' ? null : s.group })), unreachable }
}

export function kickText (o: KickOutcome): string {
  const lines: string[] = []
  for (const node of o.stopped) lines.push(`${o.clientId} disconnected from ${node}`)
  for (const [node, why] of Object.entries(o.failed)) lines.push(`${o.clientId} on ${node}: not disconnected: ${why}`)
  if (o.stopped.length === 0 && Object.keys(o.failed).length === 0) lines.push(`${o.clientId} is not connected to any member that answered`)
  return lines.join('\n') + '\n'
}

export function kickJson (o: KickOutcome): unknown {
  return { client_id: o.clientId, stopped: o.stopped, failed: o.failed, unreachable: o.unreachable }
}
