// The chaos hook (issue 6): a transport wrapper that drops traffic to and
// from chosen peers, so partitions can be made without root or iptables.
// It cannot be switched on by accident: the membership only wraps its
// transport when constructed with `faultInjection: true` (an option for the
// chaos launcher, deliberately not a config key an operator could set), and
// the wrapper refuses any bind address outside loopback.
import { isIP } from 'node:net'
import { TransportError, addressKey, type Address, type Transport, type TransportHandlers, type TransportStats } from './membership/transport.js'

/** What the data plane asks of the chaos hook: whether a peer's links are cut, and when that changes. */
export interface LinkFaults {
  linksBlocked (peer: Address): boolean
  onChange (listener: () => void): void
}

export class FaultInjectingTransport implements Transport, LinkFaults {
  private readonly inner: Transport
  /** host:port (or bare host) of peers whose traffic is dropped both ways (a partition: gossip and data plane). */
  private readonly blocked = new Set<string>()
  /** Peers whose data-plane links only are cut (membership still sees them alive). */
  private readonly linksCut = new Set<string>()
  /** Peers whose membership traffic only is dropped (their data-plane links stay): a false death. */
  private readonly gossipCut = new Set<string>()
  /** Peers whose UDP only is dropped (probes, acks, gossip); TCP exchanges and links pass: a firewall open for TCP only. */
  private readonly udpCut = new Set<string>()
  private readonly listeners: Array<() => void> = []

  constructor (inner: Transport) {
    if (!isLoopback(inner.local.host)) {
      throw new Error(`fault injection is only allowed on loopback addresses, not ${inner.local.host}`)
    }
    this.inner = inner
  }

  get local (): Address { return this.inner.local }
  get stats (): TransportStats { return this.inner.stats }

  /** Drops everything to and from `peer` (a host, or host:port) until healed. */
  block (peer: string): void { this.blocked.add(peer); this.changed() }
  /** Cuts only the data-plane links to and from `peer` until healed. */
  cutLinks (peer: string): void { this.linksCut.add(peer); this.changed() }
  /** Drops only the membership traffic (gossip, probes, push/pull) to and from `peer` until healed. */
  cutGossip (peer: string): void { this.gossipCut.add(peer); this.changed() }
  /** Drops only the UDP packets to and from `peer` until healed; TCP (push/pull, the fallback probe, links) passes. */
  cutUdp (peer: string): void { this.udpCut.add(peer); this.changed() }
  heal (): void { this.blocked.clear(); this.linksCut.clear(); this.gossipCut.clear(); this.udpCut.clear(); this.changed() }

  linksBlocked (a: Address): boolean {
    return this.isBlocked(a) || this.linksCut.has(a.host) || this.linksCut.has(addressKey(a))
  }

  onChange (listener: () => void): void { this.listeners.push(listener) }

  private changed (): void { for (const l of this.listeners) l() }

  private isBlocked (a: Address): boolean {
    return this.blocked.has(a.host) || this.blocked.has(addressKey(a))
  }

  private gossipBlocked (a: Address): boolean {
    return this.isBlocked(a) || this.gossipCut.has(a.host) || this.gossipCut.has(addressKey(a))
  }

  private udpBlocked (a: Address): boolean {
    return this.gossipBlocked(a) || this.udpCut.has(a.host) || this.udpCut.has(addressKey(a))
  }

  start (handlers: TransportHandlers): Promise<void> {
    return this.inner.start({
      packet: (from, data) => { if (!this.udpBlocked(from)) handlers.packet(from, data) },
      exchange: async (from, request) => this.gossipBlocked(from) ? undefined : await handlers.exchange(from, request)
    })
  }

  stop (): Promise<void> { return this.inner.stop() }

  sendPacket (to: Address, data: Buffer): void {
    if (!this.udpBlocked(to)) this.inner.sendPacket(to, data)
  }

  async exchange (to: Address, request: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.gossipBlocked(to)) throw new TransportError(`link to ${addressKey(to)} blocked by fault injection`)
    return await this.inner.exchange(to, request, timeoutMs)
  }
}

function isLoopback (host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}
