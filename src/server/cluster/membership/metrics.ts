// Prometheus metrics of the membership, registered into the node's registry.
// Gauges of live state are read at scrape time; byte counters follow the
// transport's own counts.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Member } from './membership.js'
import type { TransportStats } from './transport.js'
import type { BadPacketReason } from './codec.js'
import type { ProbeResult } from './state.js'

export interface ClusterMetrics {
  probe (result: ProbeResult): void
  suspicion (): void
  refutation (): void
  dead (): void
  left (): void
  badPacket (reason: BadPacketReason): void
  /** Refused before it was read: an address admission refused, or past the cap of unauthenticated connections. */
  refused (kind: 'udp' | 'tcp' | 'link', reason: 'address' | 'pending'): void
}

export function registerClusterMetrics (registry: Registry, live: { members: () => Member[], healthScore: () => number, stats: () => TransportStats }): ClusterMetrics {
  new Gauge({
    name: 'broker_cluster_members',
    help: 'Number of cluster members (alive or suspect, this node included)',
    registers: [registry],
    collect () { this.set(live.members().filter((m) => m.state === 'alive' || m.state === 'suspect').length) }
  })
  new Gauge({
    name: 'broker_cluster_member_health',
    help: 'Cluster member health (Lifeguard local health score; 0 is healthy)',
    registers: [registry],
    collect () { this.set(live.healthScore()) }
  })
  const probes = new Counter({ name: 'broker_cluster_probes_total', help: 'Failure-detection probes by result', labelNames: ['result'] as const, registers: [registry] })
  for (const r of ['ack', 'indirect-ack', 'tcp-ack', 'failed']) probes.inc({ result: r }, 0)
  const suspicions = new Counter({ name: 'broker_cluster_suspicions_total', help: 'Members this node saw become suspect', registers: [registry] })
  const refutations = new Counter({ name: 'broker_cluster_refutations_total', help: 'Suspicions about this node that it refuted', registers: [registry] })
  const dead = new Counter({ name: 'broker_cluster_members_dead_total', help: 'Members declared dead', registers: [registry] })
  const left = new Counter({ name: 'broker_cluster_members_left_total', help: 'Members that left gracefully', registers: [registry] })
  const bad = new Counter({ name: 'broker_cluster_bad_packets_total', help: 'Cluster packets and streams dropped unparsed, by reason', labelNames: ['reason'] as const, registers: [registry] })
  for (const r of ['auth', 'encryption', 'version', 'decode', 'size', 'replay', 'target']) bad.inc({ reason: r }, 0)
  const refused = new Counter({
    name: 'broker_cluster_refused_total',
    help: 'Cluster traffic refused before it was read: from an address discovery did not yield (no key set), or past cluster.max_pending_connections',
    labelNames: ['kind', 'reason'] as const,
    registers: [registry]
  })
  for (const kind of ['udp', 'tcp']) refused.inc({ kind, reason: 'address' }, 0)
  let sentSeen = 0
  let receivedSeen = 0
  new Counter({
    name: 'broker_cluster_bytes_sent_total',
    help: 'Bytes sent on the cluster port (UDP and TCP membership traffic)',
    registers: [registry],
    collect () { const s = live.stats().bytesSent; if (s > sentSeen) this.inc(s - sentSeen); sentSeen = s }
  })
  new Counter({
    name: 'broker_cluster_bytes_received_total',
    help: 'Bytes received on the cluster port (UDP and TCP membership traffic)',
    registers: [registry],
    collect () { const r = live.stats().bytesReceived; if (r > receivedSeen) this.inc(r - receivedSeen); receivedSeen = r }
  })
  return {
    probe: (result) => probes.inc({ result }),
    suspicion: () => suspicions.inc(),
    refutation: () => refutations.inc(),
    dead: () => dead.inc(),
    left: () => left.inc(),
    badPacket: (reason) => bad.inc({ reason }),
    refused: (kind, reason) => refused.inc({ kind, reason })
  }
}
