// Durable storage of one node (storage.dir; docs/storage.md): retained
// messages with their HLC stamps and tombstones, and persistent sessions
// (subscriptions, queue with packet identifiers and PUBRELs, ledger, the
// client's QoS 2 PUBLISHes awaiting PUBREL, expiry), written to the
// node's store (durable-store.ts) and read back at start, before the node
// joins its peers or accepts a client; the peers then reconcile as after
// any restart (retained digests; of two copies of a session the newer one
// wins when its client comes back).
//
// It plugs in where the state changes, and nowhere else:
//   - the session store's observer (persistence-observer.ts), next to the
//     cluster's: a changed session is marked, and written whole once per
//     event-loop turn, however many changes it had in that turn;
//   - the retained store's listener (retained-store.ts): every entry stored
//     (local, from a peer, from a sync round) or collected;
//   - aedes' client events: when a session's client left, with what expiry.
// With storage.sync 'always', what the observer lets wait (a publisher's
// PUBACK/PUBREC, a QoS 2 identifier before it is sent, a PUBREL) also waits
// for the write to be flushed to the disk.
//
// With storage.dir empty none of this exists: the node keeps everything in
// memory, as before.
import type { Client } from 'aedes'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Registry } from 'prom-client'
import type { Config } from '../../config/index.js'
import { rateLimited, type Logger } from '../../log.js'
import { BrokerHaError } from '../../errors.js'
import type { MqttServer } from '../mqtt/index.js'
import { bothObservers, type PersistenceObserver, type StoredSubscription } from '../mqtt/persistence-observer.js'
import { brokerInternals } from '../mqtt/aedes-internals.js'
import type { DataPlane } from '../cluster/dataplane/data-plane.js'
import type { RetainedEntry } from '../cluster/dataplane/retained-store.js'
import { DurableStore, clusterFingerprint } from './durable-store.js'
import { QUEUE, RETAINED, SESSION, checkQueueRecord, queueKey, checkSessionRecord, expired, parseQueueKey, retainedEntry, retainedRecord, type QueueRecord, type SessionRecord } from './records.js'
import { LEDGER_EVERY_MS, SessionWriter, type Connection } from './session-writer.js'
import { StorageMetrics } from './metrics.js'
import { installFullRefusal } from './full-refusal.js'
import { StoredWills, WILL, checkWillRecord, type WillRecord } from './wills.js'
import { StoredReplicas } from './replica-records.js'
import { DirLock } from './dir-lock.js'

const HLC = 'm\u0000hlc'
/** Below this share of storage.max_size a full store takes writes again (hysteresis: no flapping at the line). */
const RESUME_BELOW = 0.95

export interface StorageOptions {
  config: Config
  log: Logger
  registry: Registry
  mqtt: MqttServer
  dataPlane: DataPlane
  /** serve --reset-storage: move the store aside and start empty. */
  reset?: boolean
}

export class Storage {
  readonly enabled: boolean
  private readonly o: StorageOptions
  private store: DurableStore | undefined
  private metrics: StorageMetrics | undefined
  private readonly warn: ReturnType<typeof rateLimited>
  /** Sessions changed this turn. */
  private readonly dirty = new Set<string>()
  private flushScheduled = false
  /** What waits for this turn's writes (sync always). */
  private waiters: Array<() => void> = []
  /** Stored subscriptions per session, with their options (the observer's view). */
  private readonly subscriptions = new Map<string, Map<string, StoredSubscription>>()
  private readonly connections = new Map<string, Connection>()
  /** Sessions read from disk whose client has not come back: they expire here. */
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>()
  private readonly writer: SessionWriter
  /** Wills of connected clients, on disk; published after a restart (wills.ts). */
  readonly wills: StoredWills
  /** The replicas this node holds for its peers, on disk (replica-records.ts). */
  private readonly replicas: StoredReplicas
  private ledgerTimer: NodeJS.Timeout | undefined
  private loading = false
  private startedAt = Date.now()
  private lock: DirLock | undefined
  /** written()'s promise for the flush scheduled now. */
  private nextFlush: Promise<void> | undefined
  private full = false
  /** A commit failed: everything is written again once one succeeds. */
  private rewrite = false
  /** Figures of the last start (tests, benchmarks, the log). */
  loaded = { retained: 0, sessions: 0, expired: 0, bad: 0, wills: 0, replicas: 0, ms: 0, retainedMs: 0 }

