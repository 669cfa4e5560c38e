// What the data plane says over a peer link: the payload of one DATA record.
// The link moves opaque bytes; this file gives them meaning.
//
//   message = kind (uint8) | body
//   str16 = length (uint16 BE) | UTF-8;  bytes = length (uint32 BE) | bytes
//   PUBLISH       0x01 flags (uint8: qos bits 0-1, retain 2, plain 3, expiry 4) | origin str16
//                      | brokerId str16 | brokerCounter (float64 BE) | [messageExpiry (float64 BE) if flag 4]
//                      | topic str16 | shared count (uint16) | shared keys str16... | sessions count (uint16)
//                      | client ids str16... | properties bytes (JSON, empty: none) | payload bytes
//   RETAINED      0x02 entry
//   ROUTE_DELTA   0x03 JSON bytes {version, filter, count}
//   ROUTE_TABLE   0x04 JSON bytes {version, filters}
//   SYNC_DIGEST   0x05 JSON bytes {round} | digest bytes
//   SYNC_SUMMARY  0x06 JSON bytes {round, buckets, summary}
//   SYNC_PUSH     0x07 JSON bytes {round, pull} | entry count (uint32) | entries
//   SYNC_ENTRIES  0x08 JSON bytes {round} | entry count (uint32) | entries
//   CLIENT_CONNECTED 0x09 JSON bytes {clientId, stamp}   (one session per client id)
//   SESSION_REQUEST  0x0A JSON bytes {requestId, clientId, stamp, resume}   (session move, session-transfer.ts)
//   SESSION_TRANSFER 0x0B JSON bytes {requestId, clientId, session: null | {stamp, subscriptions, queue, ledger, incoming, rescueFrom?}, replica?}
//   SESSION_ACK      0x0C JSON bytes {requestId, clientId}
//   REPLICA          0x0D JSON bytes {ops: [{clientId, op, ...}]}   (session replicas, replica-store.ts)
//   RESCUE           0x0E JSON bytes {requestId} | the PUBLISH body   (what a dead node never settled)
//   RESCUE_REQUEST   0x0F JSON bytes {from, requestId, filters?, takeover?}   (takeover: the sender has promoted the sessions of `from`)
//   RESCUE_DONE      0x10 JSON bytes {requestId}
//   BARRIER_REQUEST  0x11 JSON bytes {id, from}   (a session moved away from `from`)
//   BARRIER_DONE     0x12 JSON bytes {id}
//   REPLICA_LOST     0x13 JSON bytes {clientIds}
//   SESSIONS_HELD    0x14 JSON bytes {clientIds}   (sessions read from disk, session-reconcile.ts)
//   SESSIONS_NEWER   0x15 JSON bytes {clientIds}
//   REPLICAS_DONE    0x16 JSON bytes {home}   (every snapshot for this link sent before it)
//   START_SETTLED    0x17 JSON bytes {}   (the sender's start window is over, start-window.ts)
//   entry = topic str16 | stamp str16 (encodeStamp) | qos uint8 | properties bytes | payload bytes
//
// Publishes and retained entries are binary (payloads are not copied into
// JSON); control messages are JSON, readable in a capture. MQTT 5 properties
// travel as JSON with Buffers (correlation data) as {"$b64": "..."};
// hop-local properties (topic alias, subscription identifiers, the Message
// Expiry Interval, which travels as the absolute `messageExpiry` so time in
// transit and in queues counts) are dropped: the delivering node sets them
// per subscriber.
import { decodeStamp, encodeStamp, type Stamp } from './hlc.js'
import type { BucketSummary, Qos, RetainedEntry } from './retained-store.js'
import type { RouteDelta, RouteTable } from './routing-table.js'
import { checkSession, type TransferredSession } from './session-transfer.js'
import { checkReplicaOp, encodeReplicaOp, type ClientReplicaOp } from './replica-store.js'

/** MQTT 5 PUBLISH properties that cross a hop (section 3.3.2.3). */
export type PublishProperties = Record<string, unknown>

