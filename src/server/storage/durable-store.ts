// The node's store on disk: one LMDB environment (npm `lmdb`) in storage.dir,
// holding small records under string keys:
//
//   m\0format     the store's format version (FORMAT)
//   m\0cluster    a fingerprint of the cluster key it was written under
//   m\0node       the member name that wrote it (a warning when it differs)
//   m\0id         a random identity given at creation: peers holding replicas of this
//                 node's sessions tell a restart on this store from one on a new store
//   r\0<topic>    a retained entry with its HLC stamp (tombstones too)
//   s\0<clientId> a persistent session (session-record.ts)
//
// Why LMDB (docs/storage.md has the figures): reads are synchronous from a
// memory map, so loading 100,000 records at start is a loop, not 100,000
// promises; writes issued in one event-loop turn are committed as one
// transaction by lmdb-js itself (group commit); a commit is copy-on-write,
// so a crash at any point leaves the last committed state, with no log to
// replay and no compaction to schedule (freed pages are reused, so the
// file stays at its high-water mark under churn).
//
// What LMDB does not do is survive a corrupted file gracefully: reading
// overwritten pages can crash the process (SIGSEGV, SIGBUS), and a damaged
// branch page silently hides the records below it. So an existing store is
// first read whole by a child process (verify-store.ts): a crash there, a
// record that does not decode, or fewer records than the B-tree's own count
// is a corrupted store, reported as such (STORAGE_CORRUPT) before this
// process maps it.
import { open, type RootDatabase } from 'lmdb'
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { BrokerHaError } from '../../errors.js'

/** The record format this version writes; a store with a higher one is refused. */
export const FORMAT = 1
export const FILE_NAME = 'broker-ha.mdb'

export type SyncMode = 'always' | 'batch' | 'off'

export interface DurableStoreOptions {
  dir: string
  sync: SyncMode
  /** Group commit delay (ms): writes of this long are committed together; 0: one commit per event-loop turn. */
  batchIntervalMs: number
  /** The member name (recorded; a different one is only logged). */
  node: string
  /** Fingerprints of the cluster keys this node accepts (clusterFingerprint), the primary first. */
  cluster: string[]
  /** Verify an existing store in a child process before mapping it (default true). */
  verify?: boolean
}

/** Identifies a cluster by its key without revealing it: a store written under another key is another cluster's. */
export function clusterFingerprint (key: string): string {
  return key === '' ? '' : createHash('sha256').update('broker-ha store\u0000').update(key).digest('hex').slice(0, 16)
}

export interface OpenResult {
  store: DurableStore
  /** Member name the store was written by, when it differs from ours. */
  otherNode: string | undefined
  /** Whether the store existed (false: created now). */
  existed: boolean
}

export class DurableStore {
  readonly path: string
  readonly sync: SyncMode
  /** The store's identity (random at creation, kept for its life). */
  id = ''
  private readonly db: RootDatabase
  private last: Promise<unknown> | undefined
  private closed = false

  private constructor (path: string, db: RootDatabase, sync: SyncMode) {
    this.path = path
    this.db = db
    this.sync = sync
  }

  /**
   * Opens (or creates) the store in `options.dir`. Throws BrokerHaError:
   * STORAGE_CORRUPT when it cannot be read, STORAGE_INCOMPATIBLE when it
   * comes from a newer version or another cluster.
   */
  static open (options: DurableStoreOptions): OpenResult {
    const path = join(options.dir, FILE_NAME)
    try {
      mkdirSync(options.dir, { recursive: true })
    } catch (err) {
      throw new BrokerHaError('STORAGE_CORRUPT', `storage.dir ${options.dir} cannot be created: ${(err as Error).message}`, { key: 'storage.dir', cause: err })
    }
    const existed = existsSync(path) && statSync(path).size > 0
    if (existed && options.verify !== false) verifyInChild(path)
    let db: RootDatabase
    try {
      db = open({
        path,
        compression: false,
        noSync: options.sync === 'off',
        commitDelay: options.batchIntervalMs,
        // Keys are ours and short; values are msgpack (Buffers round-trip).
        encoding: 'msgpack',
        // No shared msgpack structures: each record decodes by itself (one damaged record cannot
        // make every other unreadable), and lmdb-js saves them with writes nobody can handle
        // when a commit fails (a full disk ended the process with an unhandled rejection).
        sharedStructuresKey: undefined
      })
    } catch (err) {
      throw corrupt(path, (err as Error).message, err)
    }
    ignoreLmdbCommitRejections()
    const store = new DurableStore(path, db, options.sync)
    let format: unknown, cluster: unknown, node: unknown
    try {
      format = db.get('m\u0000format')
      cluster = db.get('m\u0000cluster')
      node = db.get('m\u0000node')
    } catch (err) {
      void db.close()
      throw corrupt(path, (err as Error).message, err)
    }
    if (format === undefined) {
      if (existed && (db.getStats() as { entryCount: number }).entryCount > 0) { void db.close(); throw corrupt(path, 'records without a format version') }
      db.putSync('m\u0000format', FORMAT)
      db.putSync('m\u0000cluster', options.cluster[0] ?? '')
      db.putSync('m\u0000node', options.node)
      store.id = randomUUID()
      db.putSync('m\u0000id', store.id)
      return { store, otherNode: undefined, existed }
    }
    if (typeof format !== 'number' || format > FORMAT) {
      void db.close()
      throw new BrokerHaError('STORAGE_INCOMPATIBLE', `the store at ${path} has format ${String(format)}, written by a newer broker-ha (this one reads format ${FORMAT}): run that version, or move the store away`, { key: 'storage.dir' })
    }
    if (typeof cluster === 'string' && !options.cluster.includes(cluster)) {
      void db.close()
      throw new BrokerHaError('STORAGE_INCOMPATIBLE', `the store at ${path} belongs to another cluster (written under a different cluster.config.secret_key): point storage.dir elsewhere, or run serve --reset-storage to discard it`, { key: 'storage.dir' })
    }
    if (cluster !== options.cluster[0]) db.putSync('m\u0000cluster', options.cluster[0] ?? '')
    const id = db.get('m\u0000id')
    if (typeof id === 'string' && id !== '') {
      store.id = id
    } else {
      // Written before stores had an identity: it gets one now.
      store.id = randomUUID()
      db.putSync('m\u0000id', store.id)
    }
    let otherNode: string | undefined
    if (typeof node === 'string' && node !== options.node) {
      otherNode = node
      db.putSync('m\u0000node', options.node)
    }
    return { store, otherNode, existed }
  }

