// The outgoing queues of persistent sessions: QoS 1/2 messages waiting for a
// client or in flight to it (with their packet identifiers), and PUBRELs
// waiting for PUBCOMP. The semantics are aedes-persistence's memory store's,
// with a bound per session and the fixes for the aedes defects noted below.
// One instance backs the node's persistence (persistence.ts); another holds
// the replicas of sessions whose home is another node (cluster/
// session-replication.ts), fed the same operations, so a replica is the
// same queue as its original by construction.
import { createRequire } from 'node:module'

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
  messageExpiry?: number
  /**
   * The message's name across the cluster (`sending process/its number`),
   * set by the cluster data plane when it queues the message: a session
   * moving between nodes can then tell a message it already holds (or
   * delivered) from a new one, whatever stamp each node gave it.
   */
  msgId?: string
  [key: string]: unknown
}

const require = createRequire(import.meta.url)
/** aedes' packet class: a copy of `original`; with `broker`, stamped with its id and next counter when `original` has none. */
export const AedesPacket = require('aedes-packet') as new (original: Partial<StoredPacket>, broker?: unknown) => StoredPacket

/**
 * A copy for the queue, as the memory store makes: aedes assigns packet
 * identifiers per delivery on the objects it holds, so a queued entry must not
 * be shared between sessions (aedes-packet also resets messageId).
 */
function queued (packet: StoredPacket): StoredPacket {
  const entry = new AedesPacket(packet)
  if (packet.msgId !== undefined) entry.msgId = packet.msgId
  return entry
}

export class OutgoingQueues {
  private readonly queues = new Map<string, StoredPacket[]>()
  private total = 0
  private readonly maxPerSession: number
  private readonly onDrop: () => void

  /** `maxPerSession` 0: unlimited; `onDrop` is told about every entry dropped for the bound. */
  constructor (maxPerSession: number, onDrop: () => void = () => {}) {
    this.maxPerSession = maxPerSession
    this.onDrop = onDrop
  }

  /** Entries of every queue. */
  get count (): number { return this.total }
  countFor (clientId: string): number { return this.queues.get(clientId)?.length ?? 0 }

  /**
   * Appends a copy of `packet` (without a packet identifier), or inserts it
   * before the first entry `before` accepts; a full queue drops its oldest
   * entry.
   */
  enqueue (clientId: string, packet: StoredPacket, before?: (entry: StoredPacket) => boolean): StoredPacket {
    let queue = this.queues.get(clientId)
    if (queue === undefined) {
      queue = []
      this.queues.set(clientId, queue)
    }
    const max = this.maxPerSession
    if (max > 0 && queue.length >= max) {
      // Oldest first: the newest state is worth more to a reconnecting
      // subscriber than the oldest backlog.
      queue.shift()
      this.total--
      this.onDrop()
    }
    const entry = queued(packet)
    const at = before === undefined ? -1 : queue.findIndex(before)
    if (at < 0) queue.push(entry)
    else queue.splice(at, 0, entry)
    this.total++
    return entry
  }

  /**
   * A message got its packet identifier for a delivery, or a PUBREL replaces
   * its PUBLISH (QoS 2, second phase). Throws "no such packet" when nothing
   * matches, as aedes expects.
   */
  update (clientId: string, packet: StoredPacket): void {
    const queue = this.queues.get(clientId) ?? []
    // A PUBREL carries no broker stamp: it is matched by packet identifier
    // alone and replaces its PUBLISH. aedes-persistence matches on brokerId
    // first, and undefined === undefined makes a PUBREL match an earlier
    // stored PUBREL and rewrite its identifier in place: two PUBRECs handled
    // back to back then send PUBREL N+1 twice and never PUBREL N, and message
    // N is never released to the subscriber.
    // On a reconnect, aedes replays a stored PUBREL through QoSPacket, which
    // stamps this broker's id and a fresh counter on it: a PUBREL is still
    // matched by its identifier alone (otherwise the replay fails with "no
    // such packet", the connection is dropped, and the QoS 2 flow never
    // completes: aedes defect, see docs/data-plane.md).
    if (packet.brokerId === undefined || packet.cmd === 'pubrel') {
      for (let i = 0; i < queue.length; i++) {
        if (queue[i]!.messageId === packet.messageId) {
          queue[i] = packet
          return
        }
      }
      throw new Error('no such packet')
    }
    for (const entry of queue) {
      // Packet identifiers wrap at 65535: only (brokerId, brokerCounter) is unique.
      if (entry.brokerId === packet.brokerId && entry.brokerCounter === packet.brokerCounter) {
        entry.messageId = packet.messageId
        return
      }
    }
    throw new Error('no such packet')
  }

