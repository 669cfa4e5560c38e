// One long-lived TCP link to one peer: the data plane's transport.
//
// What it promises (see docs/data-plane.md):
// - Reliable messages (QoS 1/2 publishes, route deltas, retained entries) are
//   delivered to the peer's handler once each, in send order, across
//   connection drops: each gets a sequence number, the sender keeps it until a
//   cumulative ACK covers it and resends the unacknowledged ones after every
//   reconnect; the receiver drops anything at or below the highest sequence it
//   delivered for the sender's incarnation (the sender's process lifetime).
//   The receiver's state lives in this object, so a restart of the receiving
//   process loses it: then the sender resends what was unacked, which the
//   restarted node has never seen.
// - Unreliable messages (QoS 0) share the ordered stream but are not kept:
//   when the link is down or the send buffer is full they are shed (counted).
// - Held messages (publishes) are reliable messages the receiver settles when
//   it is done with them (settle()); the sender keeps each until its HELD
//   report (frame-codec.ts), not just its ACK: whenHeld() is what a
//   publisher's acknowledgement waits for, and unheld() is what a node taking
//   over the receiver's sessions asks for when the receiver died first. A
//   receiver that restarts (a new `process` in its HELLO) settles nothing of
//   its predecessor's: those messages are handed to onRestart and not sent
//   to the new process.
// - Memory is bounded: unacked reliable bytes plus held messages not yet
//   settled plus queued unreliable bytes stay under maxBufferedBytes. Past
//   it, send() sheds unreliable messages and answers 'backpressure' for held
//   ones (not queued: the caller holds the message and waits for
//   whenWritable(), which is how a slow peer slows the publishers instead of
//   growing the heap).
// - Batching: messages sent in one turn of the event loop leave in one frame
//   and one write (flushed on setImmediate: a lone message waits for no timer).
// - One link per pair: the node whose name sorts lower dials and redials with
//   backoff; the other side only accepts (LinkAcceptor hands it sockets).
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import {
  DATA_HEADER, FrameDecoder, LINK_PROTOCOL_VERSION, LinkProtocolError, MAX_HELD_LIST, MAX_SEQ, PREAMBLE,
  decodeRecords, encodeRecord, frame, writeDataHeader,
  type FrameCipher, type Hello, type LinkErrorReason, type LinkRecord
} from './frame-codec.js'

/** A dial pending this long when the peer is known to be back is started afresh (redialNow). */
const STALE_DIAL_MS = 250

export type LinkState = 'idle' | 'connecting' | 'handshaking' | 'up' | 'backoff' | 'waiting' | 'stopped'

export type SendResult = 'queued' | 'backpressure' | 'shed'

/**
 * How a message travels: 'unreliable' (QoS 0: shed when the link is down or
 * full), 'reliable' (kept until acknowledged; 'backpressure' when the buffer
 * is full), 'held' (as reliable, and kept until the receiver settled it:
 * publishes, retained entries), 'control' (reliable, never refused: routes,
 * sync, session operations; small and few).
 */
export type SendMode = 'unreliable' | 'reliable' | 'held' | 'control'

export interface DeliveryInfo {
  reliable: boolean
  /**
   * Of a reliable message: the sender's incarnation and its sequence number,
   * which name this message uniquely.
   */
  source?: { incarnation: string, seq: number }
  /** A held message: the receiver calls settle(source) when done with it. */
  hold?: boolean
}

interface Hold { seq: number, payload: Buffer, acked: boolean, waiters: Array<(held: boolean) => void> }

/** Counters and gauges of one link, read at scrape time by the metrics adapter. */
export interface LinkStats {
  state: LinkState
  messagesSent: number
  messagesReceived: number
  bytesSent: number
  bytesReceived: number
  /** Reliable messages sent again after a reconnect. */
  retransmitted: number
  /** Reliable messages received again and dropped. */
  duplicates: number
  /** Unreliable messages dropped (link down or buffer full). */
  shed: number
  /** Reliable sends answered 'backpressure'. */
  backpressured: number
  /** socket.write calls (batching makes this much lower than messagesSent). */
  writes: number
  frames: number
  /** Reliable messages not yet acknowledged plus unreliable ones not yet written. */
  queueDepth: number
  bufferedBytes: number
  connects: number
  /** Connections closed for bad bytes, by reason. */
  protocolErrors: Partial<Record<LinkErrorReason | 'idle', number>>
}

