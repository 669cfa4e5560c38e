// Which peers need a publish. Each node tells its peers which topic filters
// its local sessions hold (a full table when a link starts, then deltas as
// they change); every node keeps those tables and answers, for a topic, which
// peers have a matching subscription, so a publish crosses the network only
// to nodes that will deliver it.
//
// Invariants:
// - Local filters are reference counted: two local subscribers of one filter
//   make one route, and the route goes away with the last of them.
// - A peer's deltas carry consecutive versions; a delta at or below the
//   version we hold is stale (a retransmission, or older than a full table
//   that superseded it) and ignored; a delta beyond the next version means
//   we missed one, and the caller must ask for the full table again.
// - Shared subscriptions ($share/g/f, MQTT 5 section 4.8.2) are routed apart:
//   for each (g, f) matching a topic, exactly one node in the cluster
//   (possibly this one) is picked, weighted by how many members it holds, so
//   the message reaches one member of the group cluster-wide.
//
// Pure: no I/O, no timers; the peer link carries deltas and tables.
import { FilterTrie } from './filter-trie.js'
import { parseShared } from '../../../topic-filter.js'

/** One change of this node's subscriptions: `count` 0 removes the filter. */
export interface RouteDelta {
  version: number
  filter: string
  /** Ordinary filter: 1 (present) or 0. Shared filter: members on the node. */
  count: number
}

/** A node's whole table, sent when a link starts. */
export interface RouteTable {
  version: number
  filters: Array<[filter: string, count: number]>
}

export type DeltaResult = 'applied' | 'stale' | 'gap'

/** Where one shared subscription's copy of a message goes. */
export interface SharedTarget {
  group: string
  filter: string
  /** The chosen node: a peer name, or this node's own name. */
  node: string
}

interface SharedRoute { node: string, group: string, filter: string, key: string }

interface PeerRoutes { version: number, filters: Map<string, number> }

interface MatchResult {
  peers: readonly string[]
  /** Per shared subscription key, the candidate nodes sorted by name. */
  shared: Array<{ group: string, filter: string, key: string, nodes: string[] }>
}

export interface RoutingTableOptions {
  /** Most topics whose match result is cached; the cache is dropped whenever routes change. */
  cacheSize?: number
}

export class RoutingTable {
  readonly localName: string
  private readonly local = new Map<string, number>()
  private localVersion = 0
  private readonly peers = new Map<string, PeerRoutes>()
  private readonly trie = new FilterTrie<string>()
  private readonly sharedTrie = new FilterTrie<SharedRoute>()
  /** Interned shared route values (node, group, filter), so the trie can remove them by identity. */
  private readonly sharedRoutes = new Map<string, SharedRoute>()
  private readonly cache = new Map<string, MatchResult>()
  private readonly cacheSize: number
  /** Round-robin position per shared subscription key. */
  private readonly rotation = new Map<string, number>()

  constructor (localName: string, options: RoutingTableOptions = {}) {
    this.localName = localName
    this.cacheSize = options.cacheSize ?? 10_000
  }

  // ---- this node's subscriptions -------------------------------------------

  /** A local session subscribed to `filter`; returns the delta to send to peers, if any. */
  subscribe (filter: string): RouteDelta | undefined {
    const before = this.local.get(filter) ?? 0
    return this.setLocal(filter, before + 1, before)
  }

  /** A local session unsubscribed (or went away); returns the delta to send to peers, if any. */
  unsubscribe (filter: string): RouteDelta | undefined {
    const before = this.local.get(filter) ?? 0
    if (before === 0) return undefined
    return this.setLocal(filter, before - 1, before)
  }

  /** The full local table, for a link that (re)starts. */
  localTable (): RouteTable {
    return { version: this.localVersion, filters: [...this.local] }
  }

  private setLocal (filter: string, after: number, before: number): RouteDelta | undefined {
    if (after === 0) this.local.delete(filter)
    else this.local.set(filter, after)
    const shared = parseShared(filter)
    if (shared !== undefined) {
      this.setShared(this.localName, filter, after)
      // Member counts weight the cluster-wide pick, so every change is news.
      return { version: ++this.localVersion, filter, count: after }
    }
    // Local ordinary filters are not put in the trie: peersFor answers about peers only.
    if ((before === 0) === (after === 0)) return undefined
    return { version: ++this.localVersion, filter, count: after === 0 ? 0 : 1 }
  }

  // ---- peers' subscriptions --------------------------------------------------

  /** Replaces everything known about `peer` with its full table. */
  applyTable (peer: string, table: RouteTable): void {
    this.assertPeer(peer)
    const old = this.peers.get(peer)
    const next = new Map<string, number>()
    for (const [filter, count] of table.filters) if (count > 0) next.set(filter, count)
    if (old !== undefined) {
      for (const filter of old.filters.keys()) if (!next.has(filter)) this.setRemote(peer, old, filter, 0)
    }
    const routes: PeerRoutes = old ?? { version: 0, filters: new Map() }
    routes.version = table.version
    this.peers.set(peer, routes)
    for (const [filter, count] of next) this.setRemote(peer, routes, filter, count)
  }