  constructor (o: StorageOptions) {
    this.o = o
    this.enabled = o.config.storage.dir !== ''
    this.warn = rateLimited(o.log, 10_000)
    this.writer = new SessionWriter(o.mqtt.persistence)
    this.replicas = new StoredReplicas(o.dataPlane.replication.replicas)
    this.wills = new StoredWills({
      aedes: o.mqtt.aedes,
      log: o.log,
      write: (key, value) => this.write(key, value),
      erase: (key) => this.erase(key),
      ready: async () => await this.peersAtStart(),
      holderOf: (clientId) => o.dataPlane.replication.holderOf(clientId),
      processOf: (peer) => {
        const link = o.dataPlane.links.get(peer)
        return link?.state === 'up' ? link.remoteProcess : undefined
      }
    })
    if (!this.enabled) return
    const { mqtt } = o
    this.metrics = new StorageMetrics(o.registry, {
      dataBytes: () => this.store?.usedBytes() ?? 0,
      fileBytes: () => this.store?.fileBytes() ?? 0,
      full: () => this.full
    })
    const mine = this.observer()
    mqtt.persistence.observer = mqtt.persistence.observer === undefined ? mine : bothObservers(mqtt.persistence.observer, mine)
    installFullRefusal(mqtt.hooks, { full: () => this.full, log: o.log })
    mqtt.aedes.on('client', (client) => { this.connected(client.id); this.wills.connected(client) })
    mqtt.aedes.on('clientDisconnect', (client) => { this.disconnected(client); this.wills.ended(client) })
    o.dataPlane.clientSeenElsewhere = (clientId) => this.wills.seenElsewhere(clientId)
    o.dataPlane.replication.holderChosen = (clientId, holder) => this.wills.holderChosen(clientId, holder)
  }

  /** Whether publishes that need storage are refused (storage.max_size or the disk reached). */
  get isFull (): boolean { return this.full }
  get durable (): DurableStore | undefined { return this.store }

  async start (): Promise<void> {
    if (!this.enabled) return
    this.startedAt = Date.now()
    const { config, log } = this.o
    const { dir } = config.storage
    // Before anything touches the directory: a reset must not move a live node's store aside.
    this.lock = await DirLock.acquire({
      dir,
      node: config.cluster.name,
      lost: (by) => {
        this.metrics!.errors.inc({ kind: 'lock' })
        log.error({ dir, by }, 'STORAGE LOCK TAKEN OVER by another process: two nodes are using one storage.dir; stop one of them')
      }
    })
    if (this.o.reset === true) {
      const aside = DurableStore.reset(dir)
      log.warn({ dir, aside }, aside === undefined ? 'storage reset asked (--reset-storage): there was no store' : 'storage reset (--reset-storage): the store was moved aside; starting empty')
    }
    const cc = config.cluster.config
    const options = {
      dir,
      sync: config.storage.sync,
      batchIntervalMs: config.storage.batch_interval,
      node: config.cluster.name,
      cluster: [cc.secret_key, ...cc.secondary_keys].map(clusterFingerprint)
    }
    let opened
    try {
      opened = DurableStore.open(options)
    } catch (err) {
      if (!(err instanceof BrokerHaError) || err.code !== 'STORAGE_CORRUPT' || config.storage.on_corruption !== 'reset') throw err
      const aside = DurableStore.reset(dir)
      this.metrics!.errors.inc({ kind: 'reset' })
      log.error({ err: err.message, aside }, 'STORE CORRUPTED: moved aside, starting EMPTY (storage.on_corruption: reset); retained messages refill from the peers, sessions only this node held are lost')
      opened = DurableStore.open(options)
    }
    this.store = opened.store
    // Replicas made of this node's sessions carry it: its peers tell a restart on this store from one on a new store.
    this.o.dataPlane.identity = `store:${opened.store.id}`
    if (opened.otherNode !== undefined) log.warn({ dir, writtenBy: opened.otherNode, node: config.cluster.name }, 'the store was written by a node of another name; using it')
    await this.load()
    this.replicas.listen(() => { void this.schedule() })
    this.o.dataPlane.ackGate = () => this.written()
    this.o.dataPlane.retained.listener = {
      put: (entry) => this.write(RETAINED + entry.topic, retainedRecord(entry)),
      removed: (topic) => this.erase(RETAINED + topic)
    }
    this.waitForPeersAtStart()
    // Ledgers that only grew are written at most this often (session-writer.ts).
    this.ledgerTimer = setInterval(() => { for (const id of this.writer.ledgerDue(Date.now())) this.mark(id) }, LEDGER_EVERY_MS)
    this.ledgerTimer.unref()
    log.info({ dir, sync: config.storage.sync, ...this.loaded, bytes: this.store.fileBytes() }, 'storage loaded')
  }

