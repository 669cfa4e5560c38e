// Retained messages replicated to every node as last-writer-wins entries.
//
// Each topic holds one entry stamped with a hybrid logical clock; the entry
// with the higher stamp wins everywhere, whatever order replicas see the
// writes in, so replicas that received the same entries hold the same state.
// Clearing a retained topic (MQTT 5 section 3.3.1.3: a retained PUBLISH with
// an empty payload) stores a tombstone, an entry with an empty payload and a
// stamp, so an older write arriving later (from a node that missed the
// clear) loses against it instead of bringing the topic back.
//
// Tombstones are collected after `tombstoneTtlMs`. Past that age a merged
// tombstone is ignored (it would be collected at once and bounce between
// nodes); a node partitioned for longer than the TTL can bring an old value
// back, so the TTL must exceed the longest partition to be tolerated.
//
// Anti-entropy: topics fall in `buckets` buckets by a hash of the topic. Each
// bucket's digest is the XOR of a 128-bit hash of (topic, stamp) over its
// entries, tombstones included, maintained incrementally on every change.
// Two nodes compare digests (bucketCount x 16 bytes), exchange (topic, stamp)
// summaries of the differing buckets only, then the entries each side lacks.
//
// Pure: the wall clock (for tombstone age) and the HLC are injected.
import { compareStamps, encodeStamp, type HybridLogicalClock, type Stamp } from './hlc.js'
import { topicMatches } from '../../../topic-filter.js'

export type Qos = 0 | 1 | 2

/** Publish fields kept with a retained message (what a subscriber receives). */
export interface RetainedMessage {
  payload: Buffer
  qos: Qos
  /** MQTT 5 PUBLISH properties as mqtt-packet decodes them (user properties, expiry, content type...). */
  properties?: Record<string, unknown>
}

export interface RetainedEntry extends RetainedMessage {
  topic: string
  stamp: Stamp
}

/** 'future': stamped further ahead of our clock than the clock's maximum drift (see merge). */
export type MergeResult = 'applied' | 'stale' | 'refused' | 'future'

/** Told about every change of the store, after it is made (the node's store on disk follows it). Must not throw. */
export interface RetainedStoreListener {
  /** An entry (a tombstone too) was stored for its topic, replacing any older one. */
  put (entry: RetainedEntry): void
  /** A topic's entry (a collected tombstone) is gone. */
  removed (topic: string): void
}

/** (topic, encoded stamp) pairs of some buckets: what a node holds there, without payloads. */
export type BucketSummary = Array<[topic: string, stamp: string]>

export interface RetainedStoreOptions {
  clock: HybridLogicalClock
  /** Wall clock in ms, for tombstone age. */
  now?: () => number
  /** Tombstones older than this are collected by gc(). */
  tombstoneTtlMs?: number
  /** Most live (non-tombstone) entries; 0: unlimited. New topics beyond it are refused. */
  maxCount?: number
  /** Most payload bytes of live entries; 0: unlimited. */
  maxBytes?: number
  /** Number of digest buckets, a power of two. */
  buckets?: number
}

const HASH_WORDS = 4 // 128-bit entry hash as four uint32

export class RetainedStore {
  private readonly clock: HybridLogicalClock
  private readonly now: () => number
  private readonly tombstoneTtlMs: number
  private readonly maxCount: number
  private readonly maxBytes: number
  readonly bucketCount: number
  private readonly entries = new Map<string, { entry: RetainedEntry, hash: Uint32Array, bucket: number }>()
  private readonly bucketTopics: Array<Set<string>>
  private readonly digests: Uint32Array
  private live = 0
  private liveBytes = 0
  /** New topics refused because a limit was reached (a metric). */
  refused = 0
  /** Entries from peers refused for a stamp too far ahead of our clock (a metric). */
  future = 0
  /** Told about every change (storage.dir); none in memory. */
  listener: RetainedStoreListener | undefined

  constructor (options: RetainedStoreOptions) {
    this.clock = options.clock
    this.now = options.now ?? Date.now
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? 24 * 3600_000
    this.maxCount = options.maxCount ?? 0
    this.maxBytes = options.maxBytes ?? 0
    this.bucketCount = options.buckets ?? 1024
    if (!Number.isInteger(this.bucketCount) || this.bucketCount < 1 || (this.bucketCount & (this.bucketCount - 1)) !== 0) {
      throw new RangeError('buckets must be a power of two')
    }
    this.bucketTopics = Array.from({ length: this.bucketCount }, () => new Set<string>())
    this.digests = new Uint32Array(this.bucketCount * HASH_WORDS)
  }

  // ---- local writes ------------------------------------------------------------

