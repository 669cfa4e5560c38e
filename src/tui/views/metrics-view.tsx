// Metrics: key figures per member from its /metrics, with message rates and
// sparklines of the last scrapes.
import { Box, Text } from 'ink'
import type { MemberRow } from '../cluster-model.js'
import { latest, rates, type MetricsHistory } from '../node-metrics.js'
import { sparkline } from '../sparkline.js'
import { formatBytes, formatDuration, formatNumber } from '../text-layout.js'

export interface MetricsViewProps {
  members: MemberRow[] | undefined
  history: MetricsHistory
  width: number
  height: number
}

export function MetricsView ({ members, history, width, height }: MetricsViewProps) {
  if (members === undefined) return <Text dimColor>waiting for the member list…</Text>
  const shown = members.filter((m) => m.state === 'alive' || m.state === 'suspect' || history[m.name] !== undefined)
  const perNode = Math.max(3, Math.floor(height / Math.max(1, shown.length)))
  const spark = Math.max(8, Math.floor((width - 40) / 2))
  return (
    <Box flexDirection='column'>
      {shown.slice(0, Math.max(1, Math.floor(height / 3))).map((m) => {
        const series = history[m.name]
        const snap = latest(series)
        const recv = rates(series?.snapshots ?? [], 'recv')
        const sent = rates(series?.snapshots ?? [], 'sent')
        const gone = m.state !== 'alive' && m.state !== 'suspect'
        return (
          <Box key={m.name} flexDirection='column' height={Math.min(perNode, 4)}>
            <Text wrap='truncate'>
              <Text bold>{m.name}</Text>
              {m.state !== 'alive' && <Text color={m.state === 'suspect' ? 'yellow' : 'red'}>{` [${m.state}]`}</Text>}
              <Text dimColor>{`  up ${formatDuration(snap?.uptime)}  rss ${formatBytes(snap?.rss)}  health ${formatNumber(snap?.health)}${configText(snap)}`}</Text>
            </Text>
            {!gone && series?.error !== undefined && <Text color='red' wrap='truncate'>{`  metrics unavailable: ${series.error}`}</Text>}
            {gone && <Text dimColor wrap='truncate'>{`  not scraped while ${m.state}; last figures:`}</Text>}
            {snap === undefined && series?.error === undefined && <Text dimColor>  scraping…</Text>}
            {snap !== undefined && (gone ? <Text dimColor wrap='truncate'>{`  clients ${formatNumber(snap.clients)}  subs ${formatNumber(snap.subscriptions)}  retained ${formatNumber(snap.retained)}  at ${new Date(snap.at).toISOString().slice(11, 19)}`}</Text> : (
              <>
                <Text wrap='truncate'>{`  clients ${formatNumber(snap.clients)}  subs ${formatNumber(snap.subscriptions)}  retained ${formatNumber(snap.retained)}  inflight ${formatNumber(snap.inflight)}  dropped ${formatNumber(snap.dropped)}`}</Text>
                <Text wrap='truncate'>
                  {`  in ${formatNumber(recv.at(-1), 1).padStart(7)}/s `}<Text color='cyan'>{sparkline(recv, spark)}</Text>
                  {`  out ${formatNumber(sent.at(-1), 1).padStart(7)}/s `}<Text color='magenta'>{sparkline(sent, spark)}</Text>
                </Text>
              </>
            ))}
          </Box>
        )
      })}
    </Box>
  )
}

/** `  config 3f2a9c0d11be since 14:02:11`: which config the node runs, and since when (UTC). */
function configText (snap: { configVersion?: string | undefined, configLoadedAt?: number | undefined } | undefined): string {
  if (snap?.configVersion === undefined) return ''
  const since = snap.configLoadedAt === undefined ? '' : ` since ${new Date(snap.configLoadedAt * 1000).toISOString().slice(11, 19)}`
  return `  config ${snap.configVersion}${since}`
}
