// UDP + TCP on one port (cluster.port, default 7946), as memberlist's
// NetTransport. A TCP exchange is one length-prefixed frame each way:
//   length (uint32 BE) | frame
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { isIP } from 'node:net'
import { BrokerHaError } from '../../../errors.js'
import { MAX_REQUEST_FRAME, MAX_STREAM_FRAME, TransportError, type Address, type Transport, type TransportHandlers, type TransportStats } from './transport.js'
import { PREAMBLE } from '../dataplane/frame-codec.js'

/** Takes a data-plane connection (it started with PREAMBLE); `head` holds the bytes already read. */
export type LinkStreamHandler = (socket: Socket, head: Buffer) => void

export interface NetTransportOptions {
  bind: string
  port: number
  /** How long an incoming stream may take to send its request. */
  streamTimeoutMs: number
  /** Called for streams cut for being too large or too slow (counted as bad packets). */
  onBadStream?: (from: Address, reason: 'size' | 'decode') => void
  /**
   * Admission by address (membership/admission.ts): traffic from a host it
   * refuses is dropped before a byte is read. Undefined: every host (a key
   * authenticates instead).
   */
  admit?: (host: string) => boolean
  /** Most inbound connections not yet handed to the data plane nor answered (push/pull); more are closed at once. */
  maxPending?: number
  /** Called for what was refused before it was read: an address not admitted, or past maxPending. */
  onRefused?: (from: Address, kind: 'udp' | 'tcp', reason: 'address' | 'pending') => void
}

export class NetTransport implements Transport {
  readonly local: Address
  readonly stats: TransportStats = { bytesSent: 0, bytesReceived: 0 }
  private udp: UdpSocket | undefined
  private tcp: Server | undefined
  private readonly sockets = new Set<Socket>()
  private readonly options: NetTransportOptions
  /** Inbound exchanges not answered yet (see maxPending). */
  private pending = 0
  /**
   * Set by the data plane: inbound TCP connections whose first 4 bytes are
   * the data-plane PREAMBLE are handed over instead of read as a push/pull
   * exchange, so peer links share the cluster port (and its firewall rule).
   */
  linkHandler: LinkStreamHandler | undefined

  constructor (options: NetTransportOptions) {
    this.options = options
    this.local = { host: options.bind, port: options.port }
  }

