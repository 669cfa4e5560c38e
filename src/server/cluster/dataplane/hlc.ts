// Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
// A stamp is (wall ms, logical counter, node name). It stays close to real
// time, so "last writer wins" means what an operator expects, but it never
// goes backwards when the wall clock is stepped back (NTP, VM resume) and it
// always moves past any stamp this node has seen, so a write that causally
// follows another (a clear after a set seen from a peer) wins over it even
// when the two nodes' clocks disagree. The node name breaks ties, which makes
// the order total: two replicas always agree which of two stamps is newer.

export interface Stamp {
  /** Milliseconds since the epoch (of the highest clock seen, not necessarily ours). */
  readonly wall: number
  /** Orders events within one wall millisecond. */
  readonly logical: number
  /** The node that made the stamp: tie breaker. */
  readonly node: string
}

/** Wall and logical parts fit these widths in the encoded form (wall: 48 bits, logical: 32 bits). */
const WALL_HEX = 12
const LOGICAL_HEX = 8
const MAX_LOGICAL = 0xFFFF_FFFF

export class ClockDriftError extends Error {
  readonly driftMs: number
  constructor (driftMs: number) {
    super(`remote stamp is ${driftMs} ms ahead of the local wall clock`)
    this.name = 'ClockDriftError'
    this.driftMs = driftMs
  }
}

export interface HlcOptions {
  /** Wall clock in ms; injected so tests can step it backwards. */
  now?: () => number
  /**
   * A remote stamp further ahead of our wall clock than this is not adopted
   * (observe() throws ClockDriftError): one node with a clock set to next year
   * must not drag every clock, and every retained entry, into next year.
   * 0 disables the check.
   */
  maxForwardDriftMs?: number
}

export class HybridLogicalClock {
  readonly node: string
  private readonly wallNow: () => number
  private readonly maxForwardDriftMs: number
  private wall = 0
  private logical = 0

  constructor (node: string, options: HlcOptions = {}) {
    if (node.length === 0) throw new RangeError('HLC node name must not be empty')
    this.node = node
    this.wallNow = options.now ?? Date.now
    this.maxForwardDriftMs = options.maxForwardDriftMs ?? 0
  }

  /** A new stamp, greater than every stamp this clock has issued or observed. */
  now (): Stamp {
    const pt = this.wallNow()
    if (pt > this.wall) {
      this.wall = pt
      this.logical = 0
    } else {
      this.tick()
    }
    return { wall: this.wall, logical: this.logical, node: this.node }
  }

  /**
   * Merges a stamp received from a peer (HLC receive rule), so the next local
   * stamp orders after it. Throws ClockDriftError (and leaves the clock alone)
   * when the stamp is too far ahead of our wall clock.
   */
  observe (remote: Stamp): void {
    const pt = this.wallNow()
    if (this.maxForwardDriftMs > 0 && remote.wall - pt > this.maxForwardDriftMs) {
      throw new ClockDriftError(remote.wall - pt)
    }
    const wall = Math.max(this.wall, remote.wall, pt)
    if (wall === this.wall && wall === remote.wall) {
      this.logical = Math.max(this.logical, remote.logical)
      this.tick()
    } else if (wall === this.wall) {
      this.tick()
    } else if (wall === remote.wall) {
      this.wall = wall
      this.logical = remote.logical
      this.tick()
    } else {
      this.wall = wall
      this.logical = 0
    }
  }

  /** The last stamp issued or observed (not a new one). */
  peek (): Stamp {
    return { wall: this.wall, logical: this.logical, node: this.node }
  }

  private tick (): void {
    if (this.logical >= MAX_LOGICAL) {
      // 4 billion events in one millisecond cannot happen in practice; moving
      // the wall part forward keeps the order correct if it ever does.
      this.wall++
      this.logical = 0
    } else {
      this.logical++
    }
  }
}

/** Total order: wall, then logical, then node name. */
export function compareStamps (a: Stamp, b: Stamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1
  if (a.node === b.node) return 0
  return a.node < b.node ? -1 : 1
}

/**
 * Fixed-width text form `wwwwwwwwwwww.llllllll.node`: string order equals
 * stamp order (hex parts of fixed width, then the name), so encoded stamps can
 * be compared, hashed and sent without decoding.
 */
export function encodeStamp (s: Stamp): string {
  return `${s.wall.toString(16).padStart(WALL_HEX, '0')}.${s.logical.toString(16).padStart(LOGICAL_HEX, '0')}.${s.node}`
}

export function decodeStamp (text: string): Stamp {
  const m = /^([0-9a-f]{12})\.([0-9a-f]{8})\.(.+)$/s.exec(text)
  if (m === null) throw new RangeError(`not an HLC stamp: ${JSON.stringify(text.slice(0, 80))}`)
  return { wall: parseInt(m[1]!, 16), logical: parseInt(m[2]!, 16), node: m[3]! }
}