export interface PeerLinkOptions {
  localName: string
  /** This node's process id, sent in the HELLO (Hello.process); the peer's is `remoteProcess` once up. */
  process?: string
  peerName: string
  cipher: FrameCipher
  /** Opens a connection to the peer. Required on the dialing side (the lower name). */
  connect?: () => Socket
  /** Called for each delivered message, in order. */
  onMessage: (payload: Buffer, info: DeliveryInfo) => void
  /** Called when a connection finished its handshake: send the full route table here. */
  onUp?: () => void
  /**
   * The peer came back as a new process: the held messages its predecessor
   * never settled (oldest first), which the new process will not get.
   */
  onRestart?: (orphans: Array<{ seq: number, payload: Buffer }>) => void
  onStateChange?: (state: LinkState) => void
  /** Bound of unacked reliable bytes plus queued unreliable bytes (default 8 MiB). */
  maxBufferedBytes?: number
  /** Largest single message (default 16 MiB). */
  maxMessageBytes?: number
  /** A batch is cut into frames of about this many bytes (default 256 KiB). */
  frameBytes?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  /** A PING is sent when nothing was written for this long (default 1000). */
  pingIntervalMs?: number
  /** A connection with nothing received for this long is dropped (default 5000). */
  idleTimeoutMs?: number
  handshakeTimeoutMs?: number
  /** A dial not connected in this long is abandoned and retried (default 1000, as TCP would resend its SYN): it may hang on a lost SYN. */
  connectTimeoutMs?: number
  random?: () => number
  /** Called on connection-level problems (already counted in stats). */
  onError?: (err: Error) => void
}

interface Outgoing { seq: number, payload: Buffer, hold: boolean }

/** Which side of a pair dials: the lower name, so there is one link per pair. */
export function dialsTo (localName: string, peerName: string): boolean {
  return localName < peerName
}

export class PeerLink {
  readonly localName: string
  readonly peerName: string
  readonly dialer: boolean
  /** This process's sender identity on this link. */
  readonly incarnation = randomBytes(8).toString('hex')
  private readonly opts: Required<Omit<PeerLinkOptions, 'connect' | 'onUp' | 'onStateChange' | 'onError' | 'process' | 'onRestart'>> & PeerLinkOptions
  private stateValue: LinkState = 'idle'
  private socket: Socket | undefined
  private decoder: FrameDecoder | undefined

  // sender side
  private nextSeq = 1
  /** Highest sequence ever written to a socket: what is resent below it is a retransmission. */
  private highestWritten = 0
  private readonly unacked: Outgoing[] = []
  private unackedHead = 0
  private unackedBytes = 0
  /** Held messages not yet settled by the peer, in sequence order. */
  private readonly holds = new Map<number, Hold>()
  /** Bytes of held messages acknowledged but not yet settled (the unacknowledged ones count in unackedBytes). */
  private settlingBytes = 0
  /** Records waiting to be written on the current connection (reliable ones are also in unacked). */
  private outbox: Outgoing[] = []
  private outboxUnreliableBytes = 0
  private ackDue = false
  private heldDue = false
  private pingDue = false
  private flushScheduled: NodeJS.Immediate | undefined
  private waitingDrain = false
  private drainWaiters: Array<() => void> = []
  /** whenAcked() waiters, in ascending seq order. */
  private ackWaiters: Array<{ seq: number, resolve: (acked: boolean) => void }> = []
  private ackedUpTo = 0

  /**
   * The last connection was ended by the peer's side (closed, reset, or a
   * dial refused: nothing listens there), not by our own timeout. A peer
   * that goes silent instead (paused, partitioned away) leaves it false.
   */
  peerClosed = false
  /** The latest dial was refused: nothing listened at the peer's address then (its process gone, or a firewall's REJECT). */
  refused = false

