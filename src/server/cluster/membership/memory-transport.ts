// An in-memory network for deterministic tests (memberlist's MockTransport):
// delivery is scheduled on the given clock, so a fake clock decides when
// packets arrive; links can be cut to simulate partitions and crashed nodes.
import type { Clock } from './clock.js'
import { TransportError, addressKey, type Address, type Transport, type TransportHandlers, type TransportStats } from './transport.js'

const directed = (from: Address, to: Address): string => `${addressKey(from)}|${addressKey(to)}`

/** Adds (or removes) both directions between two addresses. */
function setPair (set: Set<string>, a: Address, b: Address, on: boolean): void {
  for (const k of [directed(a, b), directed(b, a)]) {
    if (on) set.add(k)
    else set.delete(k)
  }
}

export class MemoryNetwork {
  readonly clock: Clock
  /** One-way latency of every delivery. */
  latencyMs: number
  private readonly endpoints = new Map<string, TransportHandlers>()
  /** Addresses that neither send nor receive (crashed or paused processes). */
  private readonly down = new Set<string>()
  private readonly cut = new Set<string>()
  /** Links that drop packets (UDP) and pass exchanges (TCP): a firewall open for TCP only. */
  private readonly packetsCut = new Set<string>()

  constructor (clock: Clock, latencyMs = 1) {
    this.clock = clock
    this.latencyMs = latencyMs
  }

  transport (host: string, port = 7946): MemoryTransport {
    return new MemoryTransport(this, { host, port })
  }

  /** Stops all traffic to and from an address (like SIGSTOP or SIGKILL). */
  setDown (a: Address, down: boolean): void {
    if (down) this.down.add(addressKey(a))
    else this.down.delete(addressKey(a))
  }

  /** Cuts (or heals) the link between two addresses, both directions. */
  setLinkCut (a: Address, b: Address, cut: boolean): void { setPair(this.cut, a, b, cut) }

  /** Drops (or restores) the packets between two addresses, both directions; exchanges still pass. */
  setPacketsCut (a: Address, b: Address, cut: boolean): void { setPair(this.packetsCut, a, b, cut) }

  /** @internal */
  packetReachable (from: Address, to: Address): TransportHandlers | undefined {
    return this.packetsCut.has(directed(from, to)) ? undefined : this.reachable(from, to)
  }

  /** @internal */
  register (a: Address, handlers: TransportHandlers | undefined): void {
    if (handlers === undefined) this.endpoints.delete(addressKey(a))
    else this.endpoints.set(addressKey(a), handlers)
  }

  /** @internal */
  reachable (from: Address, to: Address): TransportHandlers | undefined {
    if (this.down.has(addressKey(from)) || this.down.has(addressKey(to))) return undefined
    if (this.cut.has(directed(from, to))) return undefined
    return this.endpoints.get(addressKey(to))
  }
}

export class MemoryTransport implements Transport {
  readonly local: Address
  readonly stats: TransportStats = { bytesSent: 0, bytesReceived: 0 }
  private readonly network: MemoryNetwork
  private running = false

  constructor (network: MemoryNetwork, local: Address) {
    this.network = network
    this.local = local
  }

  async start (handlers: TransportHandlers): Promise<void> {
    const wrapped: TransportHandlers = {
      packet: (from, data) => { this.stats.bytesReceived += data.length; handlers.packet(from, data) },
      exchange: (from, request) => { this.stats.bytesReceived += request.length; return handlers.exchange(from, request) }
    }
    this.network.register(this.local, wrapped)
    this.running = true
  }

  async stop (): Promise<void> {
    this.running = false
    this.network.register(this.local, undefined)
  }

  sendPacket (to: Address, data: Buffer): void {
    if (!this.running) return
    this.stats.bytesSent += data.length
    const copy = Buffer.from(data)
    this.network.clock.setTimeout(() => {
      this.network.packetReachable(this.local, to)?.packet(this.local, copy)
    }, this.network.latencyMs)
  }

  exchange (to: Address, request: Buffer, timeoutMs: number): Promise<Buffer> {
    if (!this.running) return Promise.reject(new TransportError('transport stopped'))
    this.stats.bytesSent += request.length
    const clock = this.network.clock
    return new Promise((resolve, reject) => {
      let settled = false
      const timer = clock.setTimeout(() => {
        if (settled) return
        settled = true
        reject(new TransportError(`exchange with ${addressKey(to)} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      clock.setTimeout(() => {
        const peer = this.network.reachable(this.local, to)
        // An unreachable peer looks like a connect that never completes: the timeout decides.
        if (peer === undefined) return
        peer.exchange(this.local, Buffer.from(request)).then((response) => {
          clock.setTimeout(() => {
            if (settled) return
            settled = true
            clock.clearTimeout(timer)
            if (response === undefined || this.network.reachable(to, this.local) === undefined) {
              reject(new TransportError(`exchange with ${addressKey(to)}: stream closed`))
              return
            }
            this.stats.bytesReceived += response.length
            resolve(Buffer.from(response))
          }, this.network.latencyMs)
        }, (err: unknown) => {
          if (settled) return
          settled = true
          clock.clearTimeout(timer)
          reject(new TransportError(`exchange with ${addressKey(to)} failed`, { cause: err }))
        })
      }, this.network.latencyMs)
    })
  }
}