/** A publish sent to a peer for delivery to its local subscribers; never forwarded further. */
export interface ForwardedPublish {
  /** The node the client published on (the bus channels' `Node`). */
  origin: string
  /** The message's stamp (message-stamp.ts): its identity, kept on every node it reaches. */
  brokerId: string
  brokerCounter: number
  topic: string
  payload: Buffer
  qos: Qos
  retain: boolean
  properties?: PublishProperties
  /** Absolute expiry (ms since the epoch) of a message with a Message Expiry Interval. */
  messageExpiry?: number
  /** Deliver to the receiving node's ordinary (non-shared) subscribers. */
  plain: boolean
  /** `$share/g/f` keys for which the receiving node was picked to deliver to one of its members. */
  shared: string[]
  /** Queue it for these sessions only (late copies for a session that moved to the receiver). */
  sessions: string[]
}

export type DataPlaneMessage =
  | { kind: 'publish', publish: ForwardedPublish }
  | { kind: 'retained', entry: RetainedEntry }
  | { kind: 'route-delta', delta: RouteDelta }
  | { kind: 'route-table', table: RouteTable }
  | { kind: 'sync-digest', round: number, digest: Buffer }
  | { kind: 'sync-summary', round: number, buckets: number[], summary: BucketSummary }
  | { kind: 'sync-push', round: number, pull: string[], entries: RetainedEntry[] }
  | { kind: 'sync-entries', round: number, entries: RetainedEntry[] }
  /** A client connected on the sender at HLC time `stamp`: an older connection of the same id elsewhere is taken over. */
  | { kind: 'client-connected', clientId: string, stamp: Stamp }
  /** A client resuming (`resume`) or starting clean connects on the sender: the holder of its session hands it over (or drops it). */
  | { kind: 'session-request', requestId: string, clientId: string, stamp: Stamp, resume: boolean, since?: Stamp }
  /**
   * The answer to a session-request: the session, or null when the sender
   * holds none; `replica`: the sender holds only a replica (its home did not
   * answer, or died), which counts only when no home copy arrives.
   */
  | { kind: 'session-transfer', requestId: string, clientId: string, session: TransferredSession | null, replica?: boolean }
  /** The requester stored the transferred session: the holder may now delete its copy. */
  | { kind: 'session-ack', requestId: string, clientId: string }
  /** Changes of sessions whose home is the sender, for the replicas the receiver holds, in order. */
  | { kind: 'replica', ops: ClientReplicaOp[] }
  /** A publish the sender had sent to `from` (rescue-request `requestId`), which died before settling it. */
  | { kind: 'rescue', requestId: string, publish: ForwardedPublish }
  /** The sender takes over sessions of `from`, which died (or restarted): send your unsettled publishes to it. */
  /**
   * `filters`: the requesting sessions' subscriptions; only publishes matching
   * one are sent back (absent: every publish `from` never settled).
   */
  | { kind: 'rescue-request', from: string, requestId: string, filters?: string[], takeover?: boolean }
  /** The sender sent every rescue it had for request `requestId`. */
  | { kind: 'rescue-done', requestId: string }
  /**
   * A session moved from `from` to the sender: answer barrier-done once
   * everything you sent `from` so far is settled there (so every late copy
   * reached the sender through `from`).
   */
  | { kind: 'barrier-request', id: string, from: string }
  | { kind: 'barrier-done', id: string }
  /** The sender no longer holds the replicas of these sessions of the receiver (it took them over, then gave them back): send snapshots again. */
  | { kind: 'replica-lost', clientIds: string[] }
  /**
   * Sessions at home on the sender read back from its disk, not connected
   * since (session-reconcile.ts): does the receiver hold a newer copy?
   */
  | { kind: 'sessions-held', clientIds: string[] }
  /** Of the sessions the receiver said it held from disk, those the sender holds a newer copy of: the receiver's copy goes. */
  | { kind: 'sessions-newer', clientIds: string[] }
  /**
   * The sender (a home) sent, before this, a snapshot of every session of
   * its whose replica the receiver is to hold; `home` is its identity
   * (ReplicaSnapshot.home). Replicas of the sender that the receiver read
   * back from its disk and that were not refreshed are settled by it.
   */
  | { kind: 'replicas-done', home: string }
  /**
   * The sender's start window is over (start-window.ts): the sessions it
   * took over from members that did not come back are stored, and their
   * routes were sent before this.
   */
  | { kind: 'start-settled' }