  /** Moves a store aside (kept for inspection) so the node starts empty; returns where it went, or undefined when there was none. */
  static reset (dir: string): string | undefined {
    const path = join(dir, FILE_NAME)
    if (!existsSync(path)) return undefined
    const aside = `${path}.broken-${new Date().toISOString().replace(/[:.]/g, '-')}`
    renameSync(path, aside)
    if (existsSync(`${path}-lock`)) renameSync(`${path}-lock`, `${aside}-lock`)
    return aside
  }

  /**
   * Writes a record (committed with this turn's group; `whenWritten` says
   * when, and whether it failed: callers need not handle the promise).
   */
  put (key: string, value: unknown): Promise<boolean> {
    return this.track(this.db.put(key, value))
  }

  remove (key: string): Promise<boolean> {
    return this.track(this.db.remove(key))
  }

  private track (p: Promise<boolean>): Promise<boolean> {
    // A failed commit (a full disk) rejects every write of the group, and
    // lmdb-js adds a second promise with the cause (commitError): handled
    // here, so neither ends the process as an unhandled rejection.
    p.catch((err: { commitError?: Promise<unknown> } | undefined) => { err?.commitError?.catch(() => {}) })
    this.last = p
    return p
  }

  /**
   * Resolves once every write issued so far is committed, and with
   * sync 'always' flushed to the disk; rejects when the commit failed.
   */
  whenWritten (): Promise<void> {
    const last = this.last
    if (last === undefined) return Promise.resolve()
    return last.then(() => this.sync === 'always' ? this.db.flushed : undefined).then(() => {})
  }

  get (key: string): unknown { return this.db.get(key) }

  /** Records whose key starts with `prefix`, in key order. */
  * range (prefix: string): Generator<{ key: string, value: unknown }> {
    const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)
    for (const { key, value } of this.db.getRange({ start: prefix, end })) yield { key: key as string, value }
  }

  /** Bytes of pages holding data (what storage.max_size limits). */
  usedBytes (): number {
    const s = this.db.getStats() as { pageSize: number, treeBranchPageCount: number, treeLeafPageCount: number, overflowPages: number }
    return (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages + 4) * s.pageSize
  }

  /** Size of the file on disk (its high-water mark: LMDB reuses freed pages rather than shrink). */
  fileBytes (): number {
    try { return statSync(this.path).size } catch { return 0 }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.last?.catch(() => undefined)
    await this.db.close()
  }
}

/**
 * lmdb-js starts each group commit with an internal write whose promise
 * nobody can reach; when the commit fails (a full disk), that promise
 * rejects unhandled, which would end the process. The failure itself reaches
 * the store through its own writes (whenWritten), so those rejections, and
 * only those (an error carrying lmdb-js' commitError), are dropped here;
 * any other unhandled rejection still ends the process, as without this.
 */
function ignoreLmdbCommitRejections (): void {
  if (installed) return
  installed = true
  process.on('unhandledRejection', (reason) => {
    const commitError = (reason as { commitError?: Promise<unknown> } | null)?.commitError
    if (commitError !== undefined && typeof commitError.catch === 'function') {
      commitError.catch(() => {})
      return
    }
    throw reason
  })
}
let installed = false

function corrupt (path: string, detail: string, cause?: unknown): BrokerHaError {
  return new BrokerHaError('STORAGE_CORRUPT', `the store at ${path} cannot be read (${detail}): run serve --reset-storage to move it aside and start empty (the peers refill retained messages), or set storage.on_corruption: reset`, { key: 'storage.dir', cause })
}

/** Reads the whole store in a child process: a corrupted file may crash whoever maps it. */
function verifyInChild (path: string): void {
  const script = fileURLToPath(new URL('./verify-store.js', import.meta.url))
  const r = spawnSync(process.execPath, [script, path], { encoding: 'utf8', timeout: 120_000 })
  if (r.error !== undefined) throw corrupt(path, `verification did not run: ${r.error.message}`, r.error)
  if (r.signal !== null) throw corrupt(path, `reading it crashed with ${r.signal}`)
  if (r.status !== 0) throw corrupt(path, (r.stderr.trim().split('\n').pop() ?? '').slice(0, 300) || `verification exited with ${String(r.status)}`)
}
