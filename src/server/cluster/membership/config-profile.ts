// The timing knobs of the membership protocol, as memberlist's Config: named
// profiles plus the mapping from broker-ha's `cluster.config` keys (which keep
// memberlist's meaning, in milliseconds).
import type { Config } from '../../../config/index.js'

export interface ClusterProfile {
  probeInterval: number
  probeTimeout: number
  gossipInterval: number
  gossipNodes: number
  indirectChecks: number
  retransmitMult: number
  suspicionMult: number
  suspicionMaxTimeoutMult: number
  pushPullInterval: number
  tcpTimeout: number
  gossipToTheDeadTime: number
  awarenessMaxMultiplier: number
  /** Largest UDP packet we build; memberlist's 1400 stays under common MTUs. */
  udpBufferSize: number
}

/** memberlist's DefaultLANConfig with broker-ha's faster probe interval (the seed runs 500 ms). */
export const LAN_PROFILE: Readonly<ClusterProfile> = Object.freeze({
  probeInterval: 500,
  probeTimeout: 400,
  gossipInterval: 200,
  gossipNodes: 3,
  indirectChecks: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  pushPullInterval: 30_000,
  tcpTimeout: 10_000,
  gossipToTheDeadTime: 30_000,
  awarenessMaxMultiplier: 8,
  udpBufferSize: 1400
})

/** memberlist's DefaultLocalConfig: one host, loopback; what unit tests and fast integration tests use. */
export const LOCAL_PROFILE: Readonly<ClusterProfile> = Object.freeze({
  ...LAN_PROFILE,
  probeInterval: 200,
  probeTimeout: 100,
  gossipInterval: 50,
  indirectChecks: 1,
  retransmitMult: 2,
  suspicionMult: 3,
  pushPullInterval: 15_000,
  tcpTimeout: 1000,
  gossipToTheDeadTime: 15_000
})

export function profileFromConfig (cc: Config['cluster']['config']): ClusterProfile {
  return {
    probeInterval: cc.probe_interval,
    probeTimeout: cc.probe_timeout,
    gossipInterval: cc.gossip_interval,
    gossipNodes: cc.gossip_nodes,
    indirectChecks: cc.indirect_checks,
    retransmitMult: cc.retransmit_mult,
    suspicionMult: cc.suspicion_mult,
    suspicionMaxTimeoutMult: cc.suspicion_max_timeout_mult,
    pushPullInterval: cc.push_pull_interval,
    tcpTimeout: cc.tcp_timeout,
    gossipToTheDeadTime: cc.gossip_to_the_dead_time,
    awarenessMaxMultiplier: cc.awareness_max_multiplier,
    udpBufferSize: LAN_PROFILE.udpBufferSize
  }
}
