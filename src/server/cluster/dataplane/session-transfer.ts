// A persistent session moving between nodes (one session per client id):
// what travels, how it is checked on arrival, which copy wins when more than
// one node answers, and the bounded wait for the answers. The protocol is run
// by session-moves.ts over the peer links (messages.ts kinds 0x0A-0x0C):
//
//   new node B (CONNECT, resume)         holder A (session connected or offline)
//   B -> every up peer  session-request {requestId, clientId, stamp, resume}
//                                        closes the live connection (0x8E) if any,
//                                        snapshots subscriptions, queue, ledger,
//                                        incoming QoS 2 PUBLISHes
//   A -> B              session-transfer {session | null}
//   B stores the newest session (subscriptions routed from B, queue), then
//   B -> A              session-ack       A deletes its copy (unroutes)
//   B lets the CONNECT go on: CONNACK session present, the queue is sent.
//
// The holder deletes its copy only after the ack, so a crash of either side
// mid-transfer leaves at least one copy. Pure apart from the timer of the wait.
import type { Stamp } from './hlc.js'
import { compareStamps } from './hlc.js'

/** A stored subscription as aedes' persistence returns it (topic, qos and the MQTT 5 options). */
export interface TransferredSubscription {
  topic: string
  qos: number
  [key: string]: unknown
}

/**
 * One entry of a session's outgoing queue: a QoS 1/2 PUBLISH (waiting, or in
 * flight with its packet identifier) or a PUBREL waiting for PUBCOMP (QoS 2,
 * second phase). Payloads are Buffers (messages.ts carries them as base64).
 */
export interface TransferredPacket {
  cmd: string
  topic?: string
  payload?: Buffer
  qos?: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  brokerId?: string
  brokerCounter?: number
  properties?: Record<string, unknown>
  messageExpiry?: number
  clientId?: string
  /** A released incoming QoS 2 PUBLISH remembered a while (mqtt/persistence.ts): when its PUBREL came; its payload is then a digest. */
  released?: number
  [key: string]: unknown
}

export interface TransferredSession {
  /** When the session was last connected on the holder (HLC): of several copies the newest wins. */
  stamp: Stamp
  subscriptions: TransferredSubscription[]
  queue: TransferredPacket[]
  /** Stamps of the messages queued for it lately (outgoing-queues.ts): a late copy of one of them is not queued again. */
  ledger: string[]
  /**
   * QoS 2 PUBLISHes from the client awaiting its PUBREL, with their packet
   * identifiers and message stamps: a node that gets a resend of one
   * publishes it again under its stamp (the subscribers' ledgers drop it if
   * they had it), so it is delivered once even when the node that took it
   * died before passing it on.
   */
  incoming: TransferredPacket[]
  /**
   * A replica of a session whose home (`rescueFrom`) may be dead: what peers
   * sent that home and it never settled is to be rescued for it.
   */
  rescueFrom?: string
}

/** Throws (with a reason) unless `v` has the shape of a TransferredSession; returns it typed. */
export function checkSession (v: Record<string, unknown>): TransferredSession {
  const { stamp, subscriptions, queue, ledger, incoming, rescueFrom } = v
  if (!Array.isArray(subscriptions) || !Array.isArray(queue)) throw new Error('subscriptions and queue must be arrays')
  subscriptions.forEach(checkSubscription)
  queue.forEach(checkPacket)
  const out: TransferredSession = {
    stamp: stamp as Stamp,
    subscriptions: subscriptions as TransferredSubscription[],
    queue: queue as TransferredPacket[],
    ledger: checkLedger(ledger),
    incoming: checkIncoming(incoming)
  }
  if (rescueFrom !== undefined) {
    if (typeof rescueFrom !== 'string') throw new Error('bad rescueFrom')
    out.rescueFrom = rescueFrom
  }
  return out
}

export function checkLedger (v: unknown): string[] {
  if (v === undefined) return []
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length <= 400)) throw new Error('bad ledger')
  return v as string[]
}

export function checkIncoming (v: unknown): TransferredPacket[] {
  if (v === undefined) return []
  if (!Array.isArray(v)) throw new Error('bad incoming QoS 2 publishes')
  for (const p of v) {
    checkPacket(p)
    if (p.cmd !== 'publish' || !isPacketId(p.messageId)) throw new Error('bad incoming QoS 2 publish')
    if (p.released !== undefined && typeof p.released !== 'number') throw new Error('bad released time')
  }
  return v as TransferredPacket[]
}

/** Throws unless `s` is a stored subscription (topic and QoS). */
export function checkSubscription (s: unknown): asserts s is TransferredSubscription {
  const o = s as Record<string, unknown> | null
  if (typeof o !== 'object' || o === null || typeof o.topic !== 'string' || !isQos(o.qos)) throw new Error('bad subscription')
}