  // receiver side
  private recvIncarnation: string | null = null
  /** The peer's process id from its last HELLO (Hello.process). */
  remoteProcess: string | undefined
  private delivered = 0
  /** Held messages delivered and not yet settled, and the ones settled while an earlier one is not. */
  private readonly unsettled = new Set<number>()
  private readonly settledAbove = new Set<number>()

  // timers
  private attempt = 0
  private retryTimer: NodeJS.Timeout | undefined
  private handshakeTimer: NodeJS.Timeout | undefined
  private dialStartedAt = 0
  private heartbeat: NodeJS.Timeout | undefined
  private lastReceived = 0
  private lastWritten = 0

  private readonly counters: Omit<LinkStats, 'state' | 'queueDepth' | 'bufferedBytes'> = {
    messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0, retransmitted: 0, duplicates: 0,
    shed: 0, backpressured: 0, writes: 0, frames: 0, connects: 0, protocolErrors: {}
  }

  constructor (options: PeerLinkOptions) {
    if (options.localName === options.peerName) throw new RangeError('a peer link needs two different names')
    this.localName = options.localName
    this.peerName = options.peerName
    this.dialer = dialsTo(options.localName, options.peerName)
    if (this.dialer && options.connect === undefined) throw new RangeError(`${options.localName} dials ${options.peerName}: connect is required`)
    this.opts = {
      maxBufferedBytes: 8 * 1024 * 1024,
      maxMessageBytes: 16 * 1024 * 1024,
      frameBytes: 256 * 1024,
      minBackoffMs: 50,
      maxBackoffMs: 1000,
      pingIntervalMs: 1000,
      idleTimeoutMs: 5000,
      handshakeTimeoutMs: 5000,
      connectTimeoutMs: 1000,
      random: Math.random,
      ...options
    }
  }

  get state (): LinkState { return this.stateValue }

  /** Largest sealed frame this link accepts from its peer. */
  get maxFrameBytes (): number {
    return Math.max(this.opts.frameBytes, this.opts.maxMessageBytes) + DATA_HEADER + 1024
  }

  start (): void {
    if (this.stateValue !== 'idle') return
    if (this.dialer) this.dial()
    else this.setState('waiting')
  }

  stop (): void {
    if (this.stateValue === 'stopped') return
    this.setState('stopped')
    clearTimeout(this.retryTimer)
    this.dropConnection()
    this.releaseDrainWaiters()
    const waiters = this.ackWaiters
    this.ackWaiters = []
    for (const w of waiters) w.resolve(false)
    for (const h of this.holds.values()) for (const w of h.waiters) w(false)
    this.holds.clear()
    this.settlingBytes = 0
  }

  /**
   * Queues a message (see SendMode). 'reliable' and 'held' answer
   * 'backpressure' (not queued) when the buffer is full; 'unreliable' is
   * 'shed' then, or when the link is not up; 'control' is always queued:
   * route deltas, sync and session operations are small and few, and must
   * not be refused, or a peer's view would silently go stale.
   */
  send (payload: Buffer, mode: SendMode): SendResult {
    if (payload.length > this.opts.maxMessageBytes) throw new RangeError(`message of ${payload.length} bytes exceeds maxMessageBytes`)
    if (this.stateValue === 'stopped') throw new Error('peer link is stopped')
    const size = payload.length + DATA_HEADER
    const full = this.bufferedBytes > 0 && this.bufferedBytes + size > this.opts.maxBufferedBytes
    if (mode === 'unreliable') {
      if (full || this.stateValue !== 'up') { this.counters.shed++; return 'shed' }
      this.outbox.push({ seq: 0, payload, hold: false })
      this.outboxUnreliableBytes += size
      this.scheduleFlush()
      return 'queued'
    }
    if (full && mode !== 'control') { this.counters.backpressured++; return 'backpressure' }
    if (this.nextSeq > MAX_SEQ) throw new Error('sequence space exhausted')
    const out = { seq: this.nextSeq++, payload, hold: mode === 'held' }
    this.unacked.push(out)
    this.unackedBytes += size
    if (out.hold) this.holds.set(out.seq, { seq: out.seq, payload, acked: false, waiters: [] })
    if (this.stateValue === 'up') {
      this.outbox.push(out)
      this.scheduleFlush()
    }
    return 'queued'
  }

