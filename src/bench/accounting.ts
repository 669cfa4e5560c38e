// The load generator's bookkeeping, pure so its numbers can be checked:
// which (publisher, sequence) each subscriber has seen (duplicates), how many
// deliveries were owed (lost = owed - distinct seen), and latency samples from
// the send timestamp carried in each payload.
import { topicMatches } from '../topic-filter.js'

/**
 * Payload header every bench message starts with (16 bytes, then padding up
 * to --size): publisher index (u32), sequence number (u32), send time in ms
 * since the epoch with sub-millisecond precision (f64, performance.timeOrigin
 * + performance.now(), comparable across threads and processes on one host).
 */
export const HEADER_BYTES = 16

export function writeHeader (buf: Buffer, offset: number, publisher: number, seq: number, sentAt: number): void {
  buf.writeUInt32BE(publisher, offset)
  buf.writeUInt32BE(seq, offset + 4)
  buf.writeDoubleBE(sentAt, offset + 8)
}

export interface Header { publisher: number, seq: number, sentAt: number }

export function readHeader (buf: Buffer, offset = 0): Header | undefined {
  if (buf.length - offset < HEADER_BYTES) return undefined
  return { publisher: buf.readUInt32BE(offset), seq: buf.readUInt32BE(offset + 4), sentAt: buf.readDoubleBE(offset + 8) }
}

/** A growable bit set of the sequence numbers one subscriber saw from one publisher. */
class SeqSet {
  private bits = new Uint8Array(128)
  /** Marks seq; true if it was new. */
  add (seq: number): boolean {
    const byte = seq >>> 3
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2))
      grown.set(this.bits)
      this.bits = grown
    }
    const mask = 1 << (seq & 7)
    if ((this.bits[byte]! & mask) !== 0) return false
    this.bits[byte] = this.bits[byte]! | mask
    return true
  }
}

/**
 * Latency samples, bounded: the first `capacity` are kept, after that
 * reservoir sampling (deterministic LCG) keeps a uniform sample, so a long run
 * neither grows memory nor biases percentiles toward its start. max and count
 * are exact.
 */
export class LatencySamples {
  readonly capacity: number
  samples: number[] = []
  count = 0
  max = 0
  private seed = 0x2545F491

  constructor (capacity = 100_000) { this.capacity = capacity }

  add (ms: number): void {
    this.count++
    if (ms > this.max) this.max = ms
    if (this.samples.length < this.capacity) { this.samples.push(ms); return }
    this.seed = (Math.imul(this.seed, 1664525) + 1013904223) >>> 0
    const j = this.seed % this.count
    if (j < this.capacity) this.samples[j] = ms
  }
}

/** What one subscriber side (a worker) reports: mergeable across workers. */
export interface ReceiveTally {
  /** Distinct (subscriber, publisher, seq) deliveries. */
  unique: number
  duplicates: number
  /** Bench-shaped messages whose header was unreadable (too short). */
  foreign: number
  latencyMs: number[]
  latencyCount: number
  latencyMax: number
  /** Arrival time of the last new delivery (timeOrigin clock, ms); 0 when none. */
  lastAt: number
}

/** Receipts of the subscribers in one worker. */
export class ReceiveLedger {
  private readonly seen = new Map<number, Map<number, SeqSet>>()
  readonly latency: LatencySamples
  unique = 0
  duplicates = 0
  foreign = 0
  lastAt = 0

  constructor (latencyCapacity?: number) { this.latency = new LatencySamples(latencyCapacity) }

  /** Records one delivery to `subscriber` of a payload received at `now` (same clock as the header's). */
  receive (subscriber: number, payload: Buffer, now: number, payloadOffset = 0): void {
    const h = readHeader(payload, payloadOffset)
    if (h === undefined) { this.foreign++; return }
    let bySub = this.seen.get(subscriber)
    if (bySub === undefined) { bySub = new Map(); this.seen.set(subscriber, bySub) }
    let set = bySub.get(h.publisher)
    if (set === undefined) { set = new SeqSet(); bySub.set(h.publisher, set) }
    if (!set.add(h.seq)) { this.duplicates++; return }
    this.unique++
    this.lastAt = now
    // A duplicate's latency would count the redelivery, not the path: new only.
    this.latency.add(Math.max(0, now - h.sentAt))
  }

  tally (): ReceiveTally {
    return { unique: this.unique, duplicates: this.duplicates, foreign: this.foreign, latencyMs: this.latency.samples, latencyCount: this.latency.count, latencyMax: this.latency.max, lastAt: this.lastAt }
  }
}

export function mergeTallies (tallies: ReceiveTally[]): ReceiveTally {
  const out: ReceiveTally = { unique: 0, duplicates: 0, foreign: 0, latencyMs: [], latencyCount: 0, latencyMax: 0, lastAt: 0 }
  for (const t of tallies) {
    out.unique += t.unique
    out.duplicates += t.duplicates
    out.foreign += t.foreign
    for (const x of t.latencyMs) out.latencyMs.push(x)
    out.latencyCount += t.latencyCount
    out.latencyMax = Math.max(out.latencyMax, t.latencyMax)
    out.lastAt = Math.max(out.lastAt, t.lastAt)
  }
  return out
}

/**
 * Deliveries owed: each message a publisher sent is owed once to every
 * subscriber whose filter matches its topic (one subscription per subscriber,
 * so overlapping filters do not multiply, as MQTT 3.1.1 section 3.3.5 allows).
 */
export function expectedDeliveries (publishers: Array<{ topic: string, sent: number }>, subscriberFilters: string[]): number {
  let owed = 0
  for (const p of publishers) {
    let matching = 0
    for (const f of subscriberFilters) if (topicMatches(f, p.topic)) matching++
    owed += p.sent * matching
  }
  return owed
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples; 0 when empty. */
export function percentile (samples: readonly number[], p: number): number {
  if (samples.length === 0) return 0
  const sorted = [...samples].sort((a, b) => a - b)
  return percentileSorted(sorted, p)
}

export function percentileSorted (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

export interface Accounting {
  sent: number
  expected: number
  received: number
  lost: number
  duplicated: number
  latency: { p50: number, p90: number, p99: number, max: number, samples: number }
}

/** The final figures from what publishers sent and subscribers saw. */
export function account (publishers: Array<{ topic: string, sent: number }>, subscriberFilters: string[], tally: ReceiveTally): Accounting {
  const expected = expectedDeliveries(publishers, subscriberFilters)
  const sorted = [...tally.latencyMs].sort((a, b) => a - b)
  return {
    sent: publishers.reduce((s, p) => s + p.sent, 0),
    expected,
    received: tally.unique,
    lost: Math.max(0, expected - tally.unique),
    duplicated: tally.duplicates,
    latency: {
      p50: percentileSorted(sorted, 50),
      p90: percentileSorted(sorted, 90),
      p99: percentileSorted(sorted, 99),
      max: tally.latencyMax,
      samples: tally.latencyCount
    }
  }
}
