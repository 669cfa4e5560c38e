// Suspicion timeouts (memberlist suspicion.go, Lifeguard's "dynamic
// suspicion"). A suspected member is declared dead when its timer fires. The
// timer starts at a maximum and shrinks towards a minimum as other members
// independently confirm the suspicion: the more witnesses, the surer we are,
// the sooner we act; a lone accuser (perhaps itself the slow one) waits long.
import type { Clock, TimerHandle } from './clock.js'

export interface SuspicionTimeouts {
  /** Shortest timeout: reached with `k` independent confirmations. */
  min: number
  max: number
  /** Confirmations expected before the minimum applies. */
  k: number
}

/**
 * min = suspicion_mult * max(1, log10(n)) * probe_interval, max = max_mult * min;
 * k = suspicion_mult - 2 confirmations, none when there are not that many
 * other members to confirm (n - 2 < k), in which case the timer starts at min.
 * `n` is the number of members that are not dead or left, ourselves included.
 */
export function suspicionTimeouts (opts: { suspicionMult: number, suspicionMaxTimeoutMult: number, probeInterval: number }, n: number): SuspicionTimeouts {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)))
  const min = Math.round(opts.suspicionMult * nodeScale * opts.probeInterval)
  const max = opts.suspicionMaxTimeoutMult * min
  let k = opts.suspicionMult - 2
  if (n - 2 < k) k = 0
  return { min, max, k: Math.max(0, k) }
}

/** The timeout after `confirmations` confirmations: max, falling logarithmically to min at k. */
export function remainingTimeout (t: SuspicionTimeouts, confirmations: number): number {
  if (t.k < 1) return t.min
  const frac = Math.log(confirmations + 1) / Math.log(t.k + 1)
  const raw = t.max - frac * (t.max - t.min)
  return Math.max(t.min, Math.floor(raw))
}

export class Suspicion {
  private readonly clock: Clock
  private readonly timeouts: SuspicionTimeouts
  private readonly start: number
  private readonly confirmers = new Set<string>()
  private timer: TimerHandle | undefined
  private readonly onTimeout: (confirmations: number) => void
  private fired = false

  /** `from` is the first accuser; it does not count as a confirmation. */
  constructor (clock: Clock, from: string, timeouts: SuspicionTimeouts, onTimeout: (confirmations: number) => void) {
    this.clock = clock
    this.timeouts = timeouts
    this.onTimeout = onTimeout
    this.start = clock.now()
    this.confirmers.add(from)
    this.schedule(timeouts.k < 1 ? timeouts.min : timeouts.max)
  }

  get confirmations (): number { return this.confirmers.size - 1 }

  /** A new, distinct accuser: returns true when it counted (and the timer was shortened). */
  confirm (from: string): boolean {
    if (this.fired || this.confirmations >= this.timeouts.k) return false
    if (this.confirmers.has(from)) return false
    this.confirmers.add(from)
    const timeout = remainingTimeout(this.timeouts, this.confirmations)
    const elapsed = this.clock.now() - this.start
    this.schedule(Math.max(0, timeout - elapsed))
    return true
  }

  cancel (): void {
    this.clock.clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule (ms: number): void {
    this.clock.clearTimeout(this.timer)
    this.timer = this.clock.setTimeout(() => {
      this.fired = true
      this.onTimeout(this.confirmations)
    }, ms)
  }
}
