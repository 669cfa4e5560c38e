// The seed's Prometheus metrics that describe the MQTT side and the bus, plus
// the API's own request counter. Every gauge is computed at scrape time
// (prom-client `collect`), never by a timer, so /metrics is as fresh as the
// scrape. Other components register their own metrics in the same registry
// (auth refusals, limits, bad packets: mqtt; cluster_*: membership).
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Bus } from '../bus.js'
import { CHANNELS } from '../bus.js'
import type { Membership } from '../cluster/membership/membership.js'
import type { MqttIntrospection } from '../mqtt/introspection.js'

export interface ApiMetricsOptions {
  registry: Registry
  introspection: MqttIntrospection
  bus: Bus
  membership: Membership
  startedAt: number
}

export class ApiMetrics {
  readonly requests: Counter<'method' | 'route' | 'status'>
  private readonly registry: Registry
  private readonly names: string[] = []

  constructor (options: ApiMetricsOptions) {
    const { registry, introspection: mqtt, bus, membership, startedAt } = options
    this.registry = registry
    const registers = [registry]
    const names = this.names
    // A name another component already registered is theirs (the MQTT side
    // owns broker_retained_messages, the membership the cluster gauges): this
    // class only fills the gaps, so the seed's names are always present.
    const taken = (name: string): boolean => registry.getSingleMetric(name) !== undefined
    const gauge = (name: string, help: string, collect: () => number | Promise<number>): void => {
      if (taken(name)) return
      names.push(name)
      new Gauge({ name, help, registers, async collect () { this.set(await collect()) } })
    }
    // Seed names and meanings (broker-ha's Go metrics), kept for existing dashboards.
    gauge('broker_clients_connected', 'Number of connected clients', () => mqtt.connectedCount())
    gauge('broker_retained_messages', 'Number of retained messages', () => mqtt.retainedCount())
    gauge('broker_subscriptions', 'Number of subscriptions of connected clients', () => mqtt.subscriptionCount())
    gauge('broker_uptime', 'Broker uptime in seconds', () => Math.floor((Date.now() - startedAt) / 1000))
    gauge('broker_inflight_messages', 'QoS 1/2 messages held for persistent sessions, queued or awaiting acknowledgement', () => mqtt.inflightCount())
    // The seed exported these three as gauges of running totals; they are
    // counters (monotonic), which rate() and increase() expect.
    const total = (name: string, help: string, value: () => number): void => {
      if (taken(name)) return
      names.push(name)
      new Counter({ name, help, registers, collect () { this.reset(); this.inc(value()) } })
    }
    total('broker_messages_recv', 'PUBLISH packets received from clients', () => mqtt.counts.received)
    total('broker_messages_sent', 'PUBLISH packets sent to subscribers', () => mqtt.counts.sent)
    total('broker_messages_dropped', 'Messages that could not be delivered (subscriber gone, will dropped at shutdown)', () => mqtt.counts.dropped)

    names.push('broker_bus_dropped_total', 'broker_bus_published_total', 'broker_bus_subscribers')
    new Counter({
      name: 'broker_bus_dropped_total',
      help: 'Event bus events dropped because a subscriber (e.g. a slow SSE client) had a full buffer',
      labelNames: ['channel'],
      registers,
      collect () {
        this.reset()
        for (const channel of CHANNELS) this.inc({ channel }, bus.dropped.get(channel) ?? 0)
      }
    })
    new Counter({
      name: 'broker_bus_published_total',
      help: 'Events published on the event bus',
      labelNames: ['channel'],
      registers,
      collect () {
        this.reset()
        for (const channel of CHANNELS) this.inc({ channel }, bus.published.get(channel) ?? 0)
      }
    })
    new Gauge({ name: 'broker_bus_subscribers', help: 'Event bus subscribers (SSE clients included)', registers, collect () { this.set(bus.subscriberCount()) } })

    // Owned by the membership implementation; a stand-in that registers
    // none still yields the seed's two, so dashboards see a cluster of one.
    gauge('broker_cluster_members', 'Number of cluster members', () => membership.members().filter((m) => m.state === 'alive').length)
    gauge('broker_cluster_member_health', 'Cluster member health', () => membership.healthScore())

    names.push('broker_api_requests_total')
    this.requests = new Counter({
      name: 'broker_api_requests_total',
      help: 'HTTP API requests answered, by route and status code',
      labelNames: ['method', 'route', 'status'],
      registers
    })
  }

  /** Removes what this class registered (the node may be stopped and the registry reused). */
  unregister (): void {
    for (const name of this.names) this.registry.removeSingleMetric(name)
    this.names.length = 0
  }
}
