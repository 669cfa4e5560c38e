// Command-line values of `broker-ha chaos`, parsed and checked without side
// effects; anything wrong is a USAGE error (exit status 2).
import { BrokerHaError } from '../errors.js'
import { didYouMean } from '../did-you-mean.js'
import { FAULT_KINDS, NAMED_FAULT_KINDS, TWO_SIDED, type FaultKind } from './schedule.js'
import { MERGE_TIMINGS, type MergeTiming } from './cluster-config.js'

export const MAX_NODES = 20

/** "60s", "10m", "1500ms", "90" (seconds) -> ms. */
export function parseDuration (text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) throw new BrokerHaError('USAGE', `--duration: "${text}" is not a duration (e.g. 60s, 10m, 1500ms)`, { key: '--duration' })
  const unit = m[2] ?? 's'
  const ms = Number(m[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000)
  if (ms < 5000) throw new BrokerHaError('USAGE', `--duration: at least 5s, got ${text}`, { key: '--duration' })
  return Math.round(ms)
}

export function parseFaults (text: string): FaultKind[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (items.length === 1 && items[0] === 'all') return [...FAULT_KINDS]
  if (items.length === 1 && items[0] === 'none') return []
  const known: readonly string[] = [...FAULT_KINDS, ...NAMED_FAULT_KINDS]
  const bad = items.filter((s) => !known.includes(s))
  if (bad.length > 0) throw new BrokerHaError('USAGE', `--faults: unknown ${bad.join(', ')} (known: ${known.join(', ')}, all, none)${didYouMean(bad[0]!, [...known, 'all', 'none'])}`, { key: '--faults' })
  return [...new Set(items)] as FaultKind[]
}

export function parseNodes (text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > MAX_NODES) throw new BrokerHaError('USAGE', `--nodes: a whole number from 1 to ${MAX_NODES}, got ${text}`, { key: '--nodes' })
  return n
}

export function parseSeed (text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0 || n > 0xFFFFFFFF) throw new BrokerHaError('USAGE', `--seed: a whole number from 0 to 4294967295, got ${text}`, { key: '--seed' })
  return n
}

/** Partitions and link, gossip and UDP cuts need two sides. */
export function checkFaultsForNodes (faults: readonly FaultKind[], nodes: number): void {
  const needTwo = faults.filter((f) => TWO_SIDED.includes(f))
  if (nodes < 2 && needTwo.length > 0) throw new BrokerHaError('USAGE', `--faults ${needTwo.join(',')} need at least 2 nodes`, { key: '--faults' })
}

export const NETWORK_MODES = ['loopback', 'netns', 'auto'] as const
export type NetworkMode = typeof NETWORK_MODES[number]

/** `--network`: loopback (in-process fault hook), netns (real partitions; root on Linux) or auto (netns where possible). */
export function parseNetwork (text: string): NetworkMode {
  const mode = text.trim()
  if (!(NETWORK_MODES as readonly string[]).includes(mode)) throw new BrokerHaError('USAGE', `--network: ${NETWORK_MODES.join(', ')}; got ${text}${didYouMean(mode, NETWORK_MODES)}`, { key: '--network' })
  return mode as NetworkMode
}

/** `--merge-timing`: fast (a small local cluster's re-resolution and push/pull) or default (the serve defaults). */
export function parseMergeTiming (text: string): MergeTiming {
  const timing = text.trim()
  if (!(MERGE_TIMINGS as readonly string[]).includes(timing)) throw new BrokerHaError('USAGE', `--merge-timing: ${MERGE_TIMINGS.join(', ')}; got ${text}${didYouMean(timing, MERGE_TIMINGS)}`, { key: '--merge-timing' })
  return timing as MergeTiming
}