  /**
   * A client published a retained message here: stamps it and stores it.
   * An empty payload clears the topic (stores a tombstone). Returns the entry
   * to replicate to every peer, or undefined when refused by a limit.
   */
  set (topic: string, message: RetainedMessage): RetainedEntry | undefined {
    const entry: RetainedEntry = { topic, stamp: this.clock.now(), payload: message.payload, qos: message.qos }
    if (message.properties !== undefined && message.payload.length > 0) entry.properties = message.properties
    if (!this.admits(entry)) { this.refused++; return undefined }
    this.put(entry)
    return entry
  }

  /** Clears a topic: a tombstone, replicated like any other entry. */
  clear (topic: string): RetainedEntry {
    return this.set(topic, { payload: Buffer.alloc(0), qos: 0 })!
  }

  // ---- replication -------------------------------------------------------------

  /**
   * Merges an entry from a peer: the higher stamp wins. An entry stamped
   * further ahead of our wall clock than the clock's maximum drift
   * (cluster.max_clock_drift; the HLC throws ClockDriftError) is refused:
   * stored, it would beat every later write to its topic until our clock
   * caught up with it, from a skewed clock or a forged entry alike.
   */
  merge (entry: RetainedEntry): MergeResult {
    try {
      this.clock.observe(entry.stamp)
    } catch {
      this.future++
      return 'future'
    }
    const current = this.entries.get(entry.topic)
    if (current !== undefined && compareStamps(entry.stamp, current.entry.stamp) <= 0) return 'stale'
    if (entry.payload.length === 0 && current === undefined && this.expired(entry)) return 'stale'
    if (!this.admits(entry)) { this.refused++; return 'refused' }
    this.put(entry)
    return 'applied'
  }

  // ---- reads -------------------------------------------------------------------

  /** The live retained message of a topic (undefined if none or cleared). */
  get (topic: string): RetainedEntry | undefined {
    const e = this.entries.get(topic)?.entry
    return e === undefined || e.payload.length === 0 ? undefined : e
  }

  /** The entry of a topic, tombstones included (for replication). */
  getEntry (topic: string): RetainedEntry | undefined {
    return this.entries.get(topic)?.entry
  }

  /** Live retained messages whose topic matches `filter` (a SUBSCRIBE's retained delivery). */
  * match (filter: string): Generator<RetainedEntry> {
    for (const { entry } of this.entries.values()) {
      if (entry.payload.length > 0 && topicMatches(filter, entry.topic)) yield entry
    }
  }

  /** Every entry, tombstones included. */
  * all (): Generator<RetainedEntry> {
    for (const { entry } of this.entries.values()) yield entry
  }

  get count (): number { return this.live }
  get bytes (): number { return this.liveBytes }
  get tombstones (): number { return this.entries.size - this.live }

  // ---- tombstone collection ------------------------------------------------------

  /** Drops tombstones older than the TTL; returns how many. */
  gc (): number {
    let dropped = 0
    for (const [topic, { entry }] of this.entries) {
      if (entry.payload.length === 0 && this.expired(entry)) {
        this.remove(topic)
        dropped++
      }
    }
    return dropped
  }

  // ---- anti-entropy ----------------------------------------------------------------

  /** Bucket digests, bucketCount x 16 bytes (a copy). */
  digest (): Buffer {
    // Explicit little-endian, so nodes of any byte order compare the same bytes.
    const out = Buffer.allocUnsafe(this.digests.length * 4)
    for (let i = 0; i < this.digests.length; i++) out.writeUInt32LE(this.digests[i]!, i * 4)
    return out
  }

  /** (topic, stamp) of every entry in the given buckets. */
  summarize (buckets: Iterable<number>): BucketSummary {
    const out: BucketSummary = []
    for (const b of buckets) {
      const topics = this.bucketTopics[b]
      if (topics === undefined) continue
      for (const topic of topics) out.push([topic, encodeStamp(this.entries.get(topic)!.entry.stamp)])
    }
    return out
  }

  /**
   * Given the peer's summary of `buckets`, what to do: `push` are our
   * entries the peer lacks or holds older; `pull` are topics where the
   * peer's entry is newer or we have none.
   */
  reconcile (buckets: Iterable<number>, remote: BucketSummary): { push: RetainedEntry[], pull: string[] } {
    const remoteStamps = new Map(remote)
    const push: RetainedEntry[] = []
    const pull: string[] = []
    for (const b of buckets) {
      const topics = this.bucketTopics[b]
      if (topics === undefined) continue
      for (const topic of topics) {
        const entry = this.entries.get(topic)!.entry
        const theirs = remoteStamps.get(topic)
        // Encoded stamps compare as strings in stamp order (see encodeStamp).
        const ours = encodeStamp(entry.stamp)
        if (theirs === undefined || theirs < ours) push.push(entry)
        else if (theirs > ours) pull.push(topic)
        remoteStamps.delete(topic)
      }
    }
    for (const topic of remoteStamps.keys()) pull.push(topic)
    return { push, pull }
  }

