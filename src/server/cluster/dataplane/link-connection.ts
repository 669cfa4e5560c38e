// The connections of one peer link (peer-link.ts), one at a time: how they
// are opened, checked, kept alive and replaced. The reliable stream they
// carry lives in peer-link.ts and is told of each connection's life
// (LinkStream); it survives every connection.
//
// - One link per pair: the node whose name sorts lower dials and redials
//   with backoff (exponential, jittered so links that broke together do not
//   redial in lockstep); the other side only accepts (LinkAcceptor reads
//   the preamble and HELLO and hands the socket to adopt()).
// - A dial not connected within connectTimeoutMs is abandoned and retried:
//   it may hang on a lost SYN. When the peer is known to be back, a dial
//   not connected after STALE_DIAL_MS, or still in its handshake after
//   STALE_HANDSHAKE_MS, is started afresh (redialNow).
// - The handshake (link-handshake.ts): both sides exchange fresh nonces,
//   derive this connection's keys, and send a HELLO (frame-codec.ts) sealed
//   under them, naming itself, its sender incarnation and how far it
//   delivered the other's stream; a HELLO that does not open, from another
//   name or protocol version, or none within handshakeTimeoutMs, closes the
//   connection. Until then frames are at most MAX_HANDSHAKE_FRAME bytes.
// - Liveness: a PING goes out when nothing was written for pingIntervalMs; a
//   connection with nothing received for idleTimeoutMs is dropped, which is
//   how a half-open connection or a silent peer is noticed.
// - Nothing in a frame is parsed before the cipher authenticated it; bad
//   bytes close the connection and are counted by reason (LinkStats).
// - refused tells the data plane that the latest dial was refused: nothing
//   listens at the peer's address (LinkSet.whenUp).
import type { Socket } from 'node:net'
import {
  DATA_HEADER, FrameDecoder, LINK_PROTOCOL_VERSION, LinkProtocolError, PREAMBLE,
  decodeRecords, encodeRecord, frame,
  type Hello, type LinkErrorReason, type LinkRecord
} from './frame-codec.js'
import type { LinkCounters, LinkState, ResolvedLinkOptions } from './peer-link-types.js'
import { MAX_HANDSHAKE_FRAME, dialerSession, initFrameBody, newNonce, parseInit, type LinkSession } from './link-handshake.js'

/** A dial not connected this long when the peer is known to be back is started afresh (redialNow). */
const STALE_DIAL_MS = 250
/**
 * A dial connected but in its handshake this long, likewise: longer, since
 * a peer that just started (or is busy) may answer slowly, and dropping its
 * handshake at every membership event would only start the work again.
 */
const STALE_HANDSHAKE_MS = 1000

const EMPTY = Buffer.alloc(0)

/** Which side of a pair dials: the lower name, so there is one link per pair. */
export function dialsTo (localName: string, peerName: string): boolean {
  return localName < peerName
}

/** The records of the stream, as opposed to the connection's own (hello, refuse, ping). */
export type StreamRecord = Extract<LinkRecord, { type: 'ack' | 'held' | 'data' }>

/** What the connections tell the stream they carry (peer-link.ts). */
export interface LinkStream {
  /** This side's sender incarnation and how far it delivered the peer's stream, for the HELLO. */
  helloFields (): Pick<Hello, 'incarnation' | 'recv'>
  /** A connection's HELLO checked out: the stream resumes on it (before the state is 'up'). */
  resume (hello: Hello): void
  /** The connection is up. */
  up (): void
  /** A stream record arrived on the up connection. */
  record (r: StreamRecord): void
  /** The connection is gone (the state is not changed yet). */
  closed (): void
  /** Nothing was written for pingIntervalMs. */
  pingDue (): void
}

export class LinkConnection {
  readonly dialer: boolean
  /** The latest dial was refused: nothing listened at the peer's address then (its process gone, or a firewall's REJECT). */
  refused = false
  private readonly opts: ResolvedLinkOptions
  private readonly stream: LinkStream
  private readonly counters: LinkCounters
  private stateValue: LinkState = 'idle'
  private current: Socket | undefined
  private decoder: FrameDecoder | undefined
  /** The current connection's ciphers, once its handshake derived them. */
  private session: LinkSession | undefined
  /** The dialer's nonce of the current connection, until the acceptor's arrives. */
  private ourNonce: Buffer | undefined
  private attempt = 0
  private retryTimer: NodeJS.Timeout | undefined
  private handshakeTimer: NodeJS.Timeout | undefined
  private dialStartedAt = 0
  private heartbeat: NodeJS.Timeout | undefined
  private lastReceived = 0
  private lastWritten = 0

