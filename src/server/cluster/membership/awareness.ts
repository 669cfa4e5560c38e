// Lifeguard local health awareness (memberlist awareness.go). A node that
// misses acks or has to refute suspicions about itself is more likely the
// slow one (overloaded CPU, GC pause, lossy NIC) than its peers are, so it
// stretches its own probe interval and timeouts instead of accusing others.
// The score is what /ready and broker_cluster_member_health report.

export class Awareness {
  /** The score ranges over [0, max). */
  private readonly max: number
  private score = 0

  constructor (maxMultiplier: number) {
    this.max = Math.max(1, maxMultiplier)
  }

  /** +1 on a missed ack (or per missing nack) or a refutation, -1 on a successful probe. */
  applyDelta (delta: number): number {
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta))
    return this.score
  }

  getHealthScore (): number { return this.score }

  /** A healthy node (score 0) uses the timeout as configured; each point adds one more. */
  scaleTimeout (timeoutMs: number): number {
    return timeoutMs * (this.score + 1)
  }
}
