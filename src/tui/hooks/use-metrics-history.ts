// Scrapes every reachable member's /metrics at an interval into a bounded
// history (for rates and sparklines). A member that fails keeps its history
// and shows its error; dead and left members are not asked.
import { useEffect, useRef, useState } from 'react'
import type { ClusterSource } from '../cluster-source.js'
import { describeError } from '../cluster-source.js'
import type { MemberRow } from '../cluster-model.js'
import { recordFailure, recordSnapshot, snapshotFromMetrics, type MetricsHistory } from '../node-metrics.js'

export function useMetricsHistory (source: ClusterSource, members: MemberRow[] | undefined, intervalMs: number): MetricsHistory {
  const [history, setHistory] = useState<MetricsHistory>({})
  const membersRef = useRef(members)
  membersRef.current = members
  useEffect(() => {
    let stopped = false
    let timer: NodeJS.Timeout | undefined
    const scrape = async (): Promise<void> => {
      const targets = (membersRef.current ?? []).filter((m) => m.state === 'alive' || m.state === 'suspect')
      await Promise.all(targets.map(async (m) => {
        if (m.apiUrl === undefined) {
          setHistory((h) => recordFailure(h, m.name, 'no API address in member metadata'))
          return
        }
        try {
          const text = await source.metrics(m.apiUrl)
          if (!stopped) setHistory((h) => recordSnapshot(h, m.name, snapshotFromMetrics(text, Date.now())))
        } catch (err) {
          if (!stopped) setHistory((h) => recordFailure(h, m.name, describeError(err, m.apiUrl)))
        }
      }))
      if (!stopped) timer = setTimeout(() => { void scrape() }, intervalMs)
    }
    // The first scrape waits for the member list; later ones follow the interval.
    timer = setTimeout(() => { void scrape() }, membersRef.current === undefined ? Math.min(intervalMs, 300) : 0)
    return () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
    }
  }, [source, intervalMs])
  return history
}
