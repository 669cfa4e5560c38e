// The guarantees the checker decides (design.md, "Invariants"), and which of
// them a run owes by default: all of them, across nodes, persistent sessions
// included (`--scope full`). `--scope cluster` treats persistent sessions per
// node (a subscriber that comes back elsewhere starts a new obligation
// window; a lost session is shown, not failed); `--scope node` owes
// deliveries only within one node.
export const INVARIANTS = [
  { id: 'membership-convergence', design: 1, title: 'membership converges after each fault' },
  { id: 'lost-acked', design: 2, title: 'acknowledged QoS 1/2 messages lost (surviving sessions)' },
  { id: 'qos2-stalled', design: 3, title: 'QoS 2 flows the broker never completed (PUBREL missing)' },
  { id: 'stall', design: 7, title: 'longest wait of a connected subscriber for a message it was owed' },
  { id: 'qos2-duplicates', design: 3, title: 'QoS 2 messages delivered more than once' },
  { id: 'duplicates-without-faults', design: 3, title: 'duplicate deliveries while no fault was active' },
  { id: 'order', design: 4, title: 'out-of-order QoS 1/2 deliveries per publisher and topic' },
  { id: 'retained-divergence', design: 5, title: 'retained topics that differ between nodes after heal' },
  { id: 'retained-resurrected', design: 5, title: 'cleared retained topics that came back' },
  { id: 'client-id-twice', design: 6, title: 'client ids connected on two nodes at once' },
  { id: 'publish-recovery', design: 0, title: 'time until every client could publish again' },
  { id: 'qos0-loss', design: 0, title: 'QoS 0 messages lost (reported, never fails)' }
] as const

export type InvariantId = typeof INVARIANTS[number]['id']

/** Needs the data plane: without it nodes hold different retained sets by design. */
const NEEDS_DATA_PLANE: readonly InvariantId[] = ['retained-divergence']

export interface CheckScope {
  /** Deliveries and retained state are expected across nodes. */
  crossNode: boolean
  /** A persistent session must come back with "session present" on any node. */
  sessions: boolean
  /** Invariants that can fail the run; the others are computed and shown as skip. */
  enabled: ReadonlySet<InvariantId>
}

export function defaultScope (dataPlane = true, sessions = dataPlane): CheckScope {
  return {
    crossNode: dataPlane,
    sessions,
    enabled: new Set(INVARIANTS.map((i) => i.id).filter((id) => (dataPlane || !NEEDS_DATA_PLANE.includes(id))))
  }
}