  /** Applies one delta from `peer`; see the class comment for stale and gap. */
  applyDelta (peer: string, delta: RouteDelta): DeltaResult {
    const routes = this.peers.get(peer)
    if (routes === undefined) return 'gap'
    if (delta.version <= routes.version) return 'stale'
    if (delta.version !== routes.version + 1) return 'gap'
    routes.version = delta.version
    this.setRemote(peer, routes, delta.filter, delta.count)
    return 'applied'
  }

  /** Forgets a peer (it left or died). */
  removePeer (peer: string): void {
    const routes = this.peers.get(peer)
    if (routes === undefined) return
    for (const filter of [...routes.filters.keys()]) this.setRemote(peer, routes, filter, 0)
    this.peers.delete(peer)
  }

  /** The ordinary filters `peer` routes. */
  filtersOf (peer: string): string[] {
    return [...(this.peers.get(peer)?.filters.keys() ?? [])].filter((f) => parseShared(f) === undefined)
  }

  /** What `peer` told us about `filter`: 0 absent, 1 an ordinary filter, or a shared filter's member count. */
  peerCount (peer: string, filter: string): number {
    return this.peers.get(peer)?.filters.get(filter) ?? 0
  }

  /** Version of the last table or delta applied from `peer` (undefined: no table yet). */
  peerVersion (peer: string): number | undefined {
    return this.peers.get(peer)?.version
  }

  private setRemote (peer: string, routes: PeerRoutes, filter: string, count: number): void {
    const before = routes.filters.get(filter) ?? 0
    if (count <= 0) routes.filters.delete(filter)
    else routes.filters.set(filter, count)
    if (parseShared(filter) !== undefined) {
      this.setShared(peer, filter, count)
      return
    }
    if (before === 0 && count > 0) { this.trie.add(filter, peer); this.cache.clear() }
    if (before > 0 && count <= 0) { this.trie.remove(filter, peer); this.cache.clear() }
  }

  private setShared (node: string, shareFilter: string, count: number): void {
    const shared = parseShared(shareFilter)!
    const id = `${node}\u0000${shareFilter}`
    const existing = this.sharedRoutes.get(id)
    if (count > 0 && existing === undefined) {
      const route = { node, group: shared.group, filter: shared.filter, key: shareFilter }
      this.sharedRoutes.set(id, route)
      this.sharedTrie.add(shared.filter, route)
    } else if (count <= 0 && existing !== undefined) {
      this.sharedRoutes.delete(id)
      this.sharedTrie.remove(shared.filter, existing)
    }
    this.cache.clear()
  }

  private assertPeer (peer: string): void {
    if (peer === this.localName) throw new RangeError('a routing table for the local node is kept by subscribe/unsubscribe')
  }

  // ---- questions -------------------------------------------------------------

  /** Peers with an ordinary (non-shared) subscription matching `topic`, sorted by name. */
  peersFor (topic: string): readonly string[] {
    return this.match(topic).peers
  }

  /**
   * For each shared subscription matching `topic`, picks the one node that
   * gets this message. The pick is a weighted round robin over the nodes
   * holding members of the group (sorted by name, weight = member count), so
   * over many messages each node gets its members' share. Advances the
   * rotation: call once per message.
   */
  pickShared (topic: string): SharedTarget[] {
    const out: SharedTarget[] = []
    for (const s of this.match(topic).shared) {
      const weights = s.nodes.map((n) => this.memberCount(n, s.key))
      const total = weights.reduce((a, b) => a + b, 0)
      if (total === 0) continue
      const position = this.rotation.get(s.key) ?? 0
      this.rotation.set(s.key, (position + 1) % total)
      let slot = position % total
      let chosen = s.nodes[0]!
      for (let i = 0; i < s.nodes.length; i++) {
        if (slot < weights[i]!) { chosen = s.nodes[i]!; break }
        slot -= weights[i]!
      }
      out.push({ group: s.group, filter: s.filter, node: chosen })
    }
    return out
  }

  /** Number of (peer, filter) routes held, shared ones included, this node's own excluded. */
  get size (): number {
    let n = 0
    for (const routes of this.peers.values()) n += routes.filters.size
    return n
  }

  /** Peers with a table. */
  get peerNames (): string[] { return [...this.peers.keys()].sort() }

  private memberCount (node: string, key: string): number {
    if (node === this.localName) return this.local.get(key) ?? 0
    return this.peers.get(node)?.filters.get(key) ?? 0
  }

  private match (topic: string): MatchResult {
    const hit = this.cache.get(topic)
    if (hit !== undefined) return hit
    const peers = new Set<string>()
    this.trie.match(topic, (peer) => peers.add(peer))
    const shared = new Map<string, { group: string, filter: string, key: string, nodes: string[] }>()
    this.sharedTrie.match(topic, (r) => {
      let s = shared.get(r.key)
      if (s === undefined) { s = { group: r.group, filter: r.filter, key: r.key, nodes: [] }; shared.set(r.key, s) }
      s.nodes.push(r.node)
    })
    for (const s of shared.values()) s.nodes.sort()
    const result: MatchResult = { peers: [...peers].sort(), shared: [...shared.values()] }
    if (this.cache.size >= this.cacheSize) this.cache.clear()
    this.cache.set(topic, result)
    return result
  }
}