  async start (handlers: TransportHandlers): Promise<void> {
    const family = isIP(this.options.bind) === 6 ? 'udp6' : 'udp4'
    const udp = createSocket({ type: family, reuseAddr: false })
    udp.on('message', (data, rinfo) => {
      if (this.options.admit !== undefined && !this.options.admit(rinfo.address)) {
        this.options.onRefused?.({ host: rinfo.address, port: rinfo.port }, 'udp', 'address')
        return
      }
      this.stats.bytesReceived += data.length
      handlers.packet({ host: rinfo.address, port: rinfo.port }, data)
    })
    // A send to an unreachable peer can surface here (ICMP); the probe logic handles loss.
    udp.on('error', () => {})
    const tcp = createServer((socket) => this.serve(socket, handlers))
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject)
        udp.bind(this.options.port, this.options.bind, () => { udp.off('error', reject); resolve() })
      })
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject)
        tcp.listen(this.options.port, this.options.bind, () => { tcp.off('error', reject); resolve() })
      })
    } catch (err) {
      try { udp.close() } catch { /* not bound */ }
      tcp.close()
      throw new BrokerHaError('LISTEN_FAILED', `cannot listen on cluster port ${this.options.bind}:${this.options.port}: ${(err as Error).message}`, { key: 'cluster.port', cause: err })
    }
    this.udp = udp
    this.tcp = tcp
  }

  async stop (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    const udp = this.udp
    const tcp = this.tcp
    this.udp = undefined
    this.tcp = undefined
    if (udp !== undefined) await new Promise<void>((resolve) => udp.close(() => resolve()))
    if (tcp !== undefined) await new Promise<void>((resolve) => tcp.close(() => resolve()))
  }

  sendPacket (to: Address, data: Buffer): void {
    if (this.udp === undefined) return
    this.stats.bytesSent += data.length
    this.udp.send(data, to.port, to.host, () => {})
  }

  async exchange (to: Address, request: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.tcp === undefined) throw new TransportError('transport stopped')
    const socket = connect({ host: to.host, port: to.port, localAddress: this.localAddressFor(to) })
    this.sockets.add(socket)
    socket.setTimeout(timeoutMs)
    try {
      const response = new Promise<Buffer>((resolve, reject) => {
        readFrame(socket, resolve, (reason) => reject(new TransportError(`exchange with ${to.host}:${to.port} failed: ${reason}`)))
        socket.once('timeout', () => reject(new TransportError(`exchange with ${to.host}:${to.port} timed out after ${timeoutMs} ms`)))
        socket.once('error', (err) => reject(new TransportError(`exchange with ${to.host}:${to.port} failed: ${err.message}`, { cause: err })))
      })
      // Written before 'connect': net buffers it, and a failed connect rejects `response`.
      socket.write(lengthPrefixed(request))
      this.stats.bytesSent += request.length + 4
      const data = await response
      this.stats.bytesReceived += data.length + 4
      return data
    } catch (err) {
      if (err instanceof TransportError) throw err
      throw new TransportError(`exchange with ${to.host}:${to.port} failed: ${(err as Error).message}`, { cause: err })
    } finally {
      socket.destroy()
      this.sockets.delete(socket)
    }
  }

  /** Connect from our bind address so the peer sees the address we advertise (loopback aliases). */
  private localAddressFor (to: Address): string | undefined {
    const bind = this.options.bind
    if (bind === '0.0.0.0' || bind === '::') return undefined
    return isIP(bind) === isIP(to.host) ? bind : undefined
  }

  private serve (socket: Socket, handlers: TransportHandlers): void {
    const from = { host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    if (this.options.admit !== undefined && !this.options.admit(from.host)) {
      this.options.onRefused?.(from, 'tcp', 'address')
      socket.destroy()
      return
    }
    // Until it is handed to the data plane or its request is answered, a
    // connection is unauthenticated: capped in number, and a push/pull
    // request in size (MAX_REQUEST_FRAME, not the 32 MiB an answer we asked
    // for may have). Peer links have their own cap (link-acceptor.ts).
    if (this.pending >= (this.options.maxPending ?? Infinity)) {
      this.options.onRefused?.(from, 'tcp', 'pending')
      socket.destroy()
      return
    }
    this.pending++
    let counted = true
    const release = (): void => { if (counted) { counted = false; this.pending-- } }
    this.sockets.add(socket)
    socket.setTimeout(this.options.streamTimeoutMs, () => socket.destroy())
    socket.on('error', () => {})
    socket.once('close', () => { this.sockets.delete(socket); release() })
    // Peek at the first 4 bytes: "BHDP" is a peer link, anything else a
    // length prefix of a push/pull exchange.
    let head = Buffer.alloc(0)
    const peek = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      if (head.length < PREAMBLE.length && PREAMBLE.subarray(0, head.length).equals(head)) return
      // Paused while the listener changes hands, so no chunk falls between them.
      socket.pause()
      socket.off('data', peek)
      if (head.subarray(0, PREAMBLE.length).equals(PREAMBLE)) {
        release()
        // A peer link before our data plane started (or after it stopped):
        // closed quietly, the peer redials. Not a malformed stream.
        const linkHandler = this.linkHandler
        if (linkHandler === undefined) {
          socket.destroy()
          return
        }
        socket.setTimeout(0)
        linkHandler(socket, head)
      } else {
        this.serveExchange(socket, handlers, from, release, head)
      }
      socket.resume()
    }
    socket.on('data', peek)
  }

  private serveExchange (socket: Socket, handlers: TransportHandlers, from: Address, release: () => void, head?: Buffer): void {
    readFrame(socket, (request) => {
      this.stats.bytesReceived += request.length + 4
      handlers.exchange(from, request).then((response) => {
        release()
        if (response === undefined || socket.destroyed) {
          socket.destroy()
          return
        }
        this.stats.bytesSent += response.length + 4
        socket.end(lengthPrefixed(response))
      }, () => socket.destroy())
    }, (reason) => {
      if (reason === 'frame too large') this.options.onBadStream?.(from, 'size')
      else if (reason !== 'closed before a frame') this.options.onBadStream?.(from, 'decode')
      socket.destroy()
    }, head, MAX_REQUEST_FRAME)
  }
}

function lengthPrefixed (data: Buffer): Buffer {
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32BE(data.length, 0)
  return Buffer.concat([head, data])
}

/** Reads one length-prefixed frame; anything after it is ignored. */
function readFrame (socket: Socket, onFrame: (data: Buffer) => void, onFail: (reason: string) => void, head?: Buffer, maxFrame = MAX_STREAM_FRAME): void {
  const chunks: Buffer[] = []
  let have = 0
  let need = -1
  let done = false
  const finish = (): void => { done = true; socket.off('data', onData) }
  const onData = (chunk: Buffer): void => {
    if (done) return
    chunks.push(chunk)
    have += chunk.length
    if (need < 0 && have >= 4) {
      need = Buffer.concat(chunks).readUInt32BE(0)
      if (need > maxFrame) {
        finish()
        onFail('frame too large')
        return
      }
    }
    if (need >= 0 && have >= need + 4) {
      finish()
      onFrame(Buffer.concat(chunks).subarray(4, 4 + need))
    }
  }
  socket.on('data', onData)
  socket.once('end', () => {
    if (done) return
    finish()
    onFail(have === 0 ? 'closed before a frame' : 'truncated frame')
  })
  socket.once('close', () => {
    if (done) return
    finish()
    onFail(have === 0 ? 'closed before a frame' : 'truncated frame')
  })
  if (head !== undefined && head.length > 0) onData(head)
}
