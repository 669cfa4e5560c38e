// The outgoing queues of persistent sessions: QoS 1/2 messages waiting for a
// client or in flight to it (with their packet identifiers), and PUBRELs
// waiting for PUBCOMP, in the order the client is to receive them. One
// instance backs the node's persistence (persistence.ts), another the
// replicas of sessions whose home is another node (cluster/dataplane/
// replica-store.ts), fed the same operations: a replica is the same queue as
// its original by construction.
//
// Each session also has a ledger: the stamps (message-stamp.ts) of the
// messages queued for it lately, delivered or not. A message reaches a
// session once per stamp, however many paths bring it (live from its
// publisher's node, from the session's old home after a move, rescued from a
// peer after a death): this is the only de-duplication of queued messages.
// The ledger travels with the session (snapshots, moves, replicas).
//
// An entry is in one of three states:
//   waiting   cmd 'publish', no messageId: not sent on any connection yet
//   in flight cmd 'publish' with messageId: sent (PUBLISH), awaiting PUBACK / PUBREC
//   released  cmd 'pubrel' with messageId: PUBREL sent, awaiting PUBCOMP
import { createRequire } from 'node:module'
import { stampOf } from './message-stamp.js'

/** An aedes packet as the persistence sees it (aedes-packet plus MQTT fields). */
export interface StoredPacket {
  cmd?: string
  topic: string
  payload: Buffer
  qos?: number
  retain?: boolean
  messageId?: number | undefined
  brokerId?: string
  brokerCounter?: number
  properties?: Record<string, unknown>
  /** Absolute expiry (ms since the epoch) of an MQTT 5 message with a Message Expiry Interval. */
  messageExpiry?: number
  /** The publishing client (no-local subscriptions skip their own messages). */
  clientId?: string
  [key: string]: unknown
}

const require = createRequire(import.meta.url)
/** aedes' packet class: a copy of `original`; with `broker`, stamped with its id and next counter when `original` has none. */
export const AedesPacket = require('aedes-packet') as new (original: Partial<StoredPacket>, broker?: unknown) => StoredPacket

/** How long a session remembers the stamp of a message queued for it, and at most how many (its ledger). */
export const LEDGER_TTL_MS = 60_000
export const LEDGER_MAX = 20_000

/**
 * A copy for the queue: aedes writes packet identifiers onto the objects it
 * holds, so an entry must not be shared between sessions (aedes-packet also
 * resets messageId).
 */
function copyOf (packet: StoredPacket): StoredPacket {
  const entry = new AedesPacket(packet)
  if (packet.clientId !== undefined) entry.clientId = packet.clientId
  return entry
}

interface Queue {
  entries: StoredPacket[]
  /** Stamp -> time noted: what was queued lately (see the top of the file). */
  ledger: Map<string, number>
}

export class OutgoingQueues {
  private readonly queues = new Map<string, Queue>()
  private total = 0
  private readonly maxPerSession: number
  private readonly onDrop: (clientId: string, entry: StoredPacket) => void
  private readonly now: () => number

  /** `maxPerSession` 0: unlimited; `onDrop` is told about every entry dropped for the bound. */
  constructor (maxPerSession: number, onDrop: (clientId: string, entry: StoredPacket) => void = () => {}, now: () => number = Date.now) {
    this.maxPerSession = maxPerSession
    this.onDrop = onDrop
    this.now = now
  }

  /** Entries of every queue. */
  get count (): number { return this.total }
  countFor (clientId: string): number { return this.queues.get(clientId)?.entries.length ?? 0 }
  has (clientId: string): boolean { return this.queues.has(clientId) }
  sessions (): IterableIterator<string> { return this.queues.keys() }

  private queueOf (clientId: string): Queue {
    let q = this.queues.get(clientId)
    if (q === undefined) {
      q = { entries: [], ledger: new Map() }
      this.queues.set(clientId, q)
    }
    return q
  }

  /** Whether a message with this stamp was queued for the session lately. */
  seen (clientId: string, stamp: string): boolean {
    return this.queues.get(clientId)?.ledger.has(stamp) === true
  }

  /** Notes a stamp in the session's ledger (also for messages not queued: a copy of it must not be later). */
  note (clientId: string, stamp: string): void {
    const q = this.queueOf(clientId)
    const now = this.now()
    q.ledger.delete(stamp)
    q.ledger.set(stamp, now)
    // Oldest first: the Map keeps insertion order.
    for (const [k, at] of q.ledger) {
      if (q.ledger.size <= LEDGER_MAX && now - at <= LEDGER_TTL_MS) break
      q.ledger.delete(k)
    }
  }

  /**
   * Queues a copy of `packet` unless the session's ledger holds its stamp
   * (returns undefined then). It goes before the first waiting entry
   * `before` accepts, else at the end. A full queue drops its oldest entry.
   */
  enqueue (clientId: string, packet: StoredPacket, beforeEntry?: StoredPacket): StoredPacket | undefined {
    const stamp = stampOf(packet)
    if (stamp !== undefined && this.seen(clientId, stamp)) return undefined
    const q = this.queueOf(clientId)
    if (stamp !== undefined) this.note(clientId, stamp)
    const max = this.maxPerSession
    if (max > 0 && q.entries.length >= max) {
      // Oldest first: the newest state is worth more to a reconnecting
      // subscriber than the oldest backlog.
      const dropped = q.entries.shift()!
      this.total--
      this.onDrop(clientId, dropped)
    }
    const entry = copyOf(packet)
    const at = beforeEntry !== undefined ? q.entries.indexOf(beforeEntry) : orderedPosition(q.entries, entry)
    if (at < 0 || at >= q.entries.length) q.entries.push(entry)
    else q.entries.splice(at, 0, entry)
    this.total++
    return entry
  }

