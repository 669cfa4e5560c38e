// The accepting side of peer links: runs an inbound connection's handshake
// (link-handshake.ts: INIT both ways, then the dialer's sealed HELLO),
// checks who it is, and hands the socket to the PeerLink of the peer it
// names. Anything else (garbage, a wrong key, a replayed connection, an
// unknown or misbehaving peer, a name claimed from another address) is
// refused: the socket is closed and the reason counted; nothing
// unauthenticated is parsed beyond the frame length.
//
// Before its handshake completes a connection is a stranger: at most
// maxPending of them at once, frames of at most MAX_HANDSHAKE_FRAME bytes,
// and handshakeTimeoutMs to finish.
//
// In a node the cluster port is shared with membership push/pull: the
// listener there peeks at the first 4 bytes and passes connections starting
// with PREAMBLE to handle() along with the bytes it already read.
// LinkListener below is a standalone listener for tests and for running the
// data plane on a port of its own.
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import {
  FrameDecoder, LINK_PROTOCOL_VERSION, LinkProtocolError, PREAMBLE, decodeRecords, encodeRecord, frame,
  type LinkErrorReason
} from './frame-codec.js'
import { MAX_HANDSHAKE_FRAME, acceptorSession, initFrameBody, newNonce, parseInit, type LinkKeys, type LinkSession } from './link-handshake.js'
import { dialsTo, type PeerLink } from './peer-link.js'

export type RefusedReason = LinkErrorReason | 'unknown-peer' | 'address' | 'pending'

export interface LinkAcceptorOptions {
  localName: string
  keys: LinkKeys
  /** The link for a peer name, if we have one (a member we know). */
  lookup: (peerName: string) => PeerLink | undefined
  /**
   * Whether a connection from `remoteHost` may speak for member `peerName`:
   * a HELLO must come from the member's own (gossip) address. Undefined: any.
   */
  checkAddress?: (peerName: string, remoteHost: string) => boolean
  /** Most connections in their handshake at once; more are closed at once (default 32). */
  maxPending?: number
  handshakeTimeoutMs?: number
  onError?: (err: Error) => void
}

export class LinkAcceptor {
  private readonly opts: LinkAcceptorOptions
  private readonly pending = new Set<Socket>()
  /** Connections refused, by reason (a metric). */
  readonly refused: Partial<Record<RefusedReason, number>> = {}

  constructor (options: LinkAcceptorOptions) {
    this.opts = options
  }

  /** Connections in their handshake now. */
  get pendingCount (): number { return this.pending.size }

