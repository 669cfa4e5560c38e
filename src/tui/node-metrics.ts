// Per-node figures for the Overview and Metrics views, from /metrics scrapes.
// Counters become rates by differencing successive scrapes; a history of the
// last scrapes feeds the sparklines. Pure: the caller supplies the time.
import { metricSum, parsePrometheusText } from './prometheus-text.js'

export interface NodeSnapshot {
  /** ms since the epoch of the scrape. */
  at: number
  clients?: number | undefined
  members?: number | undefined
  health?: number | undefined
  retained?: number | undefined
  subscriptions?: number | undefined
  inflight?: number | undefined
  uptime?: number | undefined
  recv?: number | undefined
  sent?: number | undefined
  dropped?: number | undefined
  busDropped?: number | undefined
  rss?: number | undefined
  /** Probes this node got answered over TCP only (UDP between it and a member blocked). */
  tcpAcks?: number | undefined
  /** The config in force (broker_config_info's version label) and when it was loaded (unix seconds). */
  configVersion?: string | undefined
  configLoadedAt?: number | undefined
}

export function snapshotFromMetrics (text: string, at: number): NodeSnapshot {
  const s = parsePrometheusText(text)
  return {
    at,
    clients: metricSum(s, 'broker_clients_connected'),
    members: metricSum(s, 'broker_cluster_members'),
    health: metricSum(s, 'broker_cluster_member_health'),
    retained: metricSum(s, 'broker_retained_messages'),
    subscriptions: metricSum(s, 'broker_subscriptions'),
    inflight: metricSum(s, 'broker_inflight_messages'),
    uptime: metricSum(s, 'broker_uptime'),
    recv: metricSum(s, 'broker_messages_recv'),
    sent: metricSum(s, 'broker_messages_sent'),
    dropped: metricSum(s, 'broker_messages_dropped'),
    busDropped: metricSum(s, 'broker_bus_dropped_total'),
    rss: metricSum(s, 'process_resident_memory_bytes'),
    tcpAcks: metricSum(s, 'broker_cluster_probes_total', { name: 'result', value: 'tcp-ack' }),
    configVersion: s.find((x) => x.name === 'broker_config_info')?.labels.version,
    configLoadedAt: metricSum(s, 'broker_config_loaded_timestamp_seconds')
  }
}

export interface NodeSeries {
  snapshots: NodeSnapshot[]
  /** The last scrape's error, cleared by the next success. */
  error?: string | undefined
}

export type MetricsHistory = Record<string, NodeSeries>

/** Enough for a sparkline across a wide terminal's column. */
export const HISTORY_LENGTH = 60

export function recordSnapshot (history: MetricsHistory, node: string, snapshot: NodeSnapshot, limit = HISTORY_LENGTH): MetricsHistory {
  const previous = history[node]?.snapshots ?? []
  return { ...history, [node]: { snapshots: [...previous, snapshot].slice(-limit) } }
}

export function recordFailure (history: MetricsHistory, node: string, error: string): MetricsHistory {
  return { ...history, [node]: { snapshots: history[node]?.snapshots ?? [], error } }
}

type CounterKey = 'recv' | 'sent' | 'dropped'

/**
 * Per-second rates of a counter between successive snapshots. A counter that
 * went down means the node restarted: that interval has no rate rather than a
 * negative one.
 */
export function rates (snapshots: NodeSnapshot[], key: CounterKey): number[] {
  const out: number[] = []
  for (let i = 1; i < snapshots.length; i++) {
    const a = snapshots[i - 1]!
    const b = snapshots[i]!
    const va = a[key]
    const vb = b[key]
    const seconds = (b.at - a.at) / 1000
    if (va === undefined || vb === undefined || seconds <= 0 || vb < va) continue
    out.push((vb - va) / seconds)
  }
  return out
}

export function latest (series: NodeSeries | undefined): NodeSnapshot | undefined {
  return series?.snapshots[series.snapshots.length - 1]
}