  /** The entry of a message (by stamp) in the session's queue, if there. */
  find (clientId: string, stamp: string): StoredPacket | undefined {
    const q = this.queues.get(clientId)
    if (q === undefined) return undefined
    for (const e of q.entries) if (e.cmd !== 'pubrel' && stampOf(e) === stamp) return e
    return undefined
  }

  /** The entry in flight or released under packet identifier `messageId`. */
  byMessageId (clientId: string, messageId: number): StoredPacket | undefined {
    return this.queues.get(clientId)?.entries.find((e) => e.messageId === messageId)
  }

  /** The session's entries in delivery order (the live array: callers must not change it). */
  entries (clientId: string): readonly StoredPacket[] {
    return this.queues.get(clientId)?.entries ?? []
  }

  /**
   * A message (by stamp) got packet identifier `messageId` for its delivery:
   * it is in flight. Returns the entry, or undefined when it is not queued.
   */
  assign (clientId: string, stamp: string, messageId: number): StoredPacket | undefined {
    const e = this.find(clientId, stamp)
    if (e !== undefined) e.messageId = messageId
    return e
  }

  /** The client answered PUBREC: the PUBLISH under the PUBREL's packet identifier becomes that PUBREL. False when there is none. */
  release (clientId: string, pubrel: StoredPacket): boolean {
    const entries = this.queues.get(clientId)?.entries
    if (entries === undefined) return false
    const i = entries.findIndex((e) => e.messageId === pubrel.messageId)
    if (i < 0) return false
    entries[i] = pubrel
    return true
  }

  /**
   * Removes and returns an entry: the one under `messageId` (PUBACK, PUBCOMP,
   * a failing PUBREC), or, without one, the waiting entry with the stamp (a
   * message the session is not to receive after all).
   */
  clear (clientId: string, packet: { messageId?: number | undefined, brokerId?: string | undefined, brokerCounter?: number | undefined }): StoredPacket | undefined {
    const q = this.queues.get(clientId)
    if (q === undefined) return undefined
    const { messageId } = packet
    const stamp = messageId === undefined ? stampOf(packet) : undefined
    if (messageId === undefined && stamp === undefined) return undefined
    const i = q.entries.findIndex((e) => messageId === undefined ? e.messageId === undefined && e.cmd !== 'pubrel' && stampOf(e) === stamp : e.messageId === messageId)
    if (i < 0) return undefined
    const [entry] = q.entries.splice(i, 1)
    this.total--
    return entry
  }

  /** Copies of a session's queue, oldest first, and its ledger: what travels when it moves. */
  export (clientId: string): { queue: StoredPacket[], ledger: string[] } {
    const q = this.queues.get(clientId)
    if (q === undefined) return { queue: [], ledger: [] }
    return { queue: q.entries.map((p) => ({ ...p })), ledger: [...q.ledger.keys()] }
  }

  /**
   * Takes a session moved from another node (or a snapshot for a replica):
   * its entries keep their state (packet identifiers, PUBRELs), its ledger
   * is merged into this one. The bound applies as to any enqueue.
   */
  import (clientId: string, queue: readonly StoredPacket[], ledger: readonly string[] = []): void {
    const q = this.queueOf(clientId)
    for (const stamp of ledger) this.note(clientId, stamp)
    for (const p of queue) {
      const stamp = stampOf(p)
      if (stamp !== undefined) this.note(clientId, stamp)
      const max = this.maxPerSession
      if (max > 0 && q.entries.length >= max) {
        const dropped = q.entries.shift()!
        this.total--
        this.onDrop(clientId, dropped)
      }
      q.entries.push(p.cmd === 'pubrel' ? { ...p } : Object.assign(copyOf(p), p.messageId === undefined ? {} : { messageId: p.messageId }))
      this.total++
    }
  }

  /**
   * Messages of a session's queue that a copy of it with `ledger` never had
   * and that were queued here lately (within the ledger's memory, so a
   * client that got them through that copy long ago would be known to it):
   * fresh copies, without packet identifiers, oldest first.
   */
  unknownTo (clientId: string, ledger: readonly string[]): StoredPacket[] {
    const q = this.queues.get(clientId)
    if (q === undefined) return []
    const known = new Set(ledger)
    const since = this.now() - LEDGER_TTL_MS
    const out: StoredPacket[] = []
    for (const e of q.entries) {
      const stamp = stampOf(e)
      if (e.cmd === 'pubrel' || stamp === undefined || known.has(stamp) || (q.ledger.get(stamp) ?? 0) < since) continue
      out.push(copyOf(e))
    }
    return out
  }

  /** Deletes a session's queue and ledger; returns how many entries it held. */
  drop (clientId: string): number {
    const n = this.queues.get(clientId)?.entries.length ?? 0
    this.queues.delete(clientId)
    this.total -= n
    return n
  }

  clearAll (): void {
    this.queues.clear()
    this.total = 0
  }
}

/**
 * Where a message goes in a queue: at the end, unless waiting entries of
 * the same sender (broker id) with a higher counter are there already (a
 * copy that came by a slower path: a late copy, a rescue, a link that
 * redelivered after another): then before the first of them, so every
 * sender's messages stay in its order. Scans back from the end over waiting
 * entries only; what is in flight keeps its place.
 */
function orderedPosition (entries: readonly StoredPacket[], entry: StoredPacket): number {
  const { brokerId, brokerCounter } = entry
  if (brokerId === undefined || brokerCounter === undefined) return entries.length
  let at = entries.length
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!
    if (e.messageId !== undefined || e.cmd === 'pubrel') break
    if (e.brokerId !== brokerId) continue
    if ((e.brokerCounter ?? 0) > brokerCounter) at = i
    else break
  }
  return at
}
