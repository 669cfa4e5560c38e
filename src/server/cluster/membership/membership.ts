// What the rest of a node sees of cluster membership. The SWIM implementation
// provides it (a node without peers is a cluster of one), and the data-plane
// simulation (test/sim) has a scripted one, so the API, probes, metrics and
// data plane are written once against this interface.
import type { EventEmitter } from 'node:events'

/** Seed/memberlist numbering, kept in /api/discovery/members `State`. */
export const MEMBER_STATE_CODE = { alive: 0, suspect: 1, dead: 2, left: 3 } as const
export type MemberState = keyof typeof MEMBER_STATE_CODE

/** What a member tells others about itself (memberlist's node meta). */
export interface MemberMeta {
  /** HTTP API port, for /proxy fan-out. */
  api: number
  /** MQTT port. */
  mqtt: number
  /** broker-ha version. */
  version: string
}

export interface Member {
  name: string
  /** Address other members reach it at (its advertise address). */
  addr: string
  /** Cluster (gossip) port. */
  port: number
  meta: MemberMeta
  state: MemberState
  incarnation: number
  /** When the state last changed, ms since the epoch. */
  since: number
  /**
   * Protocol versions the member speaks, [PMin, PMax, PCur, DMin, DMax, DCur]
   * as in the seed's /api/discovery/members answer. Absent for a membership
   * without a wire protocol (the data-plane simulation's).
   */
  vsn?: readonly [number, number, number, number, number, number]
}

export interface MembershipEvents {
  /** A member became alive for the first time, or again after dead/left. Not emitted for ourselves. */
  join: [member: Member]
  /** A member's state or meta changed (suspect, refuted, ...). */
  update: [member: Member]
  /** A member was declared dead or left gracefully. */
  leave: [member: Member]
}

export interface Membership extends EventEmitter<MembershipEvents> {
  readonly self: Member
  /** Every known member, ourselves included, dead and left ones until they are reaped. */
  members (): Member[]
  /** Lifeguard local health score: 0 is healthy, higher means this node is struggling. */
  healthScore (): number
  /**
   * Peer addresses that discovery found at its last resolution but that this
   * node could not join: with no live peer, a sign that it is split from its
   * cluster (liveness_cluster_discovered_members).
   */
  unjoinedPeers (): number
  /**
   * A member listed dead (or reaped since) answered as the same process on
   * another channel (its data-plane link, to `address`): merge views with it
   * now rather than at the next re-resolution. Optional: memberships without
   * a wire protocol have none.
   */
  rejoin?: (name: string, address: { host: string, port: number }) => void
  start (): Promise<void>
  /** Graceful leave: members see "left", not "dead". */
  stop (): Promise<void>
}
