// The simulation's network: in-memory connections between nodes (peer
// links) and between clients and nodes (MQTT), driven by the fake clock.
//
// Each direction of a connection is a pipe that delivers chunks in order,
// after a latency the seeded random source picks per chunk (never earlier
// than the chunk before it). The world bends pipes to make faults:
// - frozen: chunks wait (a partition, a paused process); a thaw delivers
//   them in order, as TCP would after retransmission;
// - reset: the far end sees the connection close (a killed process: the
//   kernel resets its sockets; a cut link);
// and decides whether a dial connects, is refused (nothing listens: the
// process is dead, or the link is cut) or hangs (partitioned away).
import { Duplex } from 'node:stream'
import type { Random } from '../../src/random.js'

const EOF: unique symbol = Symbol('end of stream')

export type Reachability = 'ok' | 'refused' | 'hang'

export interface NetworkPolicy {
  /** Whether traffic between two hosts flows now (false: it waits, frozen). */
  flows: (from: string, to: string) => boolean
}

interface Pipe {
  from: string
  to: string
  /** When the last chunk of this pipe was (or will be) delivered. */
  last: number
  /** Chunks waiting while the pipe is frozen, in order (EOF: the sender half-closed). */
  held: Array<Buffer | typeof EOF>
  scheduled: number
}

/** One end of an in-memory connection, with the surface of a net.Socket that peer links and aedes use. */
export class SimSocket extends Duplex {
  readonly localAddress: string
  readonly remoteAddress: string
  readonly remotePort: number
  peer: SimSocket | undefined
  private readonly network: SimNetwork
  /** This end's outgoing direction. */
  outPipe: Pipe | undefined
  connecting = true

  constructor (network: SimNetwork, local: string, remote: string, remotePort: number) {
    super({ allowHalfOpen: false })
    this.network = network
    this.localAddress = local
    this.remoteAddress = remote
    this.remotePort = remotePort
  }

  setNoDelay (): this { return this }
  setKeepAlive (): this { return this }
  setTimeout (): this { return this }
  destroySoon (): void { this.end() }

  override _read (): void {}

  override _write (chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.peer === undefined || this.outPipe === undefined) {
      callback(new Error('not connected'))
      return
    }
    this.network.transmit(this.outPipe, this.peer, chunk)
    callback()
  }

  override _final (callback: (err?: Error | null) => void): void {
    // A half close reaches the far end after everything written before it.
    if (this.peer !== undefined && this.outPipe !== undefined) this.network.transmit(this.outPipe, this.peer, null)
    callback()
  }

  override _destroy (err: Error | null, callback: (err?: Error | null) => void): void {
    const peer = this.peer
    this.peer = undefined
    if (peer !== undefined && !peer.destroyed) this.network.resetLater(this.outPipe, peer)
    callback(err)
  }
}

export class SimNetwork {
  private readonly random: Random
  private readonly policy: NetworkPolicy
  private readonly pipes = new Set<Pipe>()
  private readonly sockets = new Set<SimSocket>()
  /** One-way latency of a chunk, ms. */
  readonly minLatency: number
  readonly maxLatency: number
  bytes = 0
  chunks = 0

  constructor (options: { random: Random, policy: NetworkPolicy, minLatencyMs?: number, maxLatencyMs?: number }) {
    this.random = options.random
    this.policy = options.policy
    this.minLatency = options.minLatencyMs ?? 0.05
    this.maxLatency = options.maxLatencyMs ?? 2
  }

  private latency (): number {
    return this.minLatency + this.random() * (this.maxLatency - this.minLatency)
  }

