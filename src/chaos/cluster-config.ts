// The configuration the chaos launcher gives each node, and the time bounds
// the checker derives from it. Timings are memberlist's "local" profile
// style: the nodes share one machine, so failure detection can be fast and a
// one-minute run still sees every fault detected and healed.

/** Cluster timings of chaos nodes (ms), the `cluster.config` keys of the schema. */
export const CHAOS_CLUSTER_TIMING = {
  probe_interval: 200,
  probe_timeout: 100,
  gossip_interval: 50,
  suspicion_mult: 3,
  suspicion_max_timeout_mult: 6,
  push_pull_interval: 2000,
  tcp_timeout: 1000
} as const

/** Discovery re-resolution: how fast sides of a healed partition find each other again. */
export const CHAOS_RESOLVE_INTERVAL = 1000

/**
 * `--merge-timing`: `fast` re-resolves the seeds every CHAOS_RESOLVE_INTERVAL
 * and runs push/pull every 2 s, so sides that declared each other dead find
 * each other again within a second or two whatever else happens; `default`
 * leaves both at the serve defaults (30 s), as in a production cluster, so a
 * healed partition merges in time only by the nodes' own means (a parked
 * peer link that answers again). The convergence bound is the same for both.
 */
export const MERGE_TIMINGS = ['fast', 'default'] as const
export type MergeTiming = typeof MERGE_TIMINGS[number]

/**
 * storage.peers_wait of chaos nodes: shorter than the 15 s default so a
 * restart-all-late run fits many restarts; long enough for every node of a
 * restart-all to start on a small shared machine.
 */
export const CHAOS_PEERS_WAIT_MS = 5000

export interface NodeEndpoint {
  name: string
  host: string
  mqttPort: number
  apiPort: number
  clusterPort: number
}

/**
 * A node's config object (written as YAML): loopback binds, seed list of every
 * node, JSON logs. `apiUser`: basic-auth credentials for the runner, needed
 * where it does not call from the node's own host (a network namespace):
 * without api.user, /chaos/faults answers only callers on the node's host.
 * `storageDir`: durable storage, sync always, a start window of
 * CHAOS_PEERS_WAIT_MS. `mergeTiming`: see MERGE_TIMINGS.
 */
export function nodeConfig (self: NodeEndpoint, all: readonly NodeEndpoint[], extra: { apiUser?: { name: string, password: string }, storageDir?: string, mergeTiming?: MergeTiming } = {}): Record<string, unknown> {
  const { apiUser, storageDir } = extra
  const fast = extra.mergeTiming !== 'default'
  const { push_pull_interval: pushPull, ...timing } = CHAOS_CLUSTER_TIMING
  return {
    ...(storageDir === undefined ? {} : { storage: { dir: storageDir, sync: 'always', peers_wait: CHAOS_PEERS_WAIT_MS } }),
    api: { bind: self.host, port: self.apiPort, proxy_timeout: 1000, ...(apiUser === undefined ? {} : { user: { [apiUser.name]: apiUser.password } }) },
    mqtt: { bind: self.host, port: self.mqttPort, shutdown_grace_period: 500 },
    cluster: { bind: self.host, port: self.clusterPort, name: self.name, expected_members: all.length, config: fast ? { ...timing, push_pull_interval: pushPull } : timing },
    discovery: {
      seeds: all.map((n) => `${n.host}:${n.clusterPort}`),
      formation_wait_min: 200,
      formation_wait_max: 800,
      ...(fast ? { resolve_interval: CHAOS_RESOLVE_INTERVAL } : {})
    },
    log: { level: 'info', format: 'json' }
  }
}

/**
 * Most time membership may take to settle: the worst-case detection of a
 * dead member (the same steps as the node's own detection bound, see
 * docs/clustering.md: reach in the probe round, one probe, the longest
 * suspicion, gossip spread) plus one discovery re-resolution and slack for a
 * process start, since a healed partition merges through re-resolution.
 */
export function convergenceBoundMs (n: number): number {
  const t = CHAOS_CLUSTER_TIMING
  const minSuspicion = Math.round(t.suspicion_mult * Math.max(1, Math.log10(Math.max(1, n))) * t.probe_interval)
  const k = n - 2 < t.suspicion_mult - 2 ? 0 : t.suspicion_mult - 2
  const suspicion = k < 1 ? minSuspicion : t.suspicion_max_timeout_mult * minSuspicion
  const detection = n * t.probe_interval + t.probe_interval + suspicion + t.gossip_interval * (2 + Math.ceil(Math.log2(n + 1))) + t.probe_interval
  return detection + CHAOS_RESOLVE_INTERVAL + 2000
}
