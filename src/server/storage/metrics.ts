// Prometheus metrics of the node's store (storage.dir). Sizes are read at
// scrape time; the write latency is observed per group commit.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

/** Label values of broker_storage_errors_total. */
export type StorageErrorKind = 'full' | 'write' | 'bad_record' | 'reset' | 'lock'

export class StorageMetrics {
  readonly writeSeconds: Histogram
  readonly flushes: Counter
  readonly errors: Counter<'kind'>

  constructor (registry: Registry, live: { dataBytes: () => number, fileBytes: () => number, full: () => boolean }) {
    new Gauge({
      name: 'broker_storage_size_bytes',
      help: "The node's store: kind=data, bytes of pages holding records (what storage.max_size limits); kind=file, the file's size on disk (its high-water mark)",
      labelNames: ['kind'],
      registers: [registry],
      collect () {
        this.set({ kind: 'data' }, live.dataBytes())
        this.set({ kind: 'file' }, live.fileBytes())
      }
    })
    new Gauge({
      name: 'broker_storage_full',
      help: '1 while the store is at storage.max_size (or the disk is full): publishes that need storage are refused',
      registers: [registry],
      collect () { this.set(live.full() ? 1 : 0) }
    })
    this.writeSeconds = new Histogram({
      name: 'broker_storage_write_seconds',
      help: 'Time from a group of writes being issued to its commit (with storage.sync always: to its flush to disk)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry]
    })
    this.flushes = new Counter({
      name: 'broker_storage_flushes_total',
      help: 'Group commits of the store (one per event-loop turn with writes, or per storage.batch_interval)',
      registers: [registry]
    })
    this.errors = new Counter({
      name: 'broker_storage_errors_total',
      help: 'Store errors: kind=full (storage.max_size or the disk reached), write (a commit failed), bad_record (a record read at start did not check and was skipped), reset (a corrupted store was moved aside and the node started empty), lock (another process took the lock of storage.dir over)',
      labelNames: ['kind'],
      registers: [registry]
    })
    for (const kind of ['full', 'write', 'bad_record', 'reset']) this.errors.inc({ kind }, 0)
  }
}
