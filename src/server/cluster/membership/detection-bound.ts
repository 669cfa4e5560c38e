// The time within which a crashed member is marked dead by every survivor,
// derived from the configuration (design.md, invariant 1). Tests and the chaos
// checker assert it; it is an upper bound for a healthy network, not the
// typical time (the benchmark reports that).
import type { ClusterProfile } from './config-profile.js'
import { suspicionTimeouts } from './suspicion.js'

/**
 * Worst case, step by step, for n members before the crash:
 * - a survivor reaches the dead member in its round-robin within n-1 probe
 *   intervals (plus one for the probe list reshuffle at the wrap);
 * - that probe fails after one probe interval (direct timeout, then the
 *   indirect pings and the TCP ping; the TCP ping waits at least a probe
 *   timeout, which outlasts the interval when the timeout is over half of it);
 * - the suspicion times out after at most its maximum (the minimum when too
 *   few members can confirm);
 * - the dead message reaches everyone within a few gossip rounds (log N
 *   fan-out), bounded here by retransmit rounds plus one probe interval of
 *   piggybacking.
 */
export function detectionBound (p: ClusterProfile, n: number): number {
  const t = suspicionTimeouts(p, n)
  const suspicion = t.k < 1 ? t.min : t.max
  const reach = n * p.probeInterval
  const probe = p.probeTimeout + Math.max(p.probeInterval - p.probeTimeout, p.probeTimeout)
  const spread = p.gossipInterval * (2 + Math.ceil(Math.log2(n + 1))) + p.probeInterval
  return reach + probe + suspicion + spread
}