  /**
   * Resolves true once the peer settled held message `seq` (or had, or it
   * was never held), false when the link stops or the peer restarted before
   * settling it.
   */
  whenHeld (seq: number): Promise<boolean> {
    const h = this.holds.get(seq)
    if (h === undefined) return Promise.resolve(this.stateValue !== 'stopped' || seq <= this.ackedUpTo)
    return new Promise((resolve) => h.waiters.push(resolve))
  }

  /**
   * Resolves once every held message up to `seq` is settled (true), or the
   * link stops or the peer restarts first (false).
   */
  async whenAllHeld (seq: number): Promise<boolean> {
    let last: number | undefined
    for (const h of this.holds.keys()) {
      if (h > seq) break
      last = h
    }
    if (last === undefined) return this.stateValue !== 'stopped'
    const waits: Array<Promise<boolean>> = []
    for (const h of this.holds.keys()) {
      if (h > seq) break
      waits.push(this.whenHeld(h))
    }
    return (await Promise.all(waits)).every(Boolean)
  }

  /** Held messages the peer has not settled, oldest first: what a node taking over its sessions asks for when it died. */
  unheld (): Array<{ seq: number, payload: Buffer }> {
    return [...this.holds.values()].map((h) => ({ seq: h.seq, payload: h.payload }))
  }

  /** Held messages not yet settled by the peer. */
  get unheldCount (): number { return this.holds.size }

  /**
   * The receiving side is done with held message `source` (see
   * DeliveryInfo.hold): reported to the sender in the next HELD record.
   * Ignored for a previous incarnation of the sender.
   */
  settle (source: { incarnation: string, seq: number }): void {
    if (source.incarnation !== this.recvIncarnation || !this.unsettled.delete(source.seq)) return
    let min = Infinity
    for (const s of this.unsettled) if (s < min) min = s
    if (source.seq > min) this.settledAbove.add(source.seq)
    else for (const s of this.settledAbove) if (s < min) this.settledAbove.delete(s)
    this.heldDue = true
    this.scheduleFlush()
  }

  /** Sequence number of the last reliable message queued (0: none yet). */
  get lastQueuedSeq (): number { return this.nextSeq - 1 }

  /**
   * Resolves true once the peer acknowledged (delivered) reliable message
   * `seq`, false if the link stops first. For a QoS 1/2 publish whose PUBACK
   * should wait until another node holds it.
   */
  async whenAcked (seq: number): Promise<boolean> {
    if (seq <= this.ackedUpTo) return true
    if (this.stateValue === 'stopped') return false
    return await new Promise<boolean>((resolve) => {
      const w = { seq, resolve }
      const last = this.ackWaiters[this.ackWaiters.length - 1]
      if (last === undefined || last.seq <= seq) this.ackWaiters.push(w)
      else this.ackWaiters.splice(this.ackWaiters.findIndex((x) => x.seq > seq), 0, w)
    })
  }