  /** Entries (tombstones included) for the given topics, e.g. answering a pull. */
  entriesFor (topics: Iterable<string>): RetainedEntry[] {
    const out: RetainedEntry[] = []
    for (const t of topics) {
      const e = this.entries.get(t)?.entry
      if (e !== undefined) out.push(e)
    }
    return out
  }

  /** Which bucket a topic falls in (both sides must use the same bucket count). */
  bucketOf (topic: string): number {
    return fnv1a(topic) & (this.bucketCount - 1)
  }

  // ---- internals -------------------------------------------------------------------

  private expired (entry: RetainedEntry): boolean {
    return entry.stamp.wall < this.now() - this.tombstoneTtlMs
  }

  /** Limits refuse only a new live topic: replacements and clears always pass. */
  private admits (entry: RetainedEntry): boolean {
    if (entry.payload.length === 0) return true
    const current = this.entries.get(entry.topic)?.entry
    if (current !== undefined && current.payload.length > 0) return true
    if (this.maxCount > 0 && this.live + 1 > this.maxCount) return false
    if (this.maxBytes > 0 && this.liveBytes + entry.payload.length > this.maxBytes) return false
    return true
  }

  private put (entry: RetainedEntry): void {
    const old = this.entries.get(entry.topic)
    const bucket = old?.bucket ?? this.bucketOf(entry.topic)
    if (old !== undefined) this.account(old.entry, -1)
    if (old !== undefined) this.xorInto(bucket, old.hash)
    const hash = entryHash(entry.topic, entry.stamp)
    this.xorInto(bucket, hash)
    this.entries.set(entry.topic, { entry, hash, bucket })
    this.bucketTopics[bucket]!.add(entry.topic)
    this.account(entry, 1)
    this.listener?.put(entry)
  }

  private remove (topic: string): void {
    const old = this.entries.get(topic)
    if (old === undefined) return
    this.account(old.entry, -1)
    this.xorInto(old.bucket, old.hash)
    this.entries.delete(topic)
    this.bucketTopics[old.bucket]!.delete(topic)
    this.listener?.removed(topic)
  }

  private account (entry: RetainedEntry, sign: 1 | -1): void {
    if (entry.payload.length === 0) return
    this.live += sign
    this.liveBytes += sign * entry.payload.length
  }

  private xorInto (bucket: number, hash: Uint32Array): void {
    const base = bucket * HASH_WORDS
    for (let i = 0; i < HASH_WORDS; i++) this.digests[base + i]! ^= hash[i]!
  }
}

/** Buckets whose digests differ (both digests from stores with the same bucket count). */
export function diffBuckets (a: Buffer, b: Buffer): number[] {
  if (a.length !== b.length || a.length % (HASH_WORDS * 4) !== 0) throw new RangeError('digests of different bucket counts')
  const out: number[] = []
  const width = HASH_WORDS * 4
  for (let off = 0; off < a.length; off += width) {
    if (a.compare(b, off, off + width, off, off + width) !== 0) out.push(off / width)
  }
  return out
}

/**
 * 128-bit hash of (topic, stamp): four murmur3-style 32-bit lanes with
 * different seeds, rotations and constants, computed in one pass. Not cryptographic: it only has to
 * make accidental equality of different bucket contents negligible (peers are
 * authenticated), and it is several times cheaper than a crypto hash, which
 * matters when a node loads 100,000 retained entries.
 */
function entryHash (topic: string, stamp: Stamp): Uint32Array {
  const text = `${topic}\u0000${encodeStamp(stamp)}`
  let h0 = 0x9747b28c
  let h1 = 0x5bd1e995
  let h2 = 0x1b873593
  let h3 = 0xcc9e2d51
  for (let i = 0; i < text.length; i++) {
    let k = Math.imul(text.charCodeAt(i), 0xcc9e2d51)
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593)
    h0 = Math.imul(rotl(h0 ^ k, 13), 5) + 0xe6546b64 | 0
    h1 = Math.imul(rotl(h1 ^ k, 11), 9) + 0x38b34ae5 | 0
    h2 = Math.imul(rotl(h2 ^ k, 17), 3) + 0xa1e38b93 | 0
    h3 = Math.imul(rotl(h3 ^ k, 19), 7) + 0x4cf5ad43 | 0
  }
  return new Uint32Array([fmix(h0 ^ text.length), fmix(h1 ^ text.length), fmix(h2 ^ text.length), fmix(h3 ^ text.length)])
}

function rotl (x: number, r: number): number { return (x << r) | (x >>> (32 - r)) }

/** murmur3's finaliser: every input bit affects every output bit. */
function fmix (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** 32-bit FNV-1a over UTF-16 code units: cheap and well spread, for bucket choice only. */
function fnv1a (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}