  /**
   * Opens a connection from host `from` to `to`:`port`. `accept` is the far
   * side's handler (undefined: nothing listens there). The dialing end emits
   * 'connect' (or an ECONNREFUSED error) after a round trip, or nothing
   * (`hang`: the far side is unreachable; the dialer's own timeouts act).
   */
  dial (from: string, to: string, port: number, reach: Reachability, accept: ((socket: SimSocket) => void) | undefined): SimSocket {
    const client = new SimSocket(this, from, to, port)
    this.track(client)
    const rtt = this.latency() * 2
    if (reach === 'hang') return client
    setTimeout(() => {
      if (client.destroyed) return
      if (reach === 'refused' || accept === undefined) {
        client.destroy(Object.assign(new Error(`connect ECONNREFUSED ${to}:${port}`), { code: 'ECONNREFUSED' }))
        return
      }
      const server = new SimSocket(this, to, from, 40000 + Math.floor(this.random() * 20000))
      this.track(server)
      client.peer = server
      server.peer = client
      client.outPipe = this.newPipe(from, to)
      server.outPipe = this.newPipe(to, from)
      client.connecting = false
      server.connecting = false
      accept(server)
      client.emit('connect')
    }, rtt)
    return client
  }

  private track (s: SimSocket): void {
    this.sockets.add(s)
    s.once('close', () => this.sockets.delete(s))
  }

  private newPipe (from: string, to: string): Pipe {
    const p: Pipe = { from, to, last: 0, held: [], scheduled: 0 }
    this.pipes.add(p)
    return p
  }

  /** Sends a chunk (null: end of stream) down a pipe: delivered in order after its latency, or held while frozen. */
  transmit (pipe: Pipe, to: SimSocket, chunk: Buffer | null): void {
    if (chunk !== null) {
      this.bytes += chunk.length
      this.chunks++
    }
    if (!this.policy.flows(pipe.from, pipe.to) || pipe.held.length > 0) {
      pipe.held.push(chunk ?? EOF)
      return
    }
    this.schedule(pipe, to, chunk)
  }

  private schedule (pipe: Pipe, to: SimSocket, chunk: Buffer | null): void {
    const now = Date.now()
    const at = Math.max(pipe.last, now + this.latency())
    pipe.last = at
    pipe.scheduled++
    setTimeout(() => {
      pipe.scheduled--
      if (to.destroyed) return
      if (chunk === null) to.push(null)
      else to.push(chunk)
    }, at - now)
  }

  /** The far end of a destroyed socket closes, after whatever was already on its way. */
  resetLater (pipe: Pipe | undefined, to: SimSocket): void {
    const now = Date.now()
    const at = Math.max(pipe?.last ?? 0, now + this.latency())
    setTimeout(() => {
      if (!to.destroyed) to.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))
    }, at - now)
    if (pipe !== undefined) this.pipes.delete(pipe)
  }

  /** Delivers what frozen pipes held, where traffic flows again. */
  thaw (): void {
    for (const pipe of this.pipes) {
      if (pipe.held.length === 0 || !this.policy.flows(pipe.from, pipe.to)) continue
      const to = this.socketFor(pipe)
      const held = pipe.held
      pipe.held = []
      if (to === undefined) continue
      for (const c of held) this.schedule(pipe, to, c === EOF ? null : c)
    }
  }

  private socketFor (pipe: Pipe): SimSocket | undefined {
    for (const s of this.sockets) if (s.outPipe === pipe) return s.peer
    return undefined
  }

  /** Resets every connection with an end on `host` (a process killed: the kernel closes its sockets). */
  resetHost (host: string): void {
    for (const s of [...this.sockets]) {
      if (s.localAddress === host && !s.destroyed) s.destroy()
    }
  }

  /** Resets the connections between two groups of hosts (a cut link). */
  resetBetween (a: ReadonlySet<string>, b: ReadonlySet<string>): void {
    for (const s of [...this.sockets]) {
      if (s.destroyed) continue
      if ((a.has(s.localAddress) && b.has(s.remoteAddress)) || (b.has(s.localAddress) && a.has(s.remoteAddress))) s.destroy()
    }
  }

  get openSockets (): number { return this.sockets.size }
}

