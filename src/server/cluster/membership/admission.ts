// Admission by address: who may talk to this node's cluster port when there
// is no cluster key. Without a key nothing on the wire proves membership, so
// a node accepts UDP packets and TCP connections (push/pull and peer links)
// only from the addresses its discovery yields: the DNS SRV answers (a
// Kubernetes headless Service lists exactly the StatefulSet's pods) and the
// resolved seed list, re-resolved every discovery.resolve_interval and when
// an address it does not know knocks (at most every RESOLVE_ON_DEMAND_MS, so
// a pod that just started is admitted within a resolution, not a period).
//
// Decisions, and why:
// - No vouching. A member's word about a third address (gossip, push/pull)
//   admits nobody: that would let any address one member admits into every
//   member. So without a key every member's discovery must yield every
//   member: SRV does; a seed list must list every node (a common seed alone
//   is not enough). With a key, admission is by the key instead (this class
//   is not used) and any address may join.
// - Sticky for live members. An address discovery once yielded stays
//   admitted while a live member is at it, so a DNS hiccup or a pod briefly
//   missing from the answers does not cut off a member that is up.
// - By host, not port: TCP connections come from ephemeral ports.
// - Ourselves: the advertised and bound addresses.
//
// Admission by address is not authentication: anyone who can send from an
// admitted address (the same host, a spoofed UDP source) gets in. A key is
// what authenticates (docs/security.md).
import { isIP } from 'node:net'

/** How often an unknown address may trigger a resolution of its own. */
export const RESOLVE_ON_DEMAND_MS = 2000

/** Most addresses remembered as "once yielded" (the sticky set). */
const MAX_REMEMBERED = 10_000

/** ::ffff:10.0.0.1 (an IPv4 peer on a dual-stack socket) is 10.0.0.1. */
export function normalizeHost (host: string): string {
  const h = host.startsWith('::ffff:') && isIP(host.slice(7)) === 4 ? host.slice(7) : host
  return h.toLowerCase()
}

export interface AdmissionOptions {
  /** Our own addresses (advertised, bound). */
  self: readonly string[]
  /** Hosts of the members we hold alive or suspect. */
  liveHosts: () => Iterable<string>
}

export class Admission {
  private readonly self: Set<string>
  private readonly liveHosts: () => Iterable<string>
  private current = new Set<string>()
  private readonly remembered = new Set<string>()

  constructor (options: AdmissionOptions) {
    this.self = new Set(options.self.map(normalizeHost))
    this.liveHosts = options.liveHosts
  }

  /**
   * The hosts a resolution yielded. `complete`: it resolved every source
   * (no DNS error); an incomplete one only adds, so a failed lookup does not
   * forget the addresses it would have given.
   */
  update (hosts: Iterable<string>, complete: boolean): void {
    const next = new Set<string>()
    for (const h of hosts) next.add(normalizeHost(h))
    if (!complete) for (const h of this.current) next.add(h)
    this.current = next
    for (const h of next) {
      if (this.remembered.size >= MAX_REMEMBERED) break
      this.remembered.add(h)
    }
  }

  admits (host: string): boolean {
    const h = normalizeHost(host)
    if (this.current.has(h) || this.self.has(h)) return true
    if (!this.remembered.has(h)) return false
    for (const live of this.liveHosts()) if (normalizeHost(live) === h) return true
    return false
  }

  /** The addresses admitted now by discovery (tests, diagnostics). */
  get yielded (): string[] { return [...this.current].sort() }
}