const KIND = { publish: 1, retained: 2, 'route-delta': 3, 'route-table': 4, 'sync-digest': 5, 'sync-summary': 6, 'sync-push': 7, 'sync-entries': 8, 'client-connected': 9, 'session-request': 10, 'session-transfer': 11, 'session-ack': 12, replica: 13, rescue: 14, 'rescue-request': 15, 'rescue-done': 16, 'barrier-request': 17, 'barrier-done': 18, 'replica-lost': 19, 'sessions-held': 20, 'sessions-newer': 21, 'replicas-done': 22, 'start-settled': 23 } as const
const HOP_LOCAL = new Set(['topicAlias', 'subscriptionIdentifier', 'messageExpiryInterval'])

/** A DATA payload that is not a valid data-plane message (counted; the link stays up). */
export class MessageDecodeError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'MessageDecodeError'
  }
}

/**
 * Writes a message into one buffer, grown as needed: a publish costs one
 * allocation, not one per field and a concatenation.
 */
class Writer {
  private buf: Buffer
  private off = 0
  constructor (sizeHint = 256) { this.buf = Buffer.allocUnsafe(sizeHint) }

  private room (n: number): void {
    if (this.off + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n))
    this.buf.copy(next, 0, 0, this.off)
    this.buf = next
  }

  u8 (v: number): void { this.room(1); this.buf[this.off++] = v }
  u16 (v: number): void { this.room(2); this.off = this.buf.writeUInt16BE(v, this.off) }
  u32 (v: number): void { this.room(4); this.off = this.buf.writeUInt32BE(v, this.off) }
  f64 (v: number): void { this.room(8); this.off = this.buf.writeDoubleBE(v, this.off) }
  str16 (s: string): void {
    const n = Buffer.byteLength(s, 'utf8')
    if (n > 0xffff) throw new RangeError('string longer than 65535 bytes')
    this.u16(n)
    this.room(n)
    this.off += this.buf.write(s, this.off, 'utf8')
  }

  bytes (b: Buffer): void { this.u32(b.length); this.room(b.length); this.off += b.copy(this.buf, this.off) }
  json (v: unknown): void { this.bytes(Buffer.from(JSON.stringify(base64Buffers(v)), 'utf8')) }
  /** The message; copied out when growing left more than a quarter of the buffer unused (a held message keeps its buffer). */
  done (): Buffer {
    const out = this.buf.subarray(0, this.off)
    return this.off * 4 < this.buf.length * 3 ? Buffer.from(out) : out
  }
}

class Reader {
  private off = 0
  constructor (private readonly b: Buffer) {}
  private need (n: number): void { if (this.off + n > this.b.length) throw new MessageDecodeError('truncated message') }
  u8 (): number { this.need(1); return this.b[this.off++]! }
  u16 (): number { this.need(2); const v = this.b.readUInt16BE(this.off); this.off += 2; return v }
  u32 (): number { this.need(4); const v = this.b.readUInt32BE(this.off); this.off += 4; return v }
  f64 (): number { this.need(8); const v = this.b.readDoubleBE(this.off); this.off += 8; return v }
  str16 (): string { const n = this.u16(); this.need(n); const s = this.b.toString('utf8', this.off, this.off + n); this.off += n; return s }
  bytes (): Buffer { const n = this.u32(); this.need(n); const s = this.b.subarray(this.off, this.off + n); this.off += n; return s }
  json (): unknown {
    try {
      return JSON.parse(this.bytes().toString('utf8'), bufferReviver)
    } catch (err) {
      if (err instanceof MessageDecodeError) throw err
      throw new MessageDecodeError('bad JSON in message')
    }
  }

