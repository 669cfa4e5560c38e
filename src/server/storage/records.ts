// What the store holds per retained topic and per persistent session, and
// the checks a record read back from disk goes through (a record that does
// not pass is counted and skipped, never handed to the broker).
import type { RetainedEntry, Qos } from '../cluster/dataplane/retained-store.js'
import type { StoredPacket } from '../mqtt/outgoing-queues.js'
import type { StoredSubscription } from '../mqtt/persistence-observer.js'
import { checkIncoming, checkLedger, checkPacket, checkSubscription, type TransferredPacket } from '../cluster/dataplane/session-transfer.js'
import { transferable } from '../cluster/dataplane/session-replication.js'

export const RETAINED = 'r\u0000'
export const SESSION = 's\u0000'
/** `q\0<clientId>\0<id>`: one entry of a session's queue (MQTT client ids never hold U+0000). */
export const QUEUE = 'q\u0000'

export function queueKey (clientId: string, id: number): string {
  return `${QUEUE}${clientId}\u0000${id.toString(36)}`
}

/** The client id and entry id of a queue key. */
export function parseQueueKey (key: string): { clientId: string, id: number } {
  const at = key.lastIndexOf('\u0000')
  const id = parseInt(key.slice(at + 1), 36)
  if (at <= QUEUE.length - 1 || !Number.isSafeInteger(id)) throw new Error('bad queue key')
  return { clientId: key.slice(QUEUE.length, at), id }
}

/**
 * One queue entry on disk: a waiting or in-flight PUBLISH (with its packet
 * identifier) or a PUBREL; `o` orders the entries of a session (a message
 * that came by a slower path goes between two others: o between theirs).
 */
export interface QueueRecord { o: number, p: TransferredPacket }

export function queueRecord (order: number, packet: StoredPacket): QueueRecord {
  return { o: order, p: transferable(packet) }
}

export function checkQueueRecord (v: unknown): QueueRecord {
  const r = v as QueueRecord
  if (typeof r !== 'object' || r === null || typeof r.o !== 'number' || !Number.isFinite(r.o)) throw new Error('bad queue record')
  checkPacket(r.p)
  return r
}

/** A retained entry on disk: the stamp as [wall, logical, node]; an empty payload is a tombstone. */
export interface RetainedRecord {
  s: [number, number, string]
  p: Buffer
  q: Qos
  o?: Record<string, unknown>
}

export function retainedRecord (e: RetainedEntry): RetainedRecord {
  const r: RetainedRecord = { s: [e.stamp.wall, e.stamp.logical, e.stamp.node], p: e.payload, q: e.qos }
  if (e.properties !== undefined) r.o = e.properties
  return r
}

export function retainedEntry (topic: string, v: unknown): RetainedEntry {
  const r = v as RetainedRecord
  if (typeof r !== 'object' || r === null || !Array.isArray(r.s) || r.s.length !== 3 || !Buffer.isBuffer(r.p) || ![0, 1, 2].includes(r.q)) throw new Error('bad retained record')
  const [wall, logical, node] = r.s
  if (typeof wall !== 'number' || typeof logical !== 'number' || typeof node !== 'string') throw new Error('bad retained stamp')
  return { topic, stamp: { wall, logical, node }, payload: r.p, qos: r.q, ...(r.o === undefined ? {} : { properties: r.o }) }
}

/** A persistent session on disk, but for its queue (one record per entry, QUEUE). */
export interface SessionRecord {
  subscriptions: StoredSubscription[]
  /** Stamps of the messages queued for it lately (written with the rest, at most every few seconds for queueing alone). */
  ledger: string[]
  /** The client's QoS 2 PUBLISHes awaiting its PUBREL. */
  incoming: TransferredPacket[]
  /** Session Expiry Interval (s) of its last connection; undefined: never expires (MQTT 3.1.1). */
  expiry?: number
  /** When its client disconnected (ms since the epoch); undefined while connected. */
  disconnectedAt?: number
}

export function sessionRecord (parts: { subscriptions: StoredSubscription[], ledger: string[], incoming: StoredPacket[], expiry: number | undefined, disconnectedAt: number | undefined }): SessionRecord {
  const r: SessionRecord = {
    subscriptions: parts.subscriptions.map((s) => ({ ...s })),
    ledger: parts.ledger,
    incoming: parts.incoming.map(transferable)
  }
  if (parts.expiry !== undefined) r.expiry = parts.expiry
  if (parts.disconnectedAt !== undefined) r.disconnectedAt = parts.disconnectedAt
  return r
}

/** Throws unless `v` is a session record. */
export function checkSessionRecord (v: unknown): SessionRecord {
  const r = v as SessionRecord
  if (typeof r !== 'object' || r === null || !Array.isArray(r.subscriptions)) throw new Error('bad session record')
  r.subscriptions.forEach(checkSubscription)
  checkLedger(r.ledger)
  checkIncoming(r.incoming)
  if (r.expiry !== undefined && typeof r.expiry !== 'number') throw new Error('bad session expiry')
  if (r.disconnectedAt !== undefined && typeof r.disconnectedAt !== 'number') throw new Error('bad disconnect time')
  return r
}

/** Whether a session offline since `disconnectedAt` with `expiry` seconds has expired by `now`. */
export function expired (r: SessionRecord, now: number): boolean {
  if (r.expiry === undefined || r.expiry >= 0xFFFFFFFF) return false
  return (r.disconnectedAt ?? now) + r.expiry * 1000 <= now
}