  /** Takes an inbound connection; `head` are bytes already read from it (by a port multiplexer). */
  handle (socket: Socket, head?: Buffer): void {
    if (this.pending.size >= (this.opts.maxPending ?? 32)) {
      this.count('pending')
      this.opts.onError?.(new Error(`too many peer-link connections in their handshake (${this.pending.size}); closed one from ${socket.remoteAddress ?? '?'}`))
      socket.destroy()
      return
    }
    const decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME)
    this.pending.add(socket)
    const timer = setTimeout(() => finish(new LinkProtocolError('handshake', 'no handshake in time')), this.opts.handshakeTimeoutMs ?? 5000)
    timer.unref()
    let done = false
    let dialerNonce: Buffer | undefined
    let ourNonce: Buffer | undefined
    const finish = (err?: Error, refuse?: { code: string, message: string, reason?: RefusedReason }, session?: LinkSession): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.off('data', onData)
      this.pending.delete(socket)
      if (err === undefined) return
      this.count(refuse?.reason ?? (err instanceof LinkProtocolError ? err.reason : 'unknown-peer'))
      this.opts.onError?.(err)
      if (refuse !== undefined && session !== undefined && !socket.destroyed) {
        // Tell an authenticated peer why, so its operator sees the reason.
        socket.end(session.sealFrame(encodeRecord({ type: 'refuse', refuse: { code: refuse.code, message: refuse.message } })))
        socket.destroySoon()
        setTimeout(() => socket.destroy(), 1000).unref()
      } else {
        socket.destroy()
      }
    }
    const onData = (chunk: Buffer): void => {
      let frames: Buffer[]
      try {
        frames = decoder.push(chunk)
      } catch (err) {
        finish(err as Error)
        return
      }
      for (let i = 0; i < frames.length && !done; i++) {
        if (dialerNonce === undefined) {
          try {
            dialerNonce = parseInit(frames[i]!)
          } catch (err) {
            finish(err as Error)
            return
          }
          ourNonce = newNonce()
          socket.write(Buffer.concat([PREAMBLE, frame(initFrameBody(ourNonce))]))
          continue
        }
        this.onHello(socket, frames[i]!, dialerNonce, ourNonce!, Buffer.concat([...frames.slice(i + 1).map(frame), decoder.rest()]), finish)
        return
      }
    }
    socket.on('data', onData)
    socket.on('error', () => finish(new LinkProtocolError('handshake', 'connection error before hello')))
    socket.once('close', () => finish(new LinkProtocolError('handshake', 'closed before hello')))
    if (head !== undefined && head.length > 0) onData(head)
  }

  private onHello (
    socket: Socket, sealed: Buffer, dialerNonce: Buffer, ourNonce: Buffer, rest: Buffer,
    finish: (err?: Error, refuse?: { code: string, message: string, reason?: RefusedReason }, session?: LinkSession) => void
  ): void {
    let session: LinkSession
    let records
    try {
      const opened = acceptorSession(this.opts.keys, dialerNonce, ourNonce, sealed)
      session = opened.session
      records = decodeRecords(opened.plain)
    } catch (err) {
      finish(err as Error)
      return
    }
    const first = records[0]
    if (first?.type !== 'hello' || records.length !== 1) {
      finish(new LinkProtocolError('handshake', 'first frame is not a hello'))
      return
    }
    const hello = first.hello
    if (hello.proto !== LINK_PROTOCOL_VERSION) {
      const message = `we speak link protocol ${LINK_PROTOCOL_VERSION}, not ${hello.proto}`
      finish(new LinkProtocolError('handshake', message), { code: 'version', message }, session)
      return
    }
    const from = socket.remoteAddress ?? ''
    if (this.opts.checkAddress !== undefined && !this.opts.checkAddress(hello.name, from)) {
      // Another process claiming a member's name: the member's own link stays as it is.
      const message = `a hello as ${hello.name} from ${from}, which is not ${hello.name}'s address`
      finish(new Error(message), { code: 'address', message, reason: 'address' }, session)
      return
    }
    const link = this.opts.lookup(hello.name)
    if (link === undefined || dialsTo(this.opts.localName, hello.name)) {
      const message = link === undefined ? `${hello.name} is not a member we know` : `${this.opts.localName} dials ${hello.name}, not the other way`
      finish(new Error(message), { code: 'unknown-peer', message }, session)
      return
    }
    finish()
    link.adopt(socket, hello, rest, session)
  }

  private count (reason: RefusedReason): void {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1
  }

  /** Closes connections still in their handshake. */
  stop (): void {
    for (const s of this.pending) s.destroy()
    this.pending.clear()
  }
}

/** A TCP listener that feeds a LinkAcceptor: for tests and a dedicated data-plane port. */
export class LinkListener {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  private readonly acceptor: LinkAcceptor

  constructor (acceptor: LinkAcceptor) {
    this.acceptor = acceptor
  }

  async start (host: string, port: number): Promise<{ host: string, port: number }> {
    const server = createServer((socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
      this.acceptor.handle(socket)
    })
    this.server = server
    server.listen(port, host)
    await once(server, 'listening')
    const addr = server.address()
    if (addr === null || typeof addr === 'string') throw new Error('listener has no TCP address')
    return { host: addr.address, port: addr.port }
  }

  /** Stops listening and closes every connection it accepted (links that adopted them see them close). */
  async stop (): Promise<void> {
    this.acceptor.stop()
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    const server = this.server
    this.server = undefined
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
