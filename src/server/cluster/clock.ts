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

/** A number in [0, 1), like Math.random. */
export type Random = () => number

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

/** mulberry32: a small, fast, seedable generator (good enough for shuffles and jitter). */
export function seededRandom (seed: number): Random {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Fisher-Yates in place. */
export function shuffle<T> (items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const tmp = items[i]!
    items[i] = items[j]!
    items[j] = tmp
  }
  return items
}
