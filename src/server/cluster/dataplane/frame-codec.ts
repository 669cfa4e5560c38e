// Wire format of a peer link (see docs/data-plane.md for the whole picture).
//
// A connection starts with the 4-byte preamble "BHDP" from each side, so a
// listener shared with the membership protocol can tell a data-plane stream
// from a push/pull exchange by its first bytes (read as a membership length
// prefix, "BHDP" is over 1 GB and refused there). Then frames follow: first
// the handshake's (link-handshake.ts), then records:
//
//   frame  = length (uint32 BE) | sealed
//   sealed = session.seal(records)       (AES-256-GCM under this connection's keys, or plain)
//   record = HELLO  0x01 | len (uint32) | JSON
//          | DATA   0x02 | seq (uint48) | len (uint32) | payload    seq 0: unreliable
//          | ACK    0x03 | seq (uint48)                             cumulative: received
//          | PING   0x04
//          | REFUSE 0x05 | len (uint32) | JSON {code, message}
//          | HOLD   0x06 | seq (uint48) | len (uint32) | payload    a DATA the receiver settles (see below)
//          | HELD   0x07 | upTo (uint48) | n (uint16) | seq (uint48) x n
//
// ACK says a message arrived; HELD says the receiver is done with a HOLD
// message (a publish: queued for its sessions and, where the cluster asks,
// held by a second node). Every HOLD message up to `upTo`, and the `n` listed
// above it, are settled. The sender keeps a HOLD message until it is held,
// not just received: that is what a publisher's acknowledgement waits for,
// and what is handed to whoever takes over the sessions of a receiver that
// died first (rescue).
//
// A frame carries a batch of records, so a burst costs one seal and one
// write. Nothing in a frame is parsed before the cipher authenticated it.

export const PREAMBLE = Buffer.from('BHDP', 'latin1')
export const LINK_PROTOCOL_VERSION = 3

/** Seals and opens the frames of one connection (link-handshake.ts LinkSession). */
export interface FrameCipher {
  seal (plain: Buffer): Buffer
  /** Throws when the frame does not authenticate. */
  open (sealed: Buffer): Buffer
}


export interface Hello {
  proto: number
  /** The sender's node name. */
  name: string
  /** Random id of the sender's process lifetime; sequence numbers restart with it. */
  incarnation: string
  /** What the sender has delivered from the receiver: lets the receiver drop acked messages and resend the rest. */
  recv: { incarnation: string | null, seq: number }
  /**
   * Random id of the sender's node process (the same on all its links; a
   * link's incarnation also changes when a live node replaces the link):
   * a new one means the peer restarted and lost every state it held.
   */
  process?: string
}

export interface Refuse { code: string, message: string }

export type LinkRecord =
  | { type: 'hello', hello: Hello }
  | { type: 'data', seq: number, payload: Buffer, hold: boolean }
  | { type: 'ack', seq: number }
  | { type: 'held', upTo: number, seqs: number[] }
  | { type: 'ping' }
  | { type: 'refuse', refuse: Refuse }

const T_HELLO = 0x01
const T_DATA = 0x02
const T_ACK = 0x03
const T_PING = 0x04
const T_REFUSE = 0x05
const T_HOLD = 0x06
const T_HELD = 0x07

/** Most settled sequence numbers listed in one HELD record; more go in the next. */
export const MAX_HELD_LIST = 4096

/** Header size of a DATA record: type, seq, length. */
export const DATA_HEADER = 1 + 6 + 4
export const MAX_SEQ = 2 ** 48 - 1

export type LinkErrorReason = 'preamble' | 'size' | 'auth' | 'decode' | 'handshake' | 'refused'

/** Bad bytes on a link: the connection is closed and the reason counted. */
export class LinkProtocolError extends Error {
  readonly reason: LinkErrorReason
  constructor (reason: LinkErrorReason, message: string) {
    super(message)
    this.name = 'LinkProtocolError'
    this.reason = reason
  }
}

