// Time and randomness as inputs: the membership state machine never calls
// Date.now(), setTimeout or Math.random directly, so unit tests drive it with
// a fake clock and a seeded random source and get the same run every time.

export type TimerHandle = { readonly id: number }

export interface Clock {
  /** Milliseconds; only differences matter. */
  now (): number
  setTimeout (fn: () => void, ms: number): TimerHandle
  clearTimeout (handle: TimerHandle | undefined): void
}

// Randomness (a number in [0, 1), like Math.random) comes from the shared module.
export { seededRandom, shuffle, type Random } from '../../../random.js'

let nextId = 1

/** The real clock; timers are unref'd so a forgotten one never keeps a process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout (fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms))
    t.unref()
    const handle = { id: nextId++, t }
    return handle
  },
  clearTimeout (handle) {
    if (handle !== undefined) clearTimeout((handle as unknown as { t: NodeJS.Timeout }).t)
  }
}

