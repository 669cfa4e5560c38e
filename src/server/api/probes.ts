// Kubernetes probes with the seed's check names and answer shape
// (`{"status":"up","details":{check:{status,timestamp}}}`).
//
// readiness_cluster_health            health score == 0 (memberlist GetHealthScore() == 0, as the seed)
// liveness_cluster_health             health score not at its ceiling (see livenessHealthBound)
// liveness_cluster_discovered_members down when the node is alone although expected_members > 1 and
//                                     discovery lists peers it cannot join (the seed: alone while
//                                     more are expected); never for a node without discovery
// liveness_member_in_cluster          this node is alive in its own member list
//
// The checks are pure functions of a membership snapshot; ProbeCache runs
// them at most once per second, so a probe storm costs nothing.
import type { Config } from '../../config/index.js'
import type { Member, Membership } from '../cluster/membership/membership.js'
import type { CheckResult, ProbeResult } from '../../client/contract.js'

export interface ProbeInput {
  healthScore: number
  members: Member[]
  self: Member
  expectedMembers: number
  /** discovery.domain or discovery.seeds is set: the node is meant to find peers. */
  discoveryConfigured: boolean
  /** Peers discovery found but this node could not join (Membership.unjoinedPeers). */
  unjoinedPeers: number
  /** Largest health score still considered live. */
  livenessHealthBound: number
}

type Check = (input: ProbeInput) => string | undefined

/**
 * The Lifeguard score runs from 0 to awareness_max_multiplier - 1 (memberlist
 * awareness.go). Readiness drops at the first sign of trouble (score > 0),
 * taking the node out of the Service; liveness restarts the pod only once the
 * score is pinned at its ceiling, i.e. the node has failed to get acks for
 * many probe rounds in a row: restarting for a transient blip would turn a
 * network hiccup into an outage.
 */
export function livenessHealthBound (config: Config): number {
  return Math.max(0, config.cluster.config.awareness_max_multiplier - 2)
}

export const READINESS_CHECKS: Record<string, Check> = {
  readiness_cluster_health: ({ healthScore }) =>
    healthScore === 0 ? undefined : `health score is ${healthScore}, must be 0`
}

export const LIVENESS_CHECKS: Record<string, Check> = {
  liveness_cluster_health: ({ healthScore, livenessHealthBound: bound }) =>
    healthScore <= bound ? undefined : `health score is ${healthScore}, above the liveness bound ${bound}`,
  liveness_cluster_discovered_members: ({ members, expectedMembers, discoveryConfigured, unjoinedPeers }) => {
    // The seed fails this check when the node is alone while more members are
    // expected (its guard for a whole cluster restarted at once). Two
    // refinements: a node without discovery is a cluster of one by
    // configuration (`npx broker-ha serve`), and a node is only "split" if
    // discovery lists peers it cannot join. Fewer members than expected is not
    // enough: restarting the survivors of a failure would throw away the only
    // copies of their sessions and retained messages.
    if (!discoveryConfigured || expectedMembers <= 1) return undefined
    const alive = members.filter((m) => m.state === 'alive').length
    if (alive > 1 || unjoinedPeers === 0) return undefined
    return `alone in the cluster (expected ${expectedMembers} members) while discovery lists ${unjoinedPeers} peer(s) it cannot join`
  },
  liveness_member_in_cluster: ({ members, self }) => {
    const me = members.find((m) => m.name === self.name)
    if (me === undefined) return `${self.name} is not in its own member list`
    return me.state === 'alive' ? undefined : `${self.name} is ${me.state} in its own member list`
  }
}

/** Runs checks and builds the seed's answer. */
export function runChecks (checks: Record<string, Check>, input: ProbeInput, now: Date): ProbeResult {
  const timestamp = now.toISOString()
  const details: Record<string, CheckResult> = {}
  let up = true
  for (const [name, check] of Object.entries(checks)) {
    let problem: string | undefined
    try {
      problem = check(input)
    } catch (err) {
      problem = `check failed: ${(err as Error).message}`
    }
    if (problem === undefined) {
      details[name] = { status: 'up', timestamp }
    } else {
      up = false
      details[name] = { status: 'down', timestamp, error: problem }
    }
  }
  return { status: up ? 'up' : 'down', details }
}

/** Probe answers, recomputed at most once per `ttlMs`. */
export class ProbeCache {
  private readonly membership: Membership
  private readonly config: Config
  private readonly ttlMs: number
  private readonly now: () => number
  private readonly cache = new Map<string, { at: number, result: ProbeResult }>()

  constructor (options: { membership: Membership, config: Config, ttlMs?: number, now?: () => number }) {
    this.membership = options.membership
    this.config = options.config
    this.ttlMs = options.ttlMs ?? 1000
    this.now = options.now ?? Date.now
  }

  readiness (): ProbeResult { return this.get('readiness', READINESS_CHECKS) }
  liveness (): ProbeResult { return this.get('liveness', LIVENESS_CHECKS) }

  private get (kind: string, checks: Record<string, Check>): ProbeResult {
    const now = this.now()
    const hit = this.cache.get(kind)
    if (hit !== undefined && now - hit.at < this.ttlMs) return hit.result
    const result = runChecks(checks, this.input(), new Date(now))
    this.cache.set(kind, { at: now, result })
    return result
  }

  private input (): ProbeInput {
    const { discovery } = this.config
    return {
      healthScore: this.membership.healthScore(),
      members: this.membership.members(),
      self: this.membership.self,
      expectedMembers: this.config.cluster.expected_members,
      discoveryConfigured: discovery.domain !== '' || discovery.seeds.length > 0,
      unjoinedPeers: this.membership.unjoinedPeers(),
      livenessHealthBound: livenessHealthBound(this.config)
    }
  }
}
