// Rendering a bench run: the live progress line, the final table and the
// JSON document (the same figures, machine-readable).
import type { BenchProgress, BenchResult } from './run.js'

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const ms = (n: number): string => `${n.toFixed(2)} ms`

export function progressLine (p: BenchProgress): string {
  const t = `${(p.elapsedMs / 1000).toFixed(1)}s`
  if (p.phase === 'connecting') return `${t} connecting: ${int(p.connected)} ready`
  return `${t} ${p.phase}: sent ${int(p.sent)} received ${int(p.received)} (${int(p.rate)} msg/s)${p.duplicates > 0 ? ` duplicates ${int(p.duplicates)}` : ''}`
}

export function formatTable (r: BenchResult): string {
  const o = r.options
  const rows: Array<[string, string]> = [
    ['brokers', [...new Set([...o.urls, ...(o.publisherUrls ?? []), ...(o.subscriberUrls ?? [])])].join(', ')],
    ['load', `${o.publishers} pub -> ${o.subscribers} sub, ${o.pattern}${o.wildcard ? ' (wildcard)' : ''}, QoS ${o.qos}, ${o.size} B, MQTT ${o.protocolVersion === 5 ? '5.0' : '3.1.1'}, ${o.rate > 0 ? `${o.rate} msg/s per publisher` : 'unthrottled'}`],
    ['connections', `${int(r.connections)} at ${int(r.connectRate)} conn/s`],
    ['sent', `${int(r.sent)} (${int(r.sendRate)} msg/s)`],
    ['expected', int(r.expected)],
    ['received', `${int(r.received)} (${int(r.receiveRate)} msg/s over ${r.publishSeconds.toFixed(2)} s)`],
    ['lost', `${int(r.lost)}${r.expected > 0 ? ` (${(100 * r.lost / r.expected).toFixed(3)}%)` : ''}`],
    ['duplicated', int(r.duplicated)],
    ['latency', `p50 ${ms(r.latency.p50)}  p90 ${ms(r.latency.p90)}  p99 ${ms(r.latency.p99)}  max ${ms(r.latency.max)}`],
    ...(o.qos > 0 ? [['ack latency', `p50 ${ms(r.ackLatency.p50)}  p99 ${ms(r.ackLatency.p99)}  max ${ms(r.ackLatency.max)} (publish to ${o.qos === 1 ? 'PUBACK' : 'PUBCOMP'})`] as [string, string]] : []),
    ['generator', `${r.generator.workers} workers, event loop busy ${(100 * r.generator.maxEventLoopUtilization).toFixed(0)}%, delay p99 ${ms(r.generator.maxEventLoopDelayP99Ms)}`]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`)
  if (r.generator.saturated) lines.push('WARNING: the load generator itself was saturated (a worker\'s event loop was near 100% busy or lagging): these figures are a floor for the broker. Add --workers or lower the load.')
  return lines.join('\n') + '\n'
}

export function jsonReport (r: BenchResult): string {
  return JSON.stringify(r, null, 2) + '\n'
}