  async stop (): Promise<void> {
    if (this.store === undefined) return
    this.wills.stop()
    this.replicas.stop()
    for (const t of this.expiryTimers.values()) clearTimeout(t)
    this.expiryTimers.clear()
    clearInterval(this.ledgerTimer)
    this.o.dataPlane.retained.listener = undefined
    this.o.dataPlane.ackGate = undefined
    this.flush()
    const store = this.store
    this.store = undefined
    await store.whenWritten().catch(() => {})
    await store.close()
    this.lock?.release()
    this.lock = undefined
  }

  // ---- start: what the disk holds, back into the broker ------------------------------------------

  private async load (): Promise<void> {
    const store = this.store!
    const started = Date.now()
    this.loading = true
    try {
      const hwm = store.get(HLC)
      if (Array.isArray(hwm) && typeof hwm[0] === 'number' && typeof hwm[1] === 'number') {
        try {
          this.o.dataPlane.clock.observe({ wall: hwm[0], logical: hwm[1], node: this.o.dataPlane.name })
        } catch {
          // Far ahead of the wall clock (ClockDriftError): the clock is not dragged there.
        }
      }
      const entries: RetainedEntry[] = []
      for (const { key, value } of store.range(RETAINED)) {
        try {
          entries.push(retainedEntry(key.slice(RETAINED.length), value))
        } catch (err) {
          this.badRecord(key, err)
        }
      }
      for (const topic of this.o.dataPlane.restoreRetained(entries)) void store.remove(RETAINED + topic)
      this.loaded.retained = entries.length
      this.loaded.retainedMs = Date.now() - started
      const now = Date.now()
      const sessions: Array<[string, SessionRecord]> = []
      for (const { key, value } of store.range(SESSION)) {
        try {
          sessions.push([key.slice(SESSION.length), checkSessionRecord(value)])
        } catch (err) {
          this.badRecord(key, err)
        }
      }
      const queues = new Map<string, Array<{ id: number, record: QueueRecord }>>()
      for (const { key, value } of store.range(QUEUE)) {
        try {
          const { clientId, id } = parseQueueKey(key)
          const record = checkQueueRecord(value)
          this.writer.seenId(id)
          let q = queues.get(clientId)
          if (q === undefined) { q = []; queues.set(clientId, q) }
          q.push({ id, record })
        } catch (err) {
          this.badRecord(key, err)
        }
      }
      const persistence = this.o.mqtt.persistence
      for (const [clientId, r] of sessions) {
        const queue = (queues.get(clientId) ?? []).sort((a, b) => a.record.o - b.record.o || a.id - b.id)
        queues.delete(clientId)
        if (expired(r, now)) {
          void store.remove(SESSION + clientId)
          for (const q of queue) void store.remove(queueKey(clientId, q.id))
          this.loaded.expired++
          continue
        }
        await persistence.importSession(clientId, {
          subscriptions: r.subscriptions,
          queue: queue.map((q) => q.record.p) as never,
          ledger: r.ledger,
          incoming: r.incoming as never
        })
        this.writer.loaded(clientId, queue.map((q) => ({ id: q.id, order: q.record.o })))
        for (const s of r.subscriptions) this.subscriptionsOf(clientId).set(s.topic, { ...s })
        // Whatever it was, its client is not connected to this new process.
        const c = { expiry: r.expiry, disconnectedAt: r.disconnectedAt ?? now }
        this.connections.set(clientId, c)
        this.armExpiry(clientId, c)
        this.loaded.sessions++
      }
      this.o.dataPlane.sessionsFromDisk(sessions.map(([clientId]) => clientId).filter((id) => persistence.hasSession(id)))
      // Queue entries of no session (a session deleted in a commit that did not complete): gone.
      for (const [clientId, queue] of queues) for (const q of queue) void store.remove(queueKey(clientId, q.id))
      const wills: Array<[string, WillRecord]> = []
      for (const { key, value } of store.range(WILL)) {
        try {
          wills.push([key.slice(WILL.length), checkWillRecord(value)])
        } catch (err) {
          this.badRecord(key, err)
        }
      }
      this.loaded.wills = wills.length
      this.wills.load(wills, now)
      this.loaded.replicas = this.replicas.load(store, (key, err) => this.badRecord(key, err))
    } finally {
      this.loading = false
    }
    this.loaded.ms = Date.now() - started
  }