  end (): void { if (this.off !== this.b.length) throw new MessageDecodeError('trailing bytes in message') }
}

/**
 * A copy of `v` with every Buffer as {$b64}, for JSON.stringify. Not a
 * replacer: JSON.stringify calls a Buffer's toJSON before any replacer sees
 * it, which makes an array of one number per byte (a 64 KiB payload took
 * about 13 ms; 40% of a survivor's CPU under the 64 KiB reconnect storm).
 * Plain objects and arrays are walked; anything else is left to stringify.
 */
function base64Buffers (v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v
  if (Buffer.isBuffer(v)) return { $b64: v.toString('base64') }
  if (Array.isArray(v)) return v.map(base64Buffers)
  const proto: unknown = Object.getPrototypeOf(v)
  if (proto !== Object.prototype && proto !== null) return v
  const out: Record<string, unknown> = {}
  for (const [k, value] of Object.entries(v)) out[k] = base64Buffers(value)
  return out
}

function bufferReviver (_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && typeof (value as { $b64?: unknown }).$b64 === 'string' && Object.keys(value).length === 1) {
    return Buffer.from((value as { $b64: string }).$b64, 'base64')
  }
  return value
}

function forwardable (properties: PublishProperties | undefined): PublishProperties | undefined {
  if (properties === undefined) return undefined
  const out: PublishProperties = {}
  let any = false
  for (const [k, v] of Object.entries(properties)) {
    if (HOP_LOCAL.has(k) || v === undefined) continue
    out[k] = v
    any = true
  }
  return any ? out : undefined
}

function writeProperties (w: Writer, properties: PublishProperties | undefined): void {
  const p = forwardable(properties)
  if (p === undefined) w.u32(0)
  else w.json(p)
}

function writeEntry (w: Writer, e: RetainedEntry): void {
  w.str16(e.topic)
  w.str16(encodeStamp(e.stamp))
  w.u8(e.qos)
  writeProperties(w, e.properties)
  w.bytes(e.payload)
}

export function encodeMessage (m: DataPlaneMessage): Buffer {
  const w = new Writer(m.kind === 'publish' ? publishSizeHint(m.publish) : undefined)
  w.u8(KIND[m.kind])
  switch (m.kind) {
    case 'publish': writePublish(w, m.publish); break
    case 'rescue': w.json({ requestId: m.requestId }); writePublish(w, m.publish); break
    case 'rescue-done': w.json({ requestId: m.requestId }); break
    case 'rescue-request': w.json({ from: m.from, requestId: m.requestId, ...(m.filters === undefined ? {} : { filters: m.filters }), ...(m.takeover === true ? { takeover: true } : {}) }); break
    case 'barrier-request': w.json({ id: m.id, from: m.from }); break
    case 'barrier-done': w.json({ id: m.id }); break
    case 'replica-lost':
    case 'sessions-held':
    case 'sessions-newer': w.json({ clientIds: m.clientIds }); break
    case 'replicas-done': w.json({ home: m.home }); break
    case 'start-settled': w.json({}); break
    case 'retained': writeEntry(w, m.entry); break
    case 'route-delta': w.json(m.delta); break
    case 'route-table': w.json(m.table); break
    case 'client-connected': w.json({ clientId: m.clientId, stamp: encodeStamp(m.stamp) }); break
    case 'session-request': w.json({ requestId: m.requestId, clientId: m.clientId, stamp: encodeStamp(m.stamp), resume: m.resume, ...(m.since === undefined ? {} : { since: encodeStamp(m.since) }) }); break
    case 'session-transfer':
      w.json({
        requestId: m.requestId,
        clientId: m.clientId,
        session: m.session === null ? null : { ...m.session, stamp: encodeStamp(m.session.stamp) },
        ...(m.replica === true ? { replica: true } : {})
      })
      break
    case 'session-ack': w.json({ requestId: m.requestId, clientId: m.clientId }); break
    case 'replica': w.json({ ops: m.ops.map((op) => encodeReplicaOp(op, encodeStamp)) }); break
    case 'sync-digest': w.json({ round: m.round }); w.bytes(m.digest); break
    case 'sync-summary': w.json({ round: m.round, buckets: m.buckets, summary: m.summary }); break
    case 'sync-push':
    case 'sync-entries':
      w.json(m.kind === 'sync-push' ? { round: m.round, pull: m.pull } : { round: m.round })
      w.u32(m.entries.length)
      for (const e of m.entries) writeEntry(w, e)
      break
  }
  return w.done()
}

