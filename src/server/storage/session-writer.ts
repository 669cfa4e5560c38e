// How a persistent session is written: its queue one record per entry, the
// rest (subscriptions, ledger, the client's QoS 2 PUBLISHes awaiting PUBREL,
// expiry) one record per session (records.ts).
//
// A message queued, sent (given its packet identifier), released (PUBREL)
// or acknowledged is one small put or delete, whatever the length of the
// queue: at each flush the session's live queue is compared with what was
// written (entry objects are tracked, so the walk is a loop over the queue
// with no encoding), and only new or changed entries are written. Each entry
// gets an id (its key) and an order number: a message that came by a slower
// path and went between two others gets an order between theirs.
//
// The session record is written when what it holds changes (a subscription,
// an incoming QoS 2 PUBLISH, a connection ending), and for a ledger that only
// grew, at most every LEDGER_EVERY_MS: after a restart a message queued for
// the session in those last seconds and already delivered is not in the
// ledger read back, so a late copy of it (from a peer's rescue) could be
// delivered again. Its queue entry was removed on its acknowledgement, so
// nothing else depends on it.
import type { StoredPacket } from '../mqtt/outgoing-queues.js'
import type { SessionStore } from '../mqtt/persistence.js'
import type { StoredSubscription } from '../mqtt/persistence-observer.js'
import type { DurableStore } from './durable-store.js'
import { SESSION, queueKey, queueRecord, sessionRecord } from './records.js'

export const LEDGER_EVERY_MS = 5000

export interface Connection { expiry: number | undefined, disconnectedAt: number | undefined }

interface Written {
  /** Entry object -> its id and order, and what was written of it (cmd and packet identifier). */
  entries: Map<StoredPacket, { id: number, order: number, state: string }>
  /** When the session record was last written. */
  recordAt: number
  recordWritten: boolean
}

const stateOf = (e: StoredPacket): string => `${e.cmd ?? 'publish'}:${e.messageId ?? ''}`

export class SessionWriter {
  private readonly sessions: SessionStore
  private readonly written = new Map<string, Written>()
  private nextId = 1
  /** Sessions whose record (not only their queue) changed. */
  private readonly recordDirty = new Set<string>()
  /** Sessions with queue changes since the record was written (the ledger grew). */
  private readonly ledgerDirty = new Set<string>()

  constructor (sessions: SessionStore) {
    this.sessions = sessions
  }

  /** Ids above every id read back from disk. */
  seenId (id: number): void { if (id >= this.nextId) this.nextId = id + 1 }

  recordChanged (clientId: string): void { this.recordDirty.add(clientId) }

  /**
   * A session read back from disk: its live entries (just imported, in the
   * order read) are what is written, under the ids they were read with.
   * Entries the import dropped (a smaller mqtt.max_queued_messages now) are
   * deleted at the next write of the session.
   */
  loaded (clientId: string, read: Array<{ id: number, order: number }>): void {
    const live = this.sessions.queue(clientId)
    const w: Written = { entries: new Map(), recordAt: Date.now(), recordWritten: true }
    const offset = read.length - live.length
    for (let i = 0; i < read.length; i++) {
      const r = read[i]!
      const e = live[i - offset]
      // A placeholder object for a dropped entry: never in the live queue, so deleted when next written.
      w.entries.set(e ?? ({ topic: '', payload: Buffer.alloc(0) }), { id: r.id, order: r.order, state: e === undefined ? '' : stateOf(e) })
    }
    this.written.set(clientId, w)
  }

  /** Writes what changed of a session (or deletes it, when it is no longer stored here). */
  write (store: DurableStore, clientId: string, subscriptions: ReadonlyMap<string, StoredSubscription> | undefined, connection: Connection | undefined, now: number): void {
    const w = this.written.get(clientId)
    if (!this.sessions.hasSession(clientId)) {
      if (w !== undefined) for (const { id } of w.entries.values()) void store.remove(queueKey(clientId, id)).catch(() => {})
      if (w === undefined || w.recordWritten || this.recordDirty.has(clientId)) void store.remove(SESSION + clientId).catch(() => {})
      this.written.delete(clientId)
      this.recordDirty.delete(clientId)
      this.ledgerDirty.delete(clientId)
      return
    }
    const mine = w ?? { entries: new Map(), recordAt: 0, recordWritten: false }
    if (w === undefined) this.written.set(clientId, mine)
    const live = this.sessions.queue(clientId)
    const before = mine.entries
    const after = new Map<StoredPacket, { id: number, order: number, state: string }>()
    let queueChanged = false
    let prevOrder = 0
    for (let i = 0; i < live.length; i++) {
      const e = live[i]!
      let known = before.get(e)
      if (known === undefined) {
        // Between the previous entry and the next one already written (or after the previous).
        let nextOrder: number | undefined
        for (let j = i + 1; j < live.length && nextOrder === undefined; j++) nextOrder = before.get(live[j]!)?.order
        const order = nextOrder === undefined ? Math.floor(prevOrder) + 1 : (prevOrder + nextOrder) / 2
        known = { id: this.nextId++, order, state: '' }
      }
      before.delete(e)
      const state = stateOf(e)
      if (known.state !== state) {
        known.state = state
        void store.put(queueKey(clientId, known.id), queueRecord(known.order, e)).catch(() => {})
        queueChanged = true
      }
      after.set(e, known)
      prevOrder = known.order
    }
    for (const { id } of before.values()) {
      void store.remove(queueKey(clientId, id)).catch(() => {})
      queueChanged = true
    }
    mine.entries = after
    if (queueChanged) this.ledgerDirty.add(clientId)
    const recordDue = this.recordDirty.has(clientId) || !mine.recordWritten || (this.ledgerDirty.has(clientId) && now - mine.recordAt >= LEDGER_EVERY_MS)
    if (!recordDue) return
    void store.put(SESSION + clientId, sessionRecord({
      subscriptions: [...(subscriptions?.values() ?? [])],
      ledger: this.sessions.exportQueue(clientId).ledger,
      incoming: this.sessions.incomingPackets(clientId),
      expiry: connection?.expiry,
      disconnectedAt: connection?.disconnectedAt
    })).catch(() => {})
    mine.recordAt = now
    mine.recordWritten = true
    this.recordDirty.delete(clientId)
    this.ledgerDirty.delete(clientId)
  }

  /** Sessions whose ledger grew and whose record is due (the periodic refresh). */
  ledgerDue (now: number): string[] {
    const out: string[] = []
    for (const id of this.ledgerDirty) if (now - (this.written.get(id)?.recordAt ?? 0) >= LEDGER_EVERY_MS) out.push(id)
    return out
  }

  /** After a failed commit: every entry and record is written again (under the ids it has). */
  rewriteAll (): void {
    for (const w of this.written.values()) {
      w.recordWritten = false
      for (const known of w.entries.values()) known.state = ''
    }
  }
}