/** Writes a DATA (or HOLD) record header at `offset` of `buf`. */
export function writeDataHeader (buf: Buffer, offset: number, seq: number, length: number, hold = false): number {
  buf[offset] = hold ? T_HOLD : T_DATA
  buf.writeUIntBE(seq, offset + 1, 6)
  buf.writeUInt32BE(length, offset + 7)
  return offset + DATA_HEADER
}

export function encodeRecord (r: LinkRecord): Buffer {
  switch (r.type) {
    case 'hello': return jsonRecord(T_HELLO, r.hello)
    case 'refuse': return jsonRecord(T_REFUSE, r.refuse)
    case 'ack': {
      const b = Buffer.allocUnsafe(7)
      b[0] = T_ACK
      b.writeUIntBE(r.seq, 1, 6)
      return b
    }
    case 'ping': return Buffer.from([T_PING])
    case 'held': {
      const b = Buffer.allocUnsafe(9 + 6 * r.seqs.length)
      b[0] = T_HELD
      b.writeUIntBE(r.upTo, 1, 6)
      b.writeUInt16BE(r.seqs.length, 7)
      r.seqs.forEach((seq, i) => b.writeUIntBE(seq, 9 + 6 * i, 6))
      return b
    }
    case 'data': {
      const b = Buffer.allocUnsafe(DATA_HEADER + r.payload.length)
      writeDataHeader(b, 0, r.seq, r.payload.length, r.hold)
      r.payload.copy(b, DATA_HEADER)
      return b
    }
  }
}

function jsonRecord (type: number, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8')
  const b = Buffer.allocUnsafe(5 + json.length)
  b[0] = type
  b.writeUInt32BE(json.length, 1)
  json.copy(b, 5)
  return b
}

/** Length-prefixes a sealed frame. */
export function frame (sealed: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + sealed.length)
  b.writeUInt32BE(sealed.length, 0)
  sealed.copy(b, 4)
  return b
}

/** Parses the records of an opened frame; throws LinkProtocolError on anything malformed. */
export function decodeRecords (plain: Buffer): LinkRecord[] {
  const out: LinkRecord[] = []
  let off = 0
  const need = (n: number): void => {
    if (off + n > plain.length) throw new LinkProtocolError('decode', 'truncated record')
  }
  while (off < plain.length) {
    const type = plain[off++]
    switch (type) {
      case T_DATA:
      case T_HOLD: {
        need(10)
        const seq = plain.readUIntBE(off, 6)
        const len = plain.readUInt32BE(off + 6)
        off += 10
        need(len)
        if (type === T_HOLD && seq === 0) throw new LinkProtocolError('decode', 'a hold record needs a sequence number')
        out.push({ type: 'data', seq, payload: plain.subarray(off, off + len), hold: type === T_HOLD })
        off += len
        break
      }
      case T_HELD: {
        need(8)
        const upTo = plain.readUIntBE(off, 6)
        const n = plain.readUInt16BE(off + 6)
        off += 8
        need(6 * n)
        const seqs: number[] = []
        for (let i = 0; i < n; i++) seqs.push(plain.readUIntBE(off + 6 * i, 6))
        off += 6 * n
        out.push({ type: 'held', upTo, seqs })
        break
      }
      case T_ACK:
        need(6)
        out.push({ type: 'ack', seq: plain.readUIntBE(off, 6) })
        off += 6
        break
      case T_PING:
        out.push({ type: 'ping' })
        break
      case T_HELLO:
      case T_REFUSE: {
        need(4)
        const len = plain.readUInt32BE(off)
        off += 4
        need(len)
        const body = parseJson(plain.subarray(off, off + len))
        off += len
        if (type === T_HELLO) out.push({ type: 'hello', hello: checkHello(body) })
        else out.push({ type: 'refuse', refuse: checkRefuse(body) })
        break
      }
      default:
        throw new LinkProtocolError('decode', `unknown record type ${String(type)}`)
    }
  }
  return out
}