/** Parses a data-plane message; throws MessageDecodeError on anything malformed. */
export function decodeMessage (b: Buffer): DataPlaneMessage {
  const r = new Reader(b)
  const kind = r.u8()
  let m: DataPlaneMessage
  switch (kind) {
    case KIND.publish: m = { kind: 'publish', publish: readPublish(r) }; break
    case KIND['rescue-done']: {
      const h = object(r.json())
      if (typeof h.requestId !== 'string') throw new MessageDecodeError('bad rescue-done')
      m = { kind: 'rescue-done', requestId: h.requestId }
      break
    }
    case KIND['rescue-request']: {
      const h = object(r.json())
      if (typeof h.from !== 'string' || typeof h.requestId !== 'string') throw new MessageDecodeError('bad rescue-request')
      if (h.filters !== undefined && (!Array.isArray(h.filters) || !h.filters.every((f) => typeof f === 'string'))) throw new MessageDecodeError('bad rescue-request filters')
      m = { kind: 'rescue-request', from: h.from, requestId: h.requestId, ...(h.filters === undefined ? {} : { filters: h.filters as string[] }), ...(h.takeover === true ? { takeover: true } : {}) }
      break
    }
    case KIND['barrier-request']: {
      const h = object(r.json())
      if (typeof h.id !== 'string' || typeof h.from !== 'string') throw new MessageDecodeError('bad barrier-request')
      m = { kind: 'barrier-request', id: h.id, from: h.from }
      break
    }
    case KIND['barrier-done']: {
      const h = object(r.json())
      if (typeof h.id !== 'string') throw new MessageDecodeError('bad barrier-done')
      m = { kind: 'barrier-done', id: h.id }
      break
    }
    case KIND['replica-lost']:
    case KIND['sessions-held']:
    case KIND['sessions-newer']: {
      const name = kind === KIND['replica-lost'] ? 'replica-lost' : kind === KIND['sessions-held'] ? 'sessions-held' : 'sessions-newer'
      const h = object(r.json())
      if (!Array.isArray(h.clientIds) || !h.clientIds.every((c) => typeof c === 'string')) throw new MessageDecodeError(`bad ${name}`)
      m = { kind: name, clientIds: h.clientIds as string[] }
      break
    }
    case KIND['replicas-done']: {
      const h = object(r.json())
      if (typeof h.home !== 'string') throw new MessageDecodeError('bad replicas-done')
      m = { kind: 'replicas-done', home: h.home }
      break
    }
    case KIND['start-settled']:
      object(r.json())
      m = { kind: 'start-settled' }
      break
    case KIND.rescue: {
      const h = object(r.json())
      if (typeof h.requestId !== 'string') throw new MessageDecodeError('bad rescue')
      m = { kind: 'rescue', requestId: h.requestId, publish: readPublish(r) }
      break
    }
    case KIND.retained: m = { kind: 'retained', entry: readEntry(r) }; break
    case KIND['route-delta']: m = { kind: 'route-delta', delta: checkDelta(r.json()) }; break
    case KIND['route-table']: m = { kind: 'route-table', table: checkTable(r.json()) }; break
    case KIND['client-connected']: {
      const h = object(r.json())
      if (typeof h.clientId !== 'string' || typeof h.stamp !== 'string') throw new MessageDecodeError('bad client-connected')
      let stamp: Stamp
      try {
        stamp = decodeStamp(h.stamp)
      } catch {
        throw new MessageDecodeError('bad stamp')
      }
      m = { kind: 'client-connected', clientId: h.clientId, stamp }
      break
    }
    case KIND['session-request']: {
      const h = object(r.json())
      if (typeof h.requestId !== 'string' || typeof h.clientId !== 'string' || typeof h.stamp !== 'string' || typeof h.resume !== 'boolean') throw new MessageDecodeError('bad session-request')
      if (h.since !== undefined && typeof h.since !== 'string') throw new MessageDecodeError('bad session-request')
      m = { kind: 'session-request', requestId: h.requestId, clientId: h.clientId, stamp: stampOf(h.stamp), resume: h.resume, ...(typeof h.since === 'string' ? { since: stampOf(h.since) } : {}) }
      break
    }
    case KIND['session-transfer']: {
      const h = object(r.json())
      if (typeof h.requestId !== 'string' || typeof h.clientId !== 'string') throw new MessageDecodeError('bad session-transfer')
      let session: TransferredSession | null = null
      if (h.session !== null) {
        const s = object(h.session)
        if (typeof s.stamp !== 'string') throw new MessageDecodeError('bad session-transfer')
        try {
          session = checkSession({ ...s, stamp: stampOf(s.stamp) })
        } catch (err) {
          if (err instanceof MessageDecodeError) throw err
          throw new MessageDecodeError(`bad session-transfer: ${(err as Error).message}`)
        }
      }
      m = { kind: 'session-transfer', requestId: h.requestId, clientId: h.clientId, session, ...(h.replica === true ? { replica: true } : {}) }
      break
    }
    case KIND['session-ack']: {
      const h = object(r.json())
      if (typeof h.requestId !== 'string' || typeof h.clientId !== 'string') throw new MessageDecodeError('bad session-ack')
      m = { kind: 'session-ack', requestId: h.requestId, clientId: h.clientId }
      break
    }
    case KIND.replica: {
      const h = object(r.json())
      if (!Array.isArray(h.ops)) throw new MessageDecodeError('bad replica message')
      const stamp = (t: unknown): Stamp => {
        if (typeof t !== 'string') throw new MessageDecodeError('bad stamp')
        return stampOf(t)
      }
      try {
        m = { kind: 'replica', ops: h.ops.map((op) => checkReplicaOp(op, stamp)) }
      } catch (err) {
        if (err instanceof MessageDecodeError) throw err
        throw new MessageDecodeError(`bad replica message: ${(err as Error).message}`)
      }
      break
    }
    case KIND['sync-digest']: {
      const h = object(r.json())
      m = { kind: 'sync-digest', round: int(h.round), digest: Buffer.from(r.bytes()) }
      break
    }
    case KIND['sync-summary']: {
      const h = object(r.json())
      if (!Array.isArray(h.buckets) || !Array.isArray(h.summary)) throw new MessageDecodeError('bad sync summary')
      const summary: BucketSummary = h.summary.map((p: unknown) => {
        if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string') throw new MessageDecodeError('bad summary pair')
        return [p[0], p[1]] as [string, string]
      })
      m = { kind: 'sync-summary', round: int(h.round), buckets: h.buckets.map(int), summary }
      break
    }
    case KIND['sync-push']:
    case KIND['sync-entries']: {
      const h = object(r.json())
      const entries: RetainedEntry[] = []
      for (let n = r.u32(); n > 0; n--) entries.push(readEntry(r))
      if (kind === KIND['sync-push']) {
        if (!Array.isArray(h.pull) || !h.pull.every((t: unknown) => typeof t === 'string')) throw new MessageDecodeError('bad pull list')
        m = { kind: 'sync-push', round: int(h.round), pull: h.pull as string[], entries }
      } else {
        m = { kind: 'sync-entries', round: int(h.round), entries }
      }
      break
    }
    default:
      throw new MessageDecodeError(`unknown message kind ${kind}`)
  }
  r.end()
  return m
}