  /**
   * After a restart of every node at once, a client may reconnect to a node
   * before the node whose disk holds its session is back, and a publish may
   * come before their routes: in a cluster (discovery configured,
   * cluster.expected_members > 1) the first storage.peers_wait ms wait for
   * the expected members, and the sessions of those that do not come back
   * are taken over from the replicas on disk (start-window.ts). Without
   * storage nothing is on disk to wait for.
   */
  /** With sync always, the disk write of what this turn changed, if anything (DataPlane.ackGate): one promise per flush. */
  private written (): Promise<void> | undefined {
    if (!this.flushScheduled || this.store?.sync !== 'always') return undefined
    this.nextFlush ??= this.schedule()
    return this.nextFlush
  }

  private waitForPeersAtStart (): void {
    if (!this.inCluster()) return
    this.o.dataPlane.openStartWindow(this.o.config.storage.peers_wait)
  }

  private inCluster (): boolean {
    const { discovery: d, cluster } = this.o.config
    return cluster.expected_members > 1 && (d.seeds.length > 0 || d.domain !== '')
  }

  /** Resolves once a node of a cluster has its expected peers linked (storage.peers_wait at most after start); at once for a single node. */
  private async peersAtStart (): Promise<void> {
    if (!this.inCluster()) return
    const expected = this.o.config.cluster.expected_members
    const until = this.startedAt + this.o.config.storage.peers_wait
    const { links, routing } = this.o.dataPlane
    // Linked, and their route tables here: a will published then reaches their subscribers.
    const ready = (): number => links.upPeers().filter((p) => routing.peerVersion(p) !== undefined).length
    while (Date.now() < until && ready() + 1 < expected && this.store !== undefined) await sleep(100)
  }

  private badRecord (key: string, err: unknown): void {
    this.loaded.bad++
    this.metrics!.errors.inc({ kind: 'bad_record' })
    this.o.log.error({ key: key.slice(0, 200), err: (err as Error).message }, 'a stored record does not check: skipped and deleted')
    void this.store!.remove(key)
  }

  /** A session read from disk ends at its expiry unless its client comes back. */
  private armExpiry (clientId: string, c: Connection): void {
    if (c.expiry === undefined || c.expiry >= 0xFFFFFFFF) return
    const at = (c.disconnectedAt ?? Date.now()) + c.expiry * 1000
    const t = setTimeout(() => {
      this.expiryTimers.delete(clientId)
      if (brokerInternals(this.o.mqtt.aedes).clients[clientId] !== undefined) return
      const persistence = this.o.mqtt.persistence
      persistence.cleanSubscriptions({ id: clientId }).catch(() => {})
    }, Math.min(Math.max(0, at - Date.now()), 0x7FFFFFFF))
    t.unref()
    this.expiryTimers.set(clientId, t)
  }

  // ---- changes: the observer, the retained listener, client events -------------------------------

  private observer (): PersistenceObserver {
    const mark = (clientId: string): Promise<void> | undefined => this.mark(clientId)
    return {
      retained: () => this.schedule(),
      subscribed: (clientId, subs) => {
        const mine = this.subscriptionsOf(clientId)
        for (const s of subs) mine.set(s.topic, { ...s })
        return this.markRecord(clientId)
      },
      unsubscribed: (clientId, topics) => {
        const mine = this.subscriptions.get(clientId)
        for (const t of topics) mine?.delete(t)
        if (mine?.size === 0) this.subscriptions.delete(clientId)
        return this.markRecord(clientId)
      },
      ended: (clientId) => {
        this.subscriptions.delete(clientId)
        // Its expiry from disk does not apply to whatever session of that id comes here later.
        clearTimeout(this.expiryTimers.get(clientId))
        this.expiryTimers.delete(clientId)
        return this.markRecord(clientId)
      },
      queued: (clientId) => mark(clientId),
      sent: (clientId, entry) => entry.qos === 2 ? mark(clientId) : (mark(clientId), undefined),
      released: (clientId) => mark(clientId),
      cleared: (clientId) => { mark(clientId) },
      willStored: (clientId, will) => this.wills.stored(clientId, will),
      willDeleted: (clientId) => this.wills.deleted(clientId),
      incomingStored: (clientId) => this.markRecord(clientId),
      incomingReleased: (clientId) => { this.markRecord(clientId) }
    }
  }

  private connected (clientId: string): void {
    clearTimeout(this.expiryTimers.get(clientId))
    this.expiryTimers.delete(clientId)
    this.connections.set(clientId, { expiry: undefined, disconnectedAt: undefined })
  }

