// What the Overview warns about: members that are not alive, a cluster
// smaller than expected, and nodes whose probes get through over TCP only.
// The expected size is the operator's --expect, or else the largest number
// of alive members this session has seen, so a member that dies and is
// reaped from the list is still noticed.
import type { MemberRow } from './cluster-model.js'
import type { MetricsHistory } from './node-metrics.js'

export interface Alert { level: 'warn' | 'error', text: string }

/**
 * `unanswered`: members the entry's /proxy could not reach, with why; a
 * member can be alive in the membership and still not answer its API.
 */
export function clusterAlerts (members: MemberRow[], expected: number | undefined, maxSeenAlive: number, unanswered: Record<string, string> = {}): Alert[] {
  const alerts: Alert[] = []
  for (const m of members) {
    if (m.state === 'suspect') alerts.push({ level: 'warn', text: `${m.name} is suspect (probes failing)` })
    if (m.state === 'dead') alerts.push({ level: 'error', text: `${m.name} is dead` })
    const why = unanswered[m.name]
    if (why !== undefined && m.state !== 'dead') alerts.push({ level: 'warn', text: `${m.name} does not answer: ${why}` })
  }
  const alive = members.filter((m) => m.state === 'alive').length
  const want = expected ?? maxSeenAlive
  if (alive < want) {
    alerts.push({ level: 'error', text: `cluster has ${alive} alive member${alive === 1 ? '' : 's'}, ${expected === undefined ? 'had' : 'expected'} ${want}` })
  }
  return alerts
}

/** Probes answered over TCP only within the last scrapes that make the alert: one can be a stall, several are a network. */
const TCP_ONLY_ALERT = { probes: 3, scrapes: 15 }

/**
 * Nodes with several probes answered over TCP only over their last scrapes:
 * UDP on the cluster port is blocked between them and a member. Nobody is
 * declared dead for it (the TCP fallback probe), but gossip gets through
 * only on those probes, which the log says once a minute and this at once.
 */
export function udpBlockedAlerts (history: MetricsHistory): Alert[] {
  const alerts: Alert[] = []
  for (const [node, series] of Object.entries(history)) {
    const recent = series.snapshots.slice(-TCP_ONLY_ALERT.scrapes)
    const first = recent[0]?.tcpAcks
    const last = recent.at(-1)?.tcpAcks
    // A node restarted within the window has a counter that went down: no judgement until it grows past the window.
    if (first === undefined || last === undefined || last - first < TCP_ONLY_ALERT.probes) continue
    alerts.push({ level: 'warn', text: `${node}: probes answered over TCP only (UDP on the cluster port blocked; open it)` })
  }
  return alerts
}