/** The encoded size of a publish without properties, when its strings are ASCII (more grows the buffer once). */
function publishSizeHint (p: ForwardedPublish): number {
  let n = 40 + p.origin.length + p.brokerId.length + p.topic.length + p.payload.length
  for (const s of p.shared) n += 2 + s.length
  for (const s of p.sessions) n += 2 + s.length
  return n
}

function writePublish (w: Writer, p: ForwardedPublish): void {
  const expiry = p.messageExpiry !== undefined
  w.u8((p.qos & 3) | (p.retain ? 4 : 0) | (p.plain ? 8 : 0) | (expiry ? 16 : 0))
  w.str16(p.origin)
  w.str16(p.brokerId)
  w.f64(p.brokerCounter)
  if (expiry) w.f64(p.messageExpiry!)
  w.str16(p.topic)
  w.u16(p.shared.length)
  for (const s of p.shared) w.str16(s)
  w.u16(p.sessions.length)
  for (const s of p.sessions) w.str16(s)
  writeProperties(w, p.properties)
  w.bytes(p.payload)
}

function readPublish (r: Reader): ForwardedPublish {
  const flags = r.u8()
  const qos = flags & 3
  if (qos === 3 || (flags & ~31) !== 0) throw new MessageDecodeError('bad publish flags')
  const origin = r.str16()
  const brokerId = r.str16()
  const brokerCounter = r.f64()
  if (!Number.isSafeInteger(brokerCounter) || brokerCounter < 0) throw new MessageDecodeError('bad publish stamp')
  const messageExpiry = (flags & 16) !== 0 ? r.f64() : undefined
  if (messageExpiry !== undefined && !Number.isFinite(messageExpiry)) throw new MessageDecodeError('bad publish expiry')
  const topic = r.str16()
  const shared: string[] = []
  for (let n = r.u16(); n > 0; n--) shared.push(r.str16())
  const sessions: string[] = []
  for (let n = r.u16(); n > 0; n--) sessions.push(r.str16())
  const properties = readProperties(r)
  const payload = r.bytes()
  const p: ForwardedPublish = { origin, brokerId, brokerCounter, topic, payload, qos: qos as Qos, retain: (flags & 4) !== 0, plain: (flags & 8) !== 0, shared, sessions }
  if (properties !== undefined) p.properties = properties
  if (messageExpiry !== undefined) p.messageExpiry = messageExpiry
  return p
}

