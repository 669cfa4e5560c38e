// Finding peers to join (seed "How it works", extended): the SRV records of
// discovery.domain (a Kubernetes headless Service) and/or a static seed list.
// Resolution runs at start and again every discovery.resolve_interval, so
// clusters that formed apart (every pod restarted at once) find each other
// and merge; the seed resolved only once and relied on Kubernetes to kill a pod.
import { Resolver } from 'node:dns/promises'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { parseHostPort } from '../../../config/index.js'
import type { Address } from './transport.js'

export interface DiscoverySource {
  /** SRV name; empty: none. */
  domain: string
  /** host or host:port entries. */
  seeds: readonly string[]
  /** host or host:port of the DNS server to ask; empty: the system's. */
  dnsServer: string
  /** Port of seeds that name none. */
  defaultPort: number
  /** Per-query timeout of the resolver. */
  timeoutMs?: number
}

export function hasDiscovery (s: DiscoverySource): boolean {
  return s.domain !== '' || s.seeds.length > 0
}

export interface Resolution {
  addresses: Address[]
  /** What could not be resolved, for the log; not fatal: the next round tries again. */
  errors: string[]
}

/** Resolves every source into unique addresses, skipping `exclude` (ourselves). */
export async function resolvePeers (source: DiscoverySource, exclude: readonly Address[] = []): Promise<Resolution> {
  const resolver = new Resolver({ timeout: source.timeoutMs ?? 2000, tries: 2 })
  if (source.dnsServer !== '') {
    const server = parseHostPort(source.dnsServer, 53)
    if (server !== undefined) resolver.setServers([isIP(server.host) === 6 ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`])
  }
  const found: Address[] = []
  const errors: string[] = []
  if (source.domain !== '') {
    try {
      const records = await resolver.resolveSrv(source.domain)
      // Lower priority first, as SRV says; weights do not matter when we join all of them.
      records.sort((a, b) => a.priority - b.priority)
      for (const r of records) {
        for (const host of await hostAddresses(r.name, resolver, source.dnsServer !== '', errors)) found.push({ host, port: r.port })
      }
    } catch (err) {
      errors.push(`SRV ${source.domain}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  for (const seed of source.seeds) {
    const hp = parseHostPort(seed, source.defaultPort)
    if (hp === undefined) {
      errors.push(`seed "${seed}" is not host:port`)
      continue
    }
    for (const host of await hostAddresses(hp.host, resolver, false, errors)) found.push({ host, port: hp.port })
  }
  const seen = new Set(exclude.map((a) => `${a.host}:${a.port}`))
  const addresses: Address[] = []
  for (const a of found) {
    const key = `${a.host}:${a.port}`
    if (seen.has(key)) continue
    seen.add(key)
    addresses.push(a)
  }
  return { addresses, errors }
}

/**
 * IP literals as they are; names through the given DNS server when one is
 * configured (SRV targets live in the same zone), else the system resolver
 * (which also knows /etc/hosts).
 */
async function hostAddresses (host: string, resolver: Resolver, viaResolver: boolean, errors: string[]): Promise<string[]> {
  const name = host.endsWith('.') ? host.slice(0, -1) : host
  if (isIP(name) !== 0) return [name]
  try {
    if (viaResolver) return await resolver.resolve4(name)
    const all = await lookup(name, { all: true, family: 4 })
    return all.map((a) => a.address)
  } catch (err) {
    errors.push(`${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    return []
  }
}

/** The randomised formation wait: spread in [min, max] so simultaneous starters do not all form alone at once. */
export function formationWait (min: number, max: number, random: () => number): number {
  return Math.round(min + (max - min) * random())
}
