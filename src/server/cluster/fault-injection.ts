// The chaos hook (issue 6): a transport wrapper that drops traffic to and
// from chosen peers, so partitions can be made without root or iptables.
// It cannot be switched on by accident: the membership only wraps its
// transport when constructed with `faultInjection: true` (an option for the
// chaos launcher, deliberately not a config key an operator could set), and
// the wrapper refuses any bind address outside loopback.
import { isIP } from 'node:net'
import { TransportError, addressKey, type Address, type Transport, type TransportHandlers, type TransportStats } from './transport.js'

export class FaultInjectingTransport implements Transport {
  private readonly inner: Transport
  /** host:port (or bare host) of peers whose traffic is dropped both ways. */
  private readonly blocked = new Set<string>()

  constructor (inner: Transport) {
    if (!isLoopback(inner.local.host)) {
      throw new Error(`fault injection is only allowed on loopback addresses, not ${inner.local.host}`)
    }
    this.inner = inner
  }

  get local (): Address { return this.inner.local }
  get stats (): TransportStats { return this.inner.stats }

  /** Drops everything to and from `peer` (a host, or host:port) until unblocked. */
  block (peer: string): void { this.blocked.add(peer) }
  unblock (peer: string): void { this.blocked.delete(peer) }
  heal (): void { this.blocked.clear() }

  private isBlocked (a: Address): boolean {
    return this.blocked.has(a.host) || this.blocked.has(addressKey(a))
  }

  start (handlers: TransportHandlers): Promise<void> {
    return this.inner.start({
      packet: (from, data) => { if (!this.isBlocked(from)) handlers.packet(from, data) },
      exchange: async (from, request) => this.isBlocked(from) ? undefined : await handlers.exchange(from, request)
    })
  }

  stop (): Promise<void> { return this.inner.stop() }

  sendPacket (to: Address, data: Buffer): void {
    if (!this.isBlocked(to)) this.inner.sendPacket(to, data)
  }

  async exchange (to: Address, request: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.isBlocked(to)) throw new TransportError(`link to ${addressKey(to)} blocked by fault injection`)
    return await this.inner.exchange(to, request, timeoutMs)
  }
}

function isLoopback (host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}
