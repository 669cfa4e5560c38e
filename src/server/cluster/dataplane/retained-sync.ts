// Anti-entropy for retained messages between two nodes, as message exchange
// over a peer link (pure: it returns the messages to send).
//
//   A: begin()            -> sync-digest  {round, A's bucket digests}
//   B: on sync-digest     -> sync-entries {B's entries of buckets where A's digest is zero}
//                            sync-summary {(topic, stamp) of the other differing buckets}
//   A: on sync-summary    -> sync-push    {A's entries B lacks or holds older; topics A wants}
//   B: on sync-push       -> merges;  sync-entries {the wanted entries}
//   A: on sync-entries    -> merges
//
// A bucket whose digest is all zero is (but for a 2^-128 accident) empty, so
// a joining node gets whole buckets without a summary round trip: that is the
// path for "a new node receives 100,000 retained messages". Entries travel in
// chunks of about chunkBytes so no single message approaches the link's
// message limit. Rounds are idempotent: a lost or repeated message only
// leaves a difference for the next round to find.
import { diffBuckets, type RetainedEntry, type RetainedStore } from './retained-store.js'
import type { DataPlaneMessage } from './messages.js'

export interface RetainedSyncStats {
  /** Rounds this node started. */
  rounds: number
  /** Entries merged that changed our store (differences repaired). */
  repaired: number
  /** Entries sent to peers. */
  sent: number
  /** Sync messages that could not be used (different bucket count). */
  rejected: number
}

export interface RetainedSyncOptions {
  /** Approximate size of one entries message (default 512 KiB). */
  chunkBytes?: number
  /** Called for every entry that changed the store (so the broker can update its view). */
  onApplied?: (entry: RetainedEntry) => void
}

type SyncMessage = Extract<DataPlaneMessage, { kind: `sync-${string}` }>

export class RetainedSync {
  private readonly store: RetainedStore
  private readonly chunkBytes: number
  private readonly onApplied: ((entry: RetainedEntry) => void) | undefined
  private nextRound = 1
  readonly stats: RetainedSyncStats = { rounds: 0, repaired: 0, sent: 0, rejected: 0 }

  constructor (store: RetainedStore, options: RetainedSyncOptions = {}) {
    this.store = store
    this.chunkBytes = options.chunkBytes ?? 512 * 1024
    this.onApplied = options.onApplied
  }

  /** Opens a round with a peer (on link start, and periodically). */
  begin (): SyncMessage {
    this.stats.rounds++
    return { kind: 'sync-digest', round: this.nextRound++, digest: this.store.digest() }
  }

  /** Handles a sync message from the peer; returns the replies, in order. */
  handle (m: SyncMessage): SyncMessage[] {
    switch (m.kind) {
      case 'sync-digest': {
        const ours = this.store.digest()
        if (ours.length !== m.digest.length) { this.stats.rejected++; return [] }
        const differing = diffBuckets(ours, m.digest)
        const empty: number[] = []
        const compare: number[] = []
        for (const b of differing) (isZero(m.digest, b) ? empty : compare).push(b)
        const out: SyncMessage[] = this.chunks(m.round, this.entriesOfBuckets(empty), [])
        if (compare.length > 0) out.push({ kind: 'sync-summary', round: m.round, buckets: compare, summary: this.store.summarize(compare) })
        return out
      }
      case 'sync-summary': {
        if (m.buckets.some((b) => b < 0 || b >= this.store.bucketCount)) { this.stats.rejected++; return [] }
        const { push, pull } = this.store.reconcile(m.buckets, m.summary)
        if (push.length === 0 && pull.length === 0) return []
        return this.chunks(m.round, push, pull)
      }
      case 'sync-push': {
        this.mergeAll(m.entries)
        if (m.pull.length === 0) return []
        return this.chunks(m.round, this.store.entriesFor(m.pull), [])
      }
      case 'sync-entries':
        this.mergeAll(m.entries)
        return []
    }
  }

  private mergeAll (entries: RetainedEntry[]): void {
    for (const e of entries) {
      if (this.store.merge(e) === 'applied') {
        this.stats.repaired++
        this.onApplied?.(e)
      }
    }
  }

  private * entriesOfBuckets (buckets: number[]): Generator<RetainedEntry> {
    if (buckets.length === 0) return
    const wanted = new Set(buckets)
    for (const [topic] of this.store.summarize(wanted)) {
      const e = this.store.getEntry(topic)
      if (e !== undefined) yield e
    }
  }

  /**
   * Cuts entries into messages of about chunkBytes. With a pull list the
   * messages are sync-push (the pull list rides on the first), otherwise
   * sync-entries.
   */
  private chunks (round: number, entries: Iterable<RetainedEntry>, pull: string[]): SyncMessage[] {
    const out: SyncMessage[] = []
    let batch: RetainedEntry[] = []
    let size = 0
    let pullLeft: string[] | undefined = pull.length > 0 ? pull : undefined
    const emit = (): void => {
      if (pullLeft !== undefined) {
        out.push({ kind: 'sync-push', round, pull: pullLeft, entries: batch })
        pullLeft = undefined
      } else if (pull.length > 0) {
        out.push({ kind: 'sync-push', round, pull: [], entries: batch })
      } else {
        out.push({ kind: 'sync-entries', round, entries: batch })
      }
      this.stats.sent += batch.length
      batch = []
      size = 0
    }
    for (const e of entries) {
      batch.push(e)
      size += e.topic.length + e.payload.length + 64
      if (size >= this.chunkBytes) emit()
    }
    if (batch.length > 0 || pullLeft !== undefined) emit()
    return out
  }
}

function isZero (digest: Buffer, bucket: number): boolean {
  for (let i = bucket * 16; i < bucket * 16 + 16; i++) if (digest[i] !== 0) return false
  return true
}
