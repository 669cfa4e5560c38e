// The accepting side of peer links: reads an inbound connection's preamble
// and HELLO, authenticates it, and hands the socket to the PeerLink of the
// peer it names. Anything else (garbage, a wrong key, an unknown or
// misbehaving peer) is refused: the socket is closed and the reason counted;
// nothing unauthenticated is parsed beyond the frame length.
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
  type FrameCipher, type LinkErrorReason
} from './frame-codec.js'
import { dialsTo, type PeerLink } from './peer-link.js'

export interface LinkAcceptorOptions {
  localName: string
  cipher: FrameCipher
  /** The link for a peer name, if we have one (a member we know). */
  lookup: (peerName: string) => PeerLink | undefined
  /** Largest frame read before the handshake (a HELLO is small). */
  maxHandshakeBytes?: number
  handshakeTimeoutMs?: number
  onError?: (err: Error) => void
}

export class LinkAcceptor {
  private readonly opts: LinkAcceptorOptions
  private readonly pending = new Set<Socket>()
  /** Connections refused, by reason (a metric). */
  readonly refused: Partial<Record<LinkErrorReason | 'unknown-peer', number>> = {}

  constructor (options: LinkAcceptorOptions) {
    this.opts = options
  }

  /** Takes an inbound connection; `head` are bytes already read from it (by a port multiplexer). */
  handle (socket: Socket, head?: Buffer): void {
    const decoder = new FrameDecoder(this.opts.maxHandshakeBytes ?? 64 * 1024)
    this.pending.add(socket)
    const timer = setTimeout(() => finish(new LinkProtocolError('handshake', 'no hello in time')), this.opts.handshakeTimeoutMs ?? 5000)
    timer.unref()
    let done = false
    const finish = (err?: Error, refuse?: { code: string, message: string }): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.off('data', onData)
      this.pending.delete(socket)
      if (err === undefined) return
      const reason = err instanceof LinkProtocolError ? err.reason : 'unknown-peer'
      this.refused[reason] = (this.refused[reason] ?? 0) + 1
      this.opts.onError?.(err)
      if (refuse !== undefined && !socket.destroyed) {
        // Tell an authenticated peer why, so its operator sees the reason.
        socket.end(Buffer.concat([PREAMBLE, frame(this.opts.cipher.seal(encodeRecord({ type: 'refuse', refuse })))]))
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
      if (frames.length === 0) return
      let records
      try {
        let plain: Buffer
        try {
          plain = this.opts.cipher.open(frames[0]!)
        } catch (err) {
          throw new LinkProtocolError('auth', `hello does not authenticate: ${(err as Error).message}`)
        }
        records = decodeRecords(plain)
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
        finish(new LinkProtocolError('handshake', message), { code: 'version', message })
        return
      }
      const link = this.opts.lookup(hello.name)
      if (link === undefined || dialsTo(this.opts.localName, hello.name)) {
        const message = link === undefined ? `${hello.name} is not a member we know` : `${this.opts.localName} dials ${hello.name}, not the other way`
        finish(new Error(message), { code: 'unknown-peer', message })
        return
      }
      finish()
      const rest = Buffer.concat([...frames.slice(1).map(frame), decoder.rest()])
      link.adopt(socket, hello, rest)
    }
    socket.on('data', onData)
    socket.on('error', () => finish(new LinkProtocolError('handshake', 'connection error before hello')))
    socket.once('close', () => finish(new LinkProtocolError('handshake', 'closed before hello')))
    if (head !== undefined && head.length > 0) onData(head)
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