  /** Resolves when the buffer is below half its bound (or the link stopped). */
  async whenWritable (): Promise<void> {
    if (this.bufferedBytes <= this.opts.maxBufferedBytes / 2 || this.stateValue === 'stopped') return
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve))
  }

  get bufferedBytes (): number { return this.unackedBytes + this.settlingBytes + this.outboxUnreliableBytes }

  /** Reliable messages sent and not yet acknowledged. */
  get unackedCount (): number { return this.unacked.length - this.unackedHead }

  stats (): LinkStats {
    let unreliableQueued = 0
    for (const o of this.outbox) if (o.seq === 0) unreliableQueued++
    return {
      ...this.counters,
      protocolErrors: { ...this.counters.protocolErrors },
      state: this.stateValue,
      queueDepth: this.unackedCount + unreliableQueued,
      bufferedBytes: this.bufferedBytes
    }
  }

  /** Drops the current connection (tests, and an operator's "reset link"); the link reconnects. */
  dropConnection (): void {
    const s = this.socket
    if (s === undefined) return
    this.onClosed(s)
    s.destroy()
  }

  // ---- connection setup --------------------------------------------------------------

  private dial (): void {
    this.setState('connecting')
    this.dialStartedAt = Date.now()
    this.refused = false
    let socket: Socket
    try {
      socket = this.opts.connect!()
    } catch (err) {
      // A connect function that throws (bad address) is retried like a refused connection.
      this.opts.onError?.(err instanceof Error ? err : new Error(String(err)))
      this.scheduleRedial()
      return
    }
    this.useSocket(socket)
    const connectTimer = setTimeout(() => { if (socket === this.socket && this.stateValue === 'connecting') this.abandonDial() }, this.opts.connectTimeoutMs)
    connectTimer.unref()
    socket.once('connect', () => {
      clearTimeout(connectTimer)
      if (socket !== this.socket) return
      this.setState('handshaking')
      socket.write(Buffer.concat([PREAMBLE, this.helloFrame()]))
    })
  }

  /**
   * Takes an inbound connection whose preamble and HELLO the acceptor already
   * read and authenticated; `rest` are bytes that followed the HELLO frame.
   */
  adopt (socket: Socket, hello: Hello, rest: Buffer): void {
    if (this.stateValue === 'stopped' || this.stateValue === 'idle' || this.dialer) {
      socket.destroy()
      return
    }
    // The peer redialled: whatever we thought was our connection is dead (a
    // half-open TCP connection can linger until the idle timeout).
    if (this.socket !== undefined) this.dropConnection()
    this.useSocket(socket, true)
    socket.write(Buffer.concat([PREAMBLE, this.helloFrame()]))
    try {
      this.connectionUp(hello)
    } catch (err) {
      this.fail(socket, err as Error)
      return
    }
    if (rest.length > 0) this.onData(socket, rest)
  }

  private useSocket (socket: Socket, preambleRead = false): void {
    this.socket = socket
    this.decoder = new FrameDecoder(this.maxFrameBytes)
    if (preambleRead) this.decoder.push(PREAMBLE)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk))
    socket.on('error', (err) => {
      if (socket !== this.socket) return
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET') this.peerClosed = true
      if (code === 'ECONNREFUSED') this.refused = true
      this.opts.onError?.(err)
    })
    socket.once('close', () => {
      if (socket !== this.socket) return
      // Closed under us, not by dropConnection or fail (which forget the socket first).
      this.peerClosed = true
      this.onClosed(socket)
    })
    this.lastReceived = Date.now()
    this.handshakeTimer = setTimeout(() => {
      if (socket === this.socket && this.stateValue !== 'up') this.fail(socket, new LinkProtocolError('handshake', 'handshake timed out'))
    }, this.opts.handshakeTimeoutMs)
    this.handshakeTimer.unref()
  }

  private helloFrame (): Buffer {
    const hello: Hello = {
      proto: LINK_PROTOCOL_VERSION,
      name: this.localName,
      incarnation: this.incarnation,
      recv: { incarnation: this.recvIncarnation, seq: this.delivered },
      ...(this.opts.process === undefined ? {} : { process: this.opts.process })
    }
    return frame(this.opts.cipher.seal(encodeRecord({ type: 'hello', hello })))
  }

  private checkHello (hello: Hello): void {
    if (hello.proto !== LINK_PROTOCOL_VERSION) throw new LinkProtocolError('handshake', `peer speaks link protocol ${hello.proto}, we speak ${LINK_PROTOCOL_VERSION}`)
    if (hello.name !== this.peerName) throw new LinkProtocolError('handshake', `expected ${this.peerName}, got ${hello.name}`)
  }

  private connectionUp (hello: Hello): void {
    clearTimeout(this.handshakeTimer)
    this.checkHello(hello)
    this.peerClosed = false
    this.refused = false
    const before = this.remoteProcess
    this.remoteProcess = hello.process
    if (before !== undefined && hello.process !== undefined && before !== hello.process) this.orphanHolds()
    if (hello.incarnation !== this.recvIncarnation) {
      // A new sender lifetime: its sequence numbers start again.
      this.recvIncarnation = hello.incarnation
      this.delivered = 0
      this.unsettled.clear()
      this.settledAbove.clear()
    }
    // What the peer already delivered needs no resending.
    if (hello.recv.incarnation === this.incarnation) this.acknowledge(hello.recv.seq)
    // Its settlements may have been lost with the last connection: said again.
    this.heldDue = true
    this.outbox = this.unacked.slice(this.unackedHead)
    this.outboxUnreliableBytes = 0
    for (const o of this.outbox) if (o.seq <= this.highestWritten) this.counters.retransmitted++
    this.counters.connects++
    this.attempt = 0
    this.lastReceived = Date.now()
    this.lastWritten = Date.now()
    this.heartbeat = setInterval(() => this.onHeartbeat(), Math.max(10, Math.min(this.opts.pingIntervalMs, this.opts.idleTimeoutMs / 2)))
    this.heartbeat.unref()
    this.setState('up')
    this.opts.onUp?.()
    this.scheduleFlush()
  }

  private onHeartbeat (): void {
    const socket = this.socket
    if (socket === undefined) return
    const now = Date.now()
    if (now - this.lastReceived > this.opts.idleTimeoutMs) {
      this.count('idle')
      this.opts.onError?.(new Error(`link to ${this.peerName} idle for ${now - this.lastReceived} ms`))
      this.dropConnection()
      return
    }
    if (now - this.lastWritten >= this.opts.pingIntervalMs) {
      this.pingDue = true
      this.scheduleFlush()
    }
  }

  private onClosed (socket: Socket): void {
    if (socket !== this.socket) return
    this.socket = undefined
    this.decoder = undefined
    clearTimeout(this.handshakeTimer)
    clearInterval(this.heartbeat)
    if (this.flushScheduled !== undefined) { clearImmediate(this.flushScheduled); this.flushScheduled = undefined }
    this.waitingDrain = false
    this.ackDue = false
    this.heldDue = false
    this.pingDue = false
    // Unreliable messages not yet written are lost with the connection; reliable ones stay in unacked.
    for (const o of this.outbox) if (o.seq === 0) this.counters.shed++
    this.outbox = []
    this.outboxUnreliableBytes = 0
    this.releaseDrainWaitersIfBelow()
    if (this.stateValue === 'stopped') return
    if (this.dialer) this.scheduleRedial()
    else this.setState('waiting')
  }

  /** A dial that did not connect: dropped, and retried after the backoff. */
  private abandonDial (): void {
    const s = this.socket
    if (s === undefined) return
    this.onClosed(s)
    s.destroy()
  }

  /**
   * Dials at once if waiting out a backoff, or if a dial started a while ago
   * is still not connected (the peer is known to be back: a dial from before
   * may hang until its next SYN retransmission).
   */
  redialNow (): void {
    if (this.stateValue === 'connecting' && Date.now() - this.dialStartedAt >= STALE_DIAL_MS) this.abandonDial()
    if (this.stateValue !== 'backoff') return
    clearTimeout(this.retryTimer)
    this.attempt = 0
    this.dial()
  }

  private scheduleRedial (): void {
    this.setState('backoff')
    const base = Math.min(this.opts.maxBackoffMs, this.opts.minBackoffMs * 2 ** Math.min(this.attempt, 20))
    this.attempt++
    // Jitter so two links that broke together do not redial in lockstep.
    this.retryTimer = setTimeout(() => { if (this.stateValue === 'backoff') this.dial() }, base * (0.5 + this.opts.random() / 2))
    this.retryTimer.unref()
  }

  private fail (socket: Socket, err: Error): void {
    if (err instanceof LinkProtocolError) this.count(err.reason)
    this.opts.onError?.(err)
    if (socket === this.socket) this.onClosed(socket)
    socket.destroy()
  }

  private count (reason: LinkErrorReason | 'idle'): void {
    this.counters.protocolErrors[reason] = (this.counters.protocolErrors[reason] ?? 0) + 1
  }

  // ---- receiving -----------------------------------------------------------------------

  private onData (socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket || this.decoder === undefined) return
    this.counters.bytesReceived += chunk.length
    this.lastReceived = Date.now()
    try {
      for (const sealed of this.decoder.push(chunk)) {
        let plain: Buffer
        try {
          plain = this.opts.cipher.open(sealed)
        } catch (err) {
          throw new LinkProtocolError('auth', `frame does not authenticate: ${(err as Error).message}`)
        }
        for (const record of decodeRecords(plain)) {
          this.onRecord(record)
          // A handler may have stopped the link or dropped the connection.
          if (socket !== this.socket) return
        }
      }
    } catch (err) {
      this.fail(socket, err instanceof Error ? err : new Error(String(err)))
    }
  }

  private onRecord (r: LinkRecord): void {
    switch (r.type) {
      case 'hello':
        if (this.stateValue === 'up') throw new LinkProtocolError('handshake', 'second hello')
        this.connectionUp(r.hello)
        return
      case 'refuse':
        throw new LinkProtocolError('refused', `${r.refuse.code}: ${r.refuse.message}`)
      case 'ping':
        return
      case 'ack':
        if (this.stateValue !== 'up') throw new LinkProtocolError('handshake', 'ack before hello')
        this.acknowledge(r.seq)
        return
      case 'held':
        if (this.stateValue !== 'up') throw new LinkProtocolError('handshake', 'held before hello')
        this.held(r.upTo, r.seqs)
        return
      case 'data':
        if (this.stateValue !== 'up') throw new LinkProtocolError('handshake', 'data before hello')
        if (r.seq !== 0) {
          if (r.seq <= this.delivered) { this.counters.duplicates++; return }
          this.delivered = r.seq
          this.ackDue = true
          if (r.hold) this.unsettled.add(r.seq)
          this.scheduleFlush()
        }
        this.counters.messagesReceived++
        try {
          this.opts.onMessage(r.payload, r.seq === 0 ? { reliable: false } : { reliable: true, source: { incarnation: this.recvIncarnation ?? '', seq: r.seq }, ...(r.hold ? { hold: true } : {}) })
        } catch (err) {
          // The message counts as delivered: redelivering would hit the same bug forever.
          this.opts.onError?.(err instanceof Error ? err : new Error(String(err)))
        }
    }
  }

  private acknowledge (seq: number): void {
    while (this.unackedHead < this.unacked.length && this.unacked[this.unackedHead]!.seq <= seq) {
      const o = this.unacked[this.unackedHead]!
      this.unackedBytes -= o.payload.length + DATA_HEADER
      this.unackedHead++
      const h = o.hold ? this.holds.get(o.seq) : undefined
      if (h !== undefined) {
        h.acked = true
        this.settlingBytes += o.payload.length + DATA_HEADER
      }
    }
    if (seq > this.ackedUpTo) this.ackedUpTo = Math.min(seq, this.nextSeq - 1)
    let n = 0
    while (n < this.ackWaiters.length && this.ackWaiters[n]!.seq <= this.ackedUpTo) this.ackWaiters[n++]!.resolve(true)
    if (n > 0) this.ackWaiters.splice(0, n)
    if (this.unackedHead > 1024 && this.unackedHead * 2 > this.unacked.length) {
      this.unacked.splice(0, this.unackedHead)
      this.unackedHead = 0
    }
    this.releaseDrainWaitersIfBelow()
  }

  /** The peer settled every held message up to `upTo` and those in `seqs`. */
  private held (upTo: number, seqs: number[]): void {
    for (const [seq, h] of this.holds) {
      if (seq > upTo) break
      this.release(h)
    }
    for (const seq of seqs) {
      const h = this.holds.get(seq)
      if (h !== undefined) this.release(h)
    }
    this.releaseDrainWaitersIfBelow()
  }

  private release (h: Hold): void {
    this.holds.delete(h.seq)
    if (h.acked) this.settlingBytes -= h.payload.length + DATA_HEADER
    for (const w of h.waiters) w(true)
  }

  /** The peer restarted: what its predecessor never settled is handed to onRestart, not resent. */
  private orphanHolds (): void {
    if (this.holds.size === 0) return
    const orphans: Hold[] = [...this.holds.values()]
    this.holds.clear()
    this.settlingBytes = 0
    const gone = new Set(orphans.map((h) => h.seq))
    const kept = this.unacked.slice(this.unackedHead).filter((o) => !gone.has(o.seq))
    this.unacked.length = 0
    this.unacked.push(...kept)
    this.unackedHead = 0
    this.unackedBytes = kept.reduce((n, o) => n + o.payload.length + DATA_HEADER, 0)
    for (const h of orphans) for (const w of h.waiters) w(false)
    this.opts.onRestart?.(orphans.map((h) => ({ seq: h.seq, payload: h.payload })))
  }

  private releaseDrainWaitersIfBelow (): void {
    if (this.drainWaiters.length > 0 && this.bufferedBytes <= this.opts.maxBufferedBytes / 2) this.releaseDrainWaiters()
  }

  private releaseDrainWaiters (): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  // ---- sending -------------------------------------------------------------------------

  private scheduleFlush (): void {
    if (this.flushScheduled !== undefined || this.waitingDrain || this.stateValue !== 'up') return
    this.flushScheduled = setImmediate(() => {
      this.flushScheduled = undefined
      this.flush()
    })
  }

  /**
   * Writes what is queued: control records first, then messages in order,
   * cut into frames of about frameBytes, all frames of this turn in one
   * write. Stops at about 4 frames per turn so acks from the peer get read
   * in between, and while the socket asks us to wait for 'drain'.
   */
  private flush (): void {
    const socket = this.socket
    if (socket === undefined || this.stateValue !== 'up' || this.waitingDrain) return
    const frames: Buffer[] = []
    let total = 0
    let i = 0
    while ((this.ackDue || this.heldDue || this.pingDue || i < this.outbox.length) && total < 4 * this.opts.frameBytes) {
      const parts: Buffer[] = []
      let size = 0
      if (this.ackDue) { parts.push(encodeRecord({ type: 'ack', seq: this.delivered })); size += 7; this.ackDue = false }
      if (this.heldDue) {
        const record = this.heldRecord()
        parts.push(record)
        size += record.length
      }
      if (this.pingDue) { parts.push(encodeRecord({ type: 'ping' })); size += 1; this.pingDue = false }
      const start = i
      let dataBytes = 0
      while (i < this.outbox.length && (i === start || size + dataBytes + DATA_HEADER + this.outbox[i]!.payload.length <= this.opts.frameBytes)) {
        dataBytes += DATA_HEADER + this.outbox[i]!.payload.length
        i++
      }
      if (i > start) {
        const data = Buffer.allocUnsafe(dataBytes)
        let off = 0
        for (let k = start; k < i; k++) {
          const o = this.outbox[k]!
          off = writeDataHeader(data, off, o.seq, o.payload.length, o.hold)
          o.payload.copy(data, off)
          off += o.payload.length
          if (o.seq === 0) this.outboxUnreliableBytes -= DATA_HEADER + o.payload.length
          else if (o.seq > this.highestWritten) this.highestWritten = o.seq
        }
        parts.push(data)
        this.counters.messagesSent += i - start
      }
      const f = frame(this.opts.cipher.seal(parts.length === 1 ? parts[0]! : Buffer.concat(parts)))
      frames.push(f)
      total += f.length
    }
    this.outbox = i === this.outbox.length ? [] : this.outbox.slice(i)
    if (frames.length === 0) return
    this.counters.frames += frames.length
    this.counters.writes++
    this.counters.bytesSent += total
    this.lastWritten = Date.now()
    const ok = socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames))
    this.releaseDrainWaitersIfBelow()
    if (!ok) {
      this.waitingDrain = true
      socket.once('drain', () => {
        if (socket !== this.socket) return
        this.waitingDrain = false
        this.scheduleFlush()
      })
    } else if (this.outbox.length > 0) {
      this.scheduleFlush()
    }
  }

  /** What this side settled of the peer's held messages: all up to the lowest unsettled one, and those above it. */
  private heldRecord (): Buffer {
    let min = Infinity
    for (const s of this.unsettled) if (s < min) min = s
    const upTo = min === Infinity ? this.delivered : min - 1
    const seqs = [...this.settledAbove].filter((s) => s > upTo).slice(0, MAX_HELD_LIST)
    this.heldDue = seqs.length === MAX_HELD_LIST
    return encodeRecord({ type: 'held', upTo, seqs })
  }

  private setState (state: LinkState): void {
    if (this.stateValue === state) return
    this.stateValue = state
    this.opts.onStateChange?.(state)
  }
}