/** Properties: a zero length means none (JSON is at least 2 bytes). */
function readProperties (r: Reader): PublishProperties | undefined {
  const raw = r.bytes()
  if (raw.length === 0) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(raw.toString('utf8'), bufferReviver)
  } catch {
    throw new MessageDecodeError('bad properties JSON')
  }
  return object(parsed)
}

function readEntry (r: Reader): RetainedEntry {
  const topic = r.str16()
  let stamp
  try {
    stamp = decodeStamp(r.str16())
  } catch {
    throw new MessageDecodeError('bad stamp')
  }
  const qos = r.u8()
  if (qos > 2) throw new MessageDecodeError('bad qos')
  const properties = readProperties(r)
  // Copy: the entry outlives the frame buffer it was cut from.
  const payload = Buffer.from(r.bytes())
  return { topic, stamp, qos: qos as Qos, payload, ...(properties === undefined ? {} : { properties }) }
}

function stampOf (text: string): Stamp {
  try {
    return decodeStamp(text)
  } catch {
    throw new MessageDecodeError('bad stamp')
  }
}

function object (v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MessageDecodeError('expected an object')
  return v as Record<string, unknown>
}

function int (v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new MessageDecodeError('expected a non-negative integer')
  return v
}

function checkDelta (v: unknown): RouteDelta {
  const o = object(v)
  if (typeof o.filter !== 'string') throw new MessageDecodeError('bad route delta')
  return { version: int(o.version), filter: o.filter, count: int(o.count) }
}

function checkTable (v: unknown): RouteTable {
  const o = object(v)
  if (!Array.isArray(o.filters)) throw new MessageDecodeError('bad route table')
  const filters = o.filters.map((p: unknown): [string, number] => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string') throw new MessageDecodeError('bad route table entry')
    return [p[0], int(p[1])]
  })
  return { version: int(o.version), filters }
}
