// mqtt.max_subscriptions_per_client. Each subscription of a client becomes a
// route that every node of the cluster holds, so one client with 20,000
// filters costs memory and route-sync traffic everywhere; past the limit a
// new filter is refused and counted in
// broker_limit_rejections_total{limit="subscriptions"}. Re-subscribing to a
// filter the client already has never counts. Subscriptions restored with a
// persistent session are let through (the limit applies to SUBSCRIBEs).
//
// Two places refuse:
//  - a SUBSCRIBE whose every filter is new while the client is at the limit
//    (the usual case: one more filter) is answered here, before aedes sees
//    it (inbound.ts), with SUBACK 0x97 "quota exceeded" (MQTT 5) / 0x80;
//  - otherwise the 'quota' layer of authorizeSubscribe (hooks.ts) refuses
//    the filters past the limit one by one: 0x80 on MQTT 3.1.1, and on
//    MQTT 5 0x87, which is how aedes answers every refusal by a hook.
//
// aedes authorizes the filters of one SUBSCRIBE concurrently and adds them
// only afterwards; inbound.ts makes SUBSCRIBE a barrier, so the filters
// granted here but not yet in client.subscriptions are those of the one
// SUBSCRIBE in progress.
import type { Aedes, Client } from 'aedes'
import type { AedesHooks } from './hooks.js'
import { internals } from './aedes-internals.js'

export interface QuotaOptions {
  /** 0: unlimited. */
  max: number
  onRefused: (client: Client, filter: string, max: number) => void
}

/** SUBACK code of a filter refused for the quota. */
export function quotaRefusalCode (client: Client): number {
  return client.version === 5 ? 0x97 : 0x80
}

/**
 * True when the SUBSCRIBE is to be answered with a quota refusal for every
 * filter: the client holds `max` filters and asks only for new ones. Counts
 * and logs each. Called by inbound.ts as the packet reaches aedes, when the
 * SUBSCRIBEs before it are complete.
 */
export function refuseWholeSubscribe (client: Client, filters: readonly string[], options: QuotaOptions): boolean {
  if (options.max <= 0 || filters.length === 0) return false
  const held = internals(client).subscriptions
  if (Object.keys(held).length < options.max || filters.some((f) => held[f] !== undefined)) return false
  for (const f of filters) options.onRefused(client, f, options.max)
  return true
}

export function installSubscriptionQuota (hooks: AedesHooks, aedes: Aedes, options: QuotaOptions): void {
  if (options.max <= 0) return
  const pending = new WeakMap<Client, Set<string>>()
  // The SUBSCRIBE is complete: what it granted is in client.subscriptions now.
  aedes.on('subscribe', (_subs, client) => { pending.delete(client) })
  hooks.use('authorizeSubscribe', 'quota', (next) => (client, sub, callback) => {
    const held = internals(client).subscriptions
    if (held[sub.topic] !== undefined) return next(client, sub, callback)
    let granted = pending.get(client)
    if (granted !== undefined) for (const t of granted) if (held[t] !== undefined) granted.delete(t)
    const count = Object.keys(held).length + (granted?.size ?? 0)
    if (count >= options.max && !granted?.has(sub.topic)) {
      options.onRefused(client, sub.topic, options.max)
      callback(null, null)
      return
    }
    if (granted === undefined) { granted = new Set(); pending.set(client, granted) }
    granted.add(sub.topic)
    next(client, sub, callback)
  })
}
