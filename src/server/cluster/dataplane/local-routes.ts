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
import type { Aedes } from 'aedes'
import { displayTopic, isMarker } from '../../mqtt/shared-subscriptions.js'
import type { DataPlaneContext } from './context.js'
import { sendControl } from './context.js'
import type { RouteDelta } from './routing-table.js'

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

  constructor (ctx: DataPlaneContext) {
    this.ctx = ctx
  }

  subscribeLayer (next: Aedes['subscribe']): Aedes['subscribe'] {
    const shared = this.ctx.mqtt.shared
    return (topic, func, done) => {
      if (!topic.startsWith('$SYS/') && !shared.isGroupDeliver(func)) {
        let topics = this.live.get(func)
        if (topics === undefined) { topics = new Set(); this.live.set(func, topics) }
        if (!topics.has(topic)) { topics.add(topic); this.change(displayTopic(topic), true) }
      }
      next(topic, func, done)
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

  /** A local subscription appeared or went away: tell every peer when the routing table says so. */
  private change (filter: string, add: boolean): void {
    const delta: RouteDelta | undefined = add ? this.ctx.routing.subscribe(filter) : this.ctx.routing.unsubscribe(filter)
    if (delta === undefined) return
    for (const peer of this.ctx.links.peers) sendControl(this.ctx, peer, { kind: 'route-delta', delta })
  }
}