  private disconnected (client: Client): void {
    const c = client as Client & { clean?: boolean, version?: number, sessionExpiryInterval?: number }
    // A connection replaced by a newer one of the same id does not end anything.
    const current = brokerInternals(this.o.mqtt.aedes).clients[client.id]
    if (current !== undefined && current !== client) return
    if (c.clean === true) { this.connections.delete(client.id); return }
    this.connections.set(client.id, { expiry: c.version === 5 ? c.sessionExpiryInterval : undefined, disconnectedAt: Date.now() })
    if (this.o.mqtt.persistence.hasSession(client.id)) this.markRecord(client.id)
  }

  private subscriptionsOf (clientId: string): Map<string, StoredSubscription> {
    let mine = this.subscriptions.get(clientId)
    if (mine === undefined) { mine = new Map(); this.subscriptions.set(clientId, mine) }
    return mine
  }

  /** The session's queue changed. */
  private mark (clientId: string): Promise<void> | undefined {
    if (this.loading || this.store === undefined) return undefined
    this.dirty.add(clientId)
    return this.schedule()
  }

  /** The session's record changed (and maybe its queue). */
  private markRecord (clientId: string): Promise<void> | undefined {
    if (this.loading || this.store === undefined) return undefined
    this.writer.recordChanged(clientId)
    return this.mark(clientId)
  }

  private write (key: string, value: unknown): void {
    if (this.store === undefined) return
    this.track(this.store.put(key, value))
    this.schedule()
  }

  private erase (key: string): void {
    if (this.store === undefined) return
    this.track(this.store.remove(key))
    this.schedule()
  }

  private track (p: Promise<unknown>): void {
    p.catch(() => {}) // counted once per group in flush()
  }

  /** A flush at the end of this turn; with sync always, a promise of its writes on disk. */
  private schedule (): Promise<void> | undefined {
    if (this.store === undefined) return undefined
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => this.flush())
    }
    if (this.store.sync !== 'always') return undefined
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  private flush (): void {
    this.flushScheduled = false
    this.nextFlush = undefined
    const store = this.store
    const waiters = this.waiters
    this.waiters = []
    if (store === undefined) { for (const w of waiters) w(); return }
    if (this.rewrite) this.writeEverything()
    const now = Date.now()
    for (const clientId of this.dirty) this.writer.write(store, clientId, this.subscriptions.get(clientId), this.connections.get(clientId), now)
    for (const clientId of this.dirty) if (!this.o.mqtt.persistence.hasSession(clientId)) this.connections.delete(clientId)
    this.dirty.clear()
    this.replicas.flush(store)
    const clock = this.o.dataPlane.clock.peek()
    this.track(store.put(HLC, [clock.wall, clock.logical]))
    const started = performance.now()
    store.whenWritten().then(() => {
      this.metrics!.flushes.inc()
      this.metrics!.writeSeconds.observe((performance.now() - started) / 1000)
      this.rewrite = false
      this.checkFull(store)
    }, (err: Error) => {
      this.metrics!.errors.inc({ kind: 'write' })
      this.rewrite = true
      this.warn('error', { err: err.message }, 'storage write failed: publishes that need storage are refused until a write succeeds')
      this.setFull(true)
      // Try again: the next successful commit clears the state.
      setTimeout(() => this.schedule(), 1000).unref()
    }).finally(() => { for (const w of waiters) w() })
  }

  /** After a failed commit: every session and retained entry again (what failed is not known per record). */
  private writeEverything (): void {
    this.writer.rewriteAll()
    for (const clientId of this.o.mqtt.persistence.sessions()) this.dirty.add(clientId)
    this.replicas.rewriteAll(this.o.dataPlane.replication.replicas.clientIds())
    for (const entry of this.o.dataPlane.retained.all()) this.track(this.store!.put(RETAINED + entry.topic, retainedRecord(entry)))
  }

  private checkFull (store: DurableStore): void {
    const max = this.o.config.storage.max_size
    if (max === 0) { this.setFull(false); return }
    const used = store.usedBytes()
    if (used >= max) this.setFull(true)
    else if (used < max * RESUME_BELOW) this.setFull(false)
  }

  private setFull (full: boolean): void {
    if (full === this.full) return
    this.full = full
    if (full) {
      this.metrics!.errors.inc({ kind: 'full' })
      this.o.log.error({ maxSize: this.o.config.storage.max_size, used: this.store?.usedBytes() }, 'STORAGE FULL: QoS 1/2 and retained publishes are refused (MQTT 5: 0x97 quota exceeded) until space frees')
    } else {
      this.o.log.warn({ used: this.store?.usedBytes() }, 'storage has room again: publishes accepted')
    }
  }
}