  /**
   * The client acknowledged `messageId` (PUBACK, PUBCOMP): removes and
   * returns its entry. aedes also clears a message it decided not to send
   * (authorizeForward said no) before it got an identifier: that one is
   * matched by its stamp. Never "the first entry without an identifier",
   * which would be some other message waiting.
   */
  clear (clientId: string, packet: { messageId?: number | undefined, brokerId?: string | undefined, brokerCounter?: number | undefined }): StoredPacket | undefined {
    const queue = this.queues.get(clientId)
    if (queue === undefined) return undefined
    const { messageId, brokerId, brokerCounter } = packet
    if (messageId === undefined && (brokerId === undefined || brokerCounter === undefined)) return undefined
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!
      if (messageId === undefined ? entry.messageId === undefined && entry.brokerId === brokerId && entry.brokerCounter === brokerCounter : entry.messageId === messageId) {
        queue.splice(i, 1)
        this.total--
        if (queue.length === 0) this.queues.delete(clientId)
        return entry
      }
    }
    return undefined
  }

  /**
   * The entries to replay to a reconnecting client, oldest first (a snapshot:
   * aedes clears entries while it streams them).
   *
   * aedes defect: a session whose subscriptions overlap (`a/#` and `a/b`)
   * gets one queue entry per matching subscription. Live, aedes sends one
   * copy and clears the other; but a session that was offline got every copy
   * on reconnect, and one of them was never cleared. Unsent copies of a
   * message already in the queue are dropped here, before the replay.
   */
  replay (clientId: string): StoredPacket[] {
    const queue = this.queues.get(clientId)
    if (queue === undefined) return []
    const seen = new Set<string>()
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!
      if (entry.brokerId === undefined || entry.brokerCounter === undefined) continue
      const key = `${entry.brokerId}\u0000${entry.brokerCounter}`
      if (seen.has(key) && entry.messageId === undefined && entry.cmd !== 'pubrel') {
        queue.splice(i--, 1)
        this.total--
      } else {
        seen.add(key)
      }
    }
    return [...queue]
  }

  /** Where the queue holds the message with this stamp not yet sent (no packet identifier): its index, or -1. */
  waiting (clientId: string, packet: { brokerId?: string | undefined, brokerCounter?: number | undefined }): number {
    if (packet.brokerId === undefined || packet.brokerCounter === undefined) return -1
    return this.queues.get(clientId)?.findIndex((e) => e.messageId === undefined && e.cmd !== 'pubrel' && e.brokerCounter === packet.brokerCounter && e.brokerId === packet.brokerId) ?? -1
  }

  /** Copies of a session's queue (waiting and in-flight PUBLISHes, pending PUBRELs), oldest first. */
  export (clientId: string): StoredPacket[] {
    return (this.queues.get(clientId) ?? []).map((p) => ({ ...p }))
  }

  /**
   * Appends entries moved from another node (or promoted from a replica),
   * keeping their packet identifiers: an in-flight message is resent with the
   * same identifier, a PUBREL matched by it. The bound applies as to any
   * enqueue.
   */
  import (clientId: string, packets: StoredPacket[]): void {
    for (const p of packets) {
      const entry = this.enqueue(clientId, p)
      const queue = this.queues.get(clientId)!
      if (p.cmd === 'pubrel') queue[queue.length - 1] = { ...p }
      else if (p.messageId !== undefined && p.messageId !== null) entry.messageId = p.messageId
    }
  }

  /** Deletes a session's queue; returns how many entries it held. */
  drop (clientId: string): number {
    const n = this.queues.get(clientId)?.length ?? 0
    this.queues.delete(clientId)
    this.total -= n
    return n
  }

  clearAll (): void {
    this.queues.clear()
    this.total = 0
  }
}
