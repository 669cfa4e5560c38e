// The filters this node tells its peers about (routing-table.ts): a publish
// crosses to a peer only if the peer routes a matching filter.
//
// Two sources hold a filter here: every live subscription on aedes' emitter
// (aedes' subscribe/unsubscribe seams, layer 'cluster'; client subscriptions
// and the local shared-subscription groups' members), and every stored
// subscription of a persistent session (the persistence observer), which
// stays while its client is offline so messages still reach the node that
// queues them. A filter is routed while either holds it. $SYS is never
// routed; a shared subscription's member routes `$share/g/f` with a count
// (the group's own subscription to its filter does not route).
//
// A SUBACK means on a cluster what it means on one broker: from then on, a
// message published on any node reaches the subscription. So a live
// subscription that makes a new route here completes (aedes sends SUBACK
// once every subscribe of the packet completed) only when every peer linked
// at that moment acknowledged the route delta, which it applies as it reads
// it, or its link went down (the peer gets this whole table when it is back);
// a peer whose link stays up without answering within cluster.ack_timeout
// is logged and counted (broker_cluster_subscribes_unconfirmed_total), and
// the SUBACK goes. A filter routed already, or a node alone, waits for
// nothing.
import type { Aedes } from 'aedes'
import { displayTopic, isMarker } from '../../mqtt/shared-subscriptions.js'
import type { DataPlaneContext } from './context.js'
import { sendControl } from './context.js'
import type { RouteDelta } from './routing-table.js'
import type { PeerLink } from './peer-link.js'

type Deliver = Parameters<Aedes['subscribe']>[1]

/**
 * Stored subscriptions peers need to know about: not aedes' $SYS ones, not
 * shared-subscription markers (a group delivers to connected members only,
 * so an offline member must not attract messages).
 */
export function routable (topic: string): boolean {
  return !topic.startsWith('$SYS/') && !isMarker(topic)
}

export class LocalRoutes {
  private readonly ctx: DataPlaneContext
  /** Live subscriptions per aedes deliver function (a function may hold several topics). */
  private readonly live = new WeakMap<Deliver, Set<string>>()
  /** Persistent sessions' subscriptions, by client id: routed also while the client is offline. */
  private readonly stored = new Map<string, Set<string>>()
  /** Subscriptions completed before every linked peer confirmed their new route (cluster.ack_timeout). */
  unconfirmed = 0

  constructor (ctx: DataPlaneContext) {
    this.ctx = ctx
  }

  subscribeLayer (next: Aedes['subscribe']): Aedes['subscribe'] {
    const shared = this.ctx.mqtt.shared
    return (topic, func, done) => {
      let told: Told | undefined
      if (!topic.startsWith('$SYS/') && !shared.isGroupDeliver(func)) {
        let topics = this.live.get(func)
        if (topics === undefined) { topics = new Set(); this.live.set(func, topics) }
        if (!topics.has(topic)) { topics.add(topic); told = this.change(displayTopic(topic), true) }
      }
      if (told === undefined || told.length === 0) { next(topic, func, done); return }
      const routed = this.confirmed(topic, told)
      // aedes passes an error to this callback (a topic with too many levels), whatever its types say.
      const finish = done as ((err?: Error | null) => void) | undefined
      next(topic, func, ((err?: Error | null) => { void routed.then(() => finish?.(err)) }) as typeof done)
    }
  }

  unsubscribeLayer (next: Aedes['unsubscribe']): Aedes['unsubscribe'] {
    return (topic, func, done) => {
      const topics = this.live.get(func)
      if (topics?.delete(topic) === true) this.change(displayTopic(topic), false)
      next(topic, func, done)
    }
  }

  storedAdded (clientId: string, topics: Iterable<string>): void {
    let mine = this.stored.get(clientId)
    for (const t of topics) {
      if (!routable(t)) continue
      if (mine === undefined) { mine = new Set(); this.stored.set(clientId, mine) }
      if (!mine.has(t)) { mine.add(t); this.change(t, true) }
    }
  }

  storedRemoved (clientId: string, topics: Iterable<string>): void {
    const mine = this.stored.get(clientId)
    if (mine === undefined) return
    for (const t of topics) if (mine.delete(t)) this.change(t, false)
    if (mine.size === 0) this.stored.delete(clientId)
  }

  storedEnded (clientId: string): void {
    const mine = this.stored.get(clientId)
    if (mine === undefined) return
    this.stored.delete(clientId)
    for (const t of mine) this.change(t, false)
  }

  /** Routed filters of a stored session (empty when it holds none here). */
  storedOf (clientId: string): ReadonlySet<string> {
    return this.stored.get(clientId) ?? new Set()
  }

  /**
   * A local subscription appeared or went away: tell every peer when the
   * routing table says so. Returns the up links told and the sequence of the
   * delta on each; undefined when the route did not change.
   */
  private change (filter: string, add: boolean): Told | undefined {
    const delta: RouteDelta | undefined = add ? this.ctx.routing.subscribe(filter) : this.ctx.routing.unsubscribe(filter)
    if (delta === undefined) return undefined
    const told: Told = []
    for (const peer of this.ctx.links.peers) {
      const seq = sendControl(this.ctx, peer, { kind: 'route-delta', delta })
      const link = this.ctx.links.get(peer)
      if (seq !== undefined && link?.state === 'up') told.push([link, seq])
    }
    return told
  }

  /**
   * Resolves when every link in `told` acknowledged its delta or is no longer
   * up (a link that comes up again carries this whole route table), or after
   * cluster.ack_timeout; never rejects.
   */
  private async confirmed (topic: string, told: Told): Promise<void> {
    const timeoutMs = this.ctx.config.cluster.ack_timeout
    let wake!: () => void
    const woken = new Promise<void>((resolve) => { wake = resolve })
    const waits: Array<{ link: PeerLink, acked: boolean }> = []
    const done = (): boolean => waits.every((w) => w.acked || w.link.state !== 'up')
    for (const [link, seq] of told) {
      const w = { link, acked: false }
      waits.push(w)
      void link.whenAcked(seq).then(() => { w.acked = true; if (done()) wake() })
    }
    // Only for a link that stays up without answering: acknowledgements wake it first.
    const started = Date.now()
    const poll = setInterval(() => { if (done() || Date.now() - started >= timeoutMs) wake() }, 50)
    await woken
    clearInterval(poll)
    if (done()) return
    this.unconfirmed++
    const peers = waits.filter((w) => !w.acked).map((w) => w.link.peerName)
    this.ctx.warn('warn', { topic, peers, timeoutMs }, 'SUBACK sent before every peer confirmed the new route within cluster.ack_timeout: a publish on those peers can miss the subscription until the route reaches them')
  }
}

/** Up links a route delta was queued on, with its sequence on each. */
type Told = Array<[PeerLink, number]>