/** Throws unless `p` is a queued PUBLISH (topic, payload, QoS, optional packet identifier) or a PUBREL. */
export function checkPacket (p: unknown): asserts p is TransferredPacket {
  const o = p as Record<string, unknown> | null
  if (typeof o !== 'object' || o === null) throw new Error('bad queued packet')
  if (o.cmd === 'pubrel') {
    if (!isPacketId(o.messageId)) throw new Error('bad pubrel')
    return
  }
  if (o.cmd !== 'publish' || typeof o.topic !== 'string' || !Buffer.isBuffer(o.payload) || !isQos(o.qos)) throw new Error('bad queued publish')
  if (o.messageId !== undefined && o.messageId !== null && !isPacketId(o.messageId)) throw new Error('bad packet identifier')
  if (o.brokerId !== undefined && (typeof o.brokerId !== 'string' || typeof o.brokerCounter !== 'number')) throw new Error('bad message stamp')
}

/**
 * A will as replicated and stored: the message alone, checked; throws on
 * anything malformed. aedes stores a will with its broker's id and no
 * counter (it is stamped when published), which checkPacket refuses: the
 * stamp fields are left out.
 */
export function checkWill (w: unknown): TransferredPacket {
  const o = w as Record<string, unknown> | null
  if (typeof o !== 'object' || o === null || typeof o.topic !== 'string' || !Buffer.isBuffer(o.payload) || (o.qos !== undefined && !isQos(o.qos))) throw new Error('bad will')
  const { brokerId: _b, brokerCounter: _c, messageId: _m, clientId: _i, ...will } = o
  return { ...will, cmd: 'publish' } as TransferredPacket
}

export function isPacketId (v: unknown): v is number { return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535 }

function isQos (v: unknown): boolean { return v === 0 || v === 1 || v === 2 }

/** Whether a session holds anything worth moving. */
export function isEmptySession (s: { subscriptions: unknown[], queue: unknown[], incoming?: unknown[] }): boolean {
  return s.subscriptions.length === 0 && s.queue.length === 0 && (s.incoming?.length ?? 0) === 0
}

/**
 * The copy to resume from: the newest of the home copies, else the newest
 * replica (replica-store.ts), or undefined for none. A home copy is the
 * session itself; a replica may trail it. Newest is by stamp (when the
 * session was last connected); two copies with one stamp are the same
 * session at different moments, and the one whose ledger saw more messages
 * is the later (ties: the first).
 *
 * A home copy with no stamp (read back from disk by a restarted node and
 * not connected since) is older than any copy connected since: it ranks as
 * a replica when a stamped replica answered. That replica is a copy the
 * client moved to while the node was down (a promoted replica, or the
 * replica of the node it moved to since), which got what the disk copy
 * missed; the disk copy kept queueing what the client may have received
 * there already (the 5-node restart-all chaos run, seed 16: QoS 2 messages
 * delivered twice after a fetch chose such a disk copy).
 */
export function bestSession<T extends { session: TransferredSession, replica: boolean }> (copies: T[]): T | undefined {
  const unstamped = (c: T): boolean => c.session.stamp.wall === 0 && c.session.stamp.logical === 0
  const stampedReplica = copies.some((c) => c.replica && !unstamped(c))
  const home = (c: T): boolean => !c.replica && !(stampedReplica && unstamped(c))
  let best: T | undefined
  for (const c of copies) {
    if (best === undefined || (!home(best) && home(c))) { best = c; continue }
    if (home(c) !== home(best)) continue
    const byStamp = compareStamps(c.session.stamp, best.session.stamp)
    if (byStamp > 0 || (byStamp === 0 && c.session.ledger.length > best.session.ledger.length)) best = c
  }
  return best
}

/** One answer to a session-request that carried a session. */
export interface SessionAnswer { peer: string, session: TransferredSession, replica: boolean }

/**
 * The answers to one session-request: resolves with every answer once each
 * asked peer answered, or with those that did by the deadline (a holder that
 * died or a link that dropped must not hold the CONNECT for long).
 */
export class SessionFetch {
  readonly requestId: string
  readonly clientId: string
  private readonly waiting: Set<string>
  private readonly answers: SessionAnswer[] = []
  private readonly timer: NodeJS.Timeout
  private resolve!: (answers: SessionAnswer[]) => void
  readonly done: Promise<SessionAnswer[]>
  /** Peers that had not answered when the time ran out (empty unless it did). */
  unanswered: string[] = []

  constructor (requestId: string, clientId: string, peers: readonly string[], timeoutMs: number) {
    this.requestId = requestId
    this.clientId = clientId
    this.waiting = new Set(peers)
    this.done = new Promise((resolve) => { this.resolve = resolve })
    this.timer = setTimeout(() => { this.unanswered = [...this.waiting]; this.finish() }, timeoutMs)
    if (this.waiting.size === 0) this.finish()
  }

  /** Peers that have not answered (yet). */
  get pending (): string[] { return [...this.waiting] }

  /** An answer from `peer` (`replica`: it holds a replica, not the session); returns false when it was not asked or answered already. */
  answer (peer: string, session: TransferredSession | null, replica = false): boolean {
    if (!this.waiting.delete(peer)) return false
    if (session !== null && !isEmptySession(session)) this.answers.push({ peer, session, replica })
    if (this.waiting.size === 0) this.finish()
    return true
  }

  /** A peer went away: stop waiting for it. */
  forget (peer: string): void {
    if (this.waiting.delete(peer) && this.waiting.size === 0) this.finish()
  }

  private finish (): void {
    clearTimeout(this.timer)
    this.waiting.clear()
    this.resolve(this.answers)
  }
}
