// The start window of a node restarted with storage in a cluster (opened by
// storage.ts when cluster.expected_members > 1 and discovery is configured;
// docs/storage.md "On restart"). After a restart of every node at once, the
// node back first knows nothing of the sessions on the others' disks. For
// its first storage.peers_wait ms:
//   - a resuming client's session fetch waits until the expected members
//     are alive (or the window is over): its session may be on their disks;
//   - QoS 1/2 publishes wait until they sent their route tables: with no
//     route to those sessions, a message would be acknowledged for nobody.
//
// A member that is still not alive when the window ends is taken for gone
// (a host that died in the restart, a volume that did not attach): the
// replicas of its sessions read from this node's disk are taken over here
// (promotion.ts), as on a death, so their clients resume them anywhere and
// publishes reach them. Their replica stamps rank them above the home's
// unstamped disk copies if it comes back later (session-reconcile.ts). Once
// they are stored, and so routed, the peers get `start-settled` (after the
// route deltas, on the same link), and publishes go on waiting, at most
// another peers_wait, until every linked peer said it: a publish on another
// node must not go out before the routes of the sessions taken over here.
import type { DataPlaneContext } from './context.js'
import { delay, sendControl } from './context.js'
import type { ReplicaStore } from './replica-store.js'
import type { Promotion } from './promotion.js'

export interface StartWindowHost {
  replicas: ReplicaStore
  promotion: Promotion
}

export class StartWindow {
  private readonly ctx: DataPlaneContext
  private readonly host: StartWindowHost
  /** When the window ends (0: no window: a single node, no storage, or not restarted). */
  private until = 0
  private length = 0
  /** This node's sessions of absent members are stored (or it had no window). */
  private settled = true
  /** Peers whose start-settled came on their current link. */
  private readonly settledPeers = new Set<string>()
  /** Resolves once the absent members' replicas are being taken over (their promotions registered). */
  private swept: Promise<void> = Promise.resolve()
  private fetchWaiting: Promise<void> | undefined
  private routesKnown = true
  private timer: NodeJS.Timeout | undefined

  constructor (ctx: DataPlaneContext, host: StartWindowHost) {
    this.ctx = ctx
    this.host = host
  }

  /** Opens the window for `ms` from now (before the node joins its peers). */
  open (ms: number): void {
    this.length = ms
    this.until = Date.now() + ms
    this.settled = false
    this.routesKnown = false
    let sweptNow!: () => void
    this.swept = new Promise((resolve) => { sweptNow = resolve })
    this.timer = setTimeout(() => { this.sweep(sweptNow).catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'start window: sessions of absent members not taken over')) }, ms)
    this.timer.unref()
  }

  stop (): void { clearTimeout(this.timer) }

  private expectedAlive (): boolean {
    return this.ctx.links.alivePeers().length + 1 >= this.ctx.config.cluster.expected_members
  }

  /** What a resuming client's session fetch waits for first: undefined when nothing. */
  fetchWait (): Promise<void> | undefined {
    if (Date.now() >= this.until || this.expectedAlive()) return undefined
    this.fetchWaiting ??= (async () => {
      while (Date.now() < this.until && !this.expectedAlive()) await delay(100)
    })()
    return this.fetchWaiting
  }

  /**
   * A replica read from disk and not confirmed by its home is asked for
   * (a fetch here or a peer's): if its home is not alive, it may be taken
   * over when the window ends; resolves once it would be (then
   * promotion.promoting has it). Undefined when there is nothing to wait for.
   */
  beforeTakeover (clientId: string): Promise<void> | undefined {
    if (this.until === 0 || Date.now() >= this.until) return undefined
    const { replicas } = this.host
    if (!replicas.isUnconfirmed(clientId)) return undefined
    const owner = replicas.ownerOf(clientId)
    if (owner === undefined || this.ctx.links.alivePeers().includes(owner)) return undefined
    return this.swept
  }

  /** Whether QoS 1/2 publishes still wait (asked on every publish: once over, it stays over). */
  routesPending (): boolean {
    if (this.routesKnown) return false
    const { links, routing } = this.ctx
    const now = Date.now()
    const tables = links.peers.filter((p) => routing.peerVersion(p) !== undefined).length
    if (tables + 1 >= this.ctx.config.cluster.expected_members) {
      this.routesKnown = true
    } else if (now >= this.until) {
      const waiting = this.settled ? links.upPeers().filter((p) => !this.settledPeers.has(p)) : [this.ctx.name]
      if (waiting.length === 0) {
        this.routesKnown = true
      } else if (now >= this.until + this.length) {
        this.routesKnown = true
        this.ctx.log.warn({ waiting, sinceStartMs: now - this.until + this.length }, 'start window: publishing before these nodes said the sessions of absent members are taken over: their subscribers may miss these messages')
      }
    }
    return !this.routesKnown
  }

  /** A link came up (after its route table was queued): the peer learns whether our window is over. */
  linkUp (peer: string): void {
    if (this.settled) sendControl(this.ctx, peer, { kind: 'start-settled' })
  }

  linkDown (peer: string): void { this.settledPeers.delete(peer) }

  /** The peer's start window is over, its takeovers stored and their routes sent. */
  received (peer: string): void { this.settledPeers.add(peer) }

  private async sweep (sweptNow: () => void): Promise<void> {
    const alive = new Set(this.ctx.links.alivePeers())
    const absent = new Map<string, string[]>()
    for (const id of this.host.replicas.clientIds()) {
      const owner = this.host.replicas.ownerOf(id)
      if (owner === undefined || alive.has(owner) || !this.host.replicas.isUnconfirmed(id)) continue
      const ids = absent.get(owner) ?? []
      ids.push(id)
      absent.set(owner, ids)
    }
    const promotions: Array<Promise<void>> = []
    for (const [owner, ids] of absent) {
      this.ctx.log.warn({ peer: owner, replicas: ids.length, waitedMs: this.length }, 'member not back within the start window (storage.peers_wait): the replicas of its sessions read from disk are taken over here')
      promotions.push(this.host.promotion.promote(owner, ids))
    }
    sweptNow()
    await Promise.allSettled(promotions)
    // After the route deltas of the sessions just stored (queued on each link as they were stored).
    this.settled = true
    for (const peer of this.ctx.links.upPeers()) sendControl(this.ctx, peer, { kind: 'start-settled' })
  }
}