function parseJson (b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8'))
  } catch {
    throw new LinkProtocolError('decode', 'record body is not JSON')
  }
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function checkHello (v: unknown): Hello {
  if (!isObject(v) || typeof v.proto !== 'number' || typeof v.name !== 'string' || v.name.length === 0 ||
    typeof v.incarnation !== 'string' || !isObject(v.recv) ||
    !(v.recv.incarnation === null || typeof v.recv.incarnation === 'string') ||
    typeof v.recv.seq !== 'number' || !Number.isSafeInteger(v.recv.seq) || v.recv.seq < 0) {
    throw new LinkProtocolError('handshake', 'malformed hello')
  }
  if (v.process !== undefined && typeof v.process !== 'string') throw new LinkProtocolError('handshake', 'malformed hello')
  return {
    proto: v.proto,
    name: v.name,
    incarnation: v.incarnation,
    recv: { incarnation: v.recv.incarnation as string | null, seq: v.recv.seq },
    ...(v.process === undefined ? {} : { process: v.process })
  }
}

function checkRefuse (v: unknown): Refuse {
  if (!isObject(v) || typeof v.code !== 'string' || typeof v.message !== 'string') throw new LinkProtocolError('decode', 'malformed refuse')
  return { code: v.code, message: v.message }
}

/**
 * Splits a byte stream into sealed frames: checks the preamble, then cuts
 * length-prefixed frames, refusing any longer than `maxFrameBytes` before
 * buffering it (a garbage length must not make us allocate gigabytes).
 */
export class FrameDecoder {
  private buffered: Buffer[] = []
  private bufferedLength = 0
  private preambleSeen = false
  private maxFrameBytes: number

  constructor (maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes
  }

  /** Changes the largest frame accepted (small until a handshake completes). */
  limit (maxFrameBytes: number): void {
    this.maxFrameBytes = maxFrameBytes
  }

  /**
   * Feeds bytes; returns the complete sealed frames they finish. Throws
   * LinkProtocolError. A frame over the limit after some complete ones is
   * left buffered (and judged by the next push, which may be an empty
   * one): the frames before it may be a handshake that raises the limit.
   */
  push (chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.buffered.push(chunk)
      this.bufferedLength += chunk.length
    }
    const frames: Buffer[] = []
    for (;;) {
      if (!this.preambleSeen) {
        if (this.bufferedLength < PREAMBLE.length) {
          if (!PREAMBLE.subarray(0, this.bufferedLength).equals(this.peek(this.bufferedLength))) throw new LinkProtocolError('preamble', 'not a data-plane stream')
          return frames
        }
        if (!this.take(PREAMBLE.length).equals(PREAMBLE)) throw new LinkProtocolError('preamble', 'not a data-plane stream')
        this.preambleSeen = true
      }
      if (this.bufferedLength < 4) return frames
      const length = this.peek(4).readUInt32BE(0)
      if (length > this.maxFrameBytes && frames.length > 0) return frames
      if (length > this.maxFrameBytes) throw new LinkProtocolError('size', `frame of ${length} bytes exceeds ${this.maxFrameBytes}`)
      if (this.bufferedLength < 4 + length) return frames
      this.take(4)
      frames.push(this.take(length))
    }
  }

  /** Bytes received but not yet cut into a frame (handed on with the socket after a handshake). */
  rest (): Buffer {
    const out = Buffer.concat(this.buffered)
    this.buffered = []
    this.bufferedLength = 0
    return out
  }

  private peek (n: number): Buffer {
    if (this.buffered[0]!.length < n) this.buffered = [Buffer.concat(this.buffered)]
    return this.buffered[0]!.subarray(0, n)
  }

  private take (n: number): Buffer {
    if (n === 0) return Buffer.alloc(0)
    if (this.buffered[0]!.length < n) this.buffered = [Buffer.concat(this.buffered)]
    const first = this.buffered[0]!
    const out = first.subarray(0, n)
    if (first.length === n) this.buffered.shift()
    else this.buffered[0] = first.subarray(n)
    this.bufferedLength -= n
    return out
  }
}
