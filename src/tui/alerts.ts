// What the Overview warns about: members that are not alive and a cluster
// smaller than expected. The expected size is the operator's --expect, or
// else the largest number of alive members this session has seen, so a
// member that dies and is reaped from the list is still noticed.
import type { MemberRow } from './cluster-model.js'

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