  constructor (opts: ResolvedLinkOptions, stream: LinkStream, counters: LinkCounters) {
    this.opts = opts
    this.stream = stream
    this.counters = counters
    this.dialer = dialsTo(opts.localName, opts.peerName)
    if (this.dialer && opts.connect === undefined) throw new RangeError(`${opts.localName} dials ${opts.peerName}: connect is required`)
  }

  get state (): LinkState { return this.stateValue }

  /** The current connection's socket, if any. */
  get socket (): Socket | undefined { return this.current }

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
    this.setState('stopped')
    clearTimeout(this.retryTimer)
    this.drop()
  }

  /** A frame of records sealed for the current connection (its own keys and frame counter). */
  sealFrame (plain: Buffer): Buffer {
    return this.session!.sealFrame(plain)
  }

  /**
   * Writes frames to the current connection in one write (writev: no copy
   * into one buffer); false when the socket asks to wait for 'drain' (see
   * onceDrained).
   */
  write (frames: Buffer[]): boolean {
    this.lastWritten = Date.now()
    const socket = this.current!
    if (frames.length === 1) return socket.write(frames[0]!)
    socket.cork()
    let ok = true
    for (const f of frames) ok = socket.write(f)
    socket.uncork()
    return ok
  }

  /** Calls `drained` when the current connection drained, unless it was replaced by then. */
  onceDrained (drained: () => void): void {
    const socket = this.current!
    socket.once('drain', () => {
      if (socket !== this.current) return
      drained()
    })
  }

  /** Drops the current connection; a dialer redials after the backoff. */
  drop (): void {
    const s = this.current
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
    // The backoff built up while the peer was away is forgotten here, also
    // when a dial is in flight: if that dial fails, the next one comes after
    // the shortest wait, not after up to maxBackoffMs (a link up 1.55 s after
    // a partition healed, when the others took 20 ms).
    this.attempt = 0
    // A dial that reached the peer while it was cut off may sit in its
    // handshake until handshake_timeout: started afresh too.
    const pending = Date.now() - this.dialStartedAt
    if (this.stateValue === 'connecting' && pending >= STALE_DIAL_MS) this.drop()
    else if (this.stateValue === 'handshaking' && this.dialer && pending >= STALE_HANDSHAKE_MS) this.drop()
    if (this.stateValue !== 'backoff') return
    clearTimeout(this.retryTimer)
    this.dial()
  }

  /**
   * Takes an inbound connection whose handshake the acceptor ran as far as
   * the dialer's HELLO (authenticated under `session`); `rest` are bytes
   * that followed the HELLO frame.
   */
  adopt (socket: Socket, hello: Hello, rest: Buffer, session: LinkSession): void {
    if (this.stateValue === 'stopped' || this.stateValue === 'idle' || this.dialer) {
      socket.destroy()
      return
    }
    // The peer redialled: whatever we thought was our connection is dead (a
    // half-open TCP connection can linger until the idle timeout).
    if (this.current !== undefined) this.drop()
    this.useSocket(socket, true)
    this.session = session
    this.decoder = new FrameDecoder(this.maxFrameBytes)
    this.decoder.push(PREAMBLE)
    socket.write(this.helloFrame())
    try {
      this.connectionUp(hello)
    } catch (err) {
      this.fail(socket, err as Error)
      return
    }
    if (rest.length > 0) this.onData(socket, rest)
  }

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
    // Not connected in time: dropped, and retried after the backoff.
    const connectTimer = setTimeout(() => { if (socket === this.current && this.stateValue === 'connecting') this.drop() }, this.opts.connectTimeoutMs)
    connectTimer.unref()
    socket.once('connect', () => {
      clearTimeout(connectTimer)
      if (socket !== this.current) return
      this.setState('handshaking')
      this.ourNonce = newNonce()
      socket.write(Buffer.concat([PREAMBLE, frame(initFrameBody(this.ourNonce))]))
    })
  }

  private useSocket (socket: Socket, preambleRead = false): void {
    this.current = socket
    this.session = undefined
    this.ourNonce = undefined
    this.decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME)
    if (preambleRead) this.decoder.push(PREAMBLE)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk))
    socket.on('error', (err) => {
      if (socket !== this.current) return
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ECONNREFUSED') this.refused = true
      this.opts.onError?.(err)
    })
    socket.once('close', () => {
      if (socket !== this.current) return
      // Closed under us, not by drop or fail (which forget the socket first).
      this.onClosed(socket)
    })
    this.lastReceived = Date.now()
    this.handshakeTimer = setTimeout(() => {
      if (socket === this.current && this.stateValue !== 'up') this.fail(socket, new LinkProtocolError('handshake', 'handshake timed out'))
    }, this.opts.handshakeTimeoutMs)
    this.handshakeTimer.unref()
  }

  private helloFrame (): Buffer {
    const hello: Hello = {
      proto: LINK_PROTOCOL_VERSION,
      name: this.opts.localName,
      ...this.stream.helloFields(),
      ...(this.opts.process === undefined ? {} : { process: this.opts.process })
    }
    return this.session!.sealFrame(encodeRecord({ type: 'hello', hello }))
  }

  private checkHello (hello: Hello): void {
    if (hello.proto !== LINK_PROTOCOL_VERSION) throw new LinkProtocolError('handshake', `peer speaks link protocol ${hello.proto}, we speak ${LINK_PROTOCOL_VERSION}`)
    if (hello.name !== this.opts.peerName) throw new LinkProtocolError('handshake', `expected ${this.opts.peerName}, got ${hello.name}`)
  }

  private connectionUp (hello: Hello): void {
    clearTimeout(this.handshakeTimer)
    this.checkHello(hello)
    // Authenticated: frames may now be as large as messages are.
    this.decoder?.limit(this.maxFrameBytes)
    this.refused = false
    this.stream.resume(hello)
    this.counters.connects++
    this.attempt = 0
    this.lastReceived = Date.now()
    this.lastWritten = Date.now()
    this.heartbeat = setInterval(() => this.onHeartbeat(), Math.max(10, Math.min(this.opts.pingIntervalMs, this.opts.idleTimeoutMs / 2)))
    this.heartbeat.unref()
    this.setState('up')
    this.stream.up()
  }

  private onHeartbeat (): void {
    const socket = this.current
    if (socket === undefined) return
    const now = Date.now()
    if (now - this.lastReceived > this.opts.idleTimeoutMs) {
      // Judged after this turn's reads: timers run before I/O, so after this
      // process's event loop was blocked for a while (a starved node), what
      // the peer sent meanwhile sits unread and the link only looks idle.
      // Dropping it then made a live peer's death count as confirmed.
      setImmediate(() => {
        const idle = Date.now() - this.lastReceived
        if (socket !== this.current || idle <= this.opts.idleTimeoutMs) return
        this.count('idle')
        this.opts.onError?.(new Error(`link to ${this.opts.peerName} idle for ${idle} ms`))
        this.drop()
      })
      return
    }
    if (now - this.lastWritten >= this.opts.pingIntervalMs) this.stream.pingDue()
  }

  private onClosed (socket: Socket): void {
    if (socket !== this.current) return
    this.current = undefined
    this.decoder = undefined
    this.session = undefined
    clearTimeout(this.handshakeTimer)
    clearInterval(this.heartbeat)
    this.stream.closed()
    if (this.stateValue === 'stopped') return
    if (this.dialer) this.scheduleRedial()
    else this.setState('waiting')
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
    if (socket === this.current) this.onClosed(socket)
    socket.destroy()
  }

  private count (reason: LinkErrorReason | 'idle'): void {
    this.counters.protocolErrors[reason] = (this.counters.protocolErrors[reason] ?? 0) + 1
  }

  private onData (socket: Socket, chunk: Buffer): void {
    if (socket !== this.current || this.decoder === undefined) return
    this.counters.bytesReceived += chunk.length
    this.lastReceived = Date.now()
    try {
      // Frames come in rounds: a frame over the handshake's size limit waits
      // until the handshake in the frames before it has raised the limit.
      const decoder = this.decoder
      for (let frames = decoder.push(chunk); frames.length > 0; frames = decoder.push(EMPTY)) {
        if (!this.onFrames(socket, frames)) return
      }
    } catch (err) {
      this.fail(socket, err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** Opens and handles the frames of one decoder round; false once the connection is not current. Throws LinkProtocolError. */
  private onFrames (socket: Socket, frames: Buffer[]): boolean {
    for (const sealed of frames) {
      if (this.session === undefined) {
        // The dialer's side: the acceptor's INIT. Our HELLO goes out under the keys it gives.
        if (!this.dialer || this.ourNonce === undefined) throw new LinkProtocolError('handshake', 'a frame before the handshake')
        this.session = dialerSession(this.opts.keys, this.ourNonce, parseInit(sealed))
        this.ourNonce = undefined
        socket.write(this.helloFrame())
        continue
      }
      let plain: Buffer
      try {
        plain = this.session.open(sealed)
      } catch (err) {
        throw new LinkProtocolError('auth', `frame does not authenticate: ${(err as Error).message}`)
      }
      for (const record of decodeRecords(plain)) {
        this.onRecord(record)
        // A handler may have stopped the link or dropped the connection.
        if (socket !== this.current) return false
      }
    }
    return true
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
      default:
        if (this.stateValue !== 'up') throw new LinkProtocolError('handshake', `${r.type} before hello`)
        this.stream.record(r)
    }
  }

  private setState (state: LinkState): void {
    if (this.stateValue === state) return
    this.stateValue = state
    this.opts.onStateChange?.(state)
  }
}
