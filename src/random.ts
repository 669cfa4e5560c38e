// Seedable randomness shared by the cluster protocol (shuffles, jitter) and the
// chaos runner (fault schedules): a seed gives the same sequence on every run
// and machine, which is what makes simulations and chaos runs repeatable.
export type Random = () => number

/** mulberry32: a small, fast, seedable generator (good enough for shuffles, jitter and schedules). */
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

/** An integer in [min, max]. */
export function randomInt (random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

export function pick<T> (random: Random, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list')
  return items[Math.floor(random() * items.length)]!
}

/** Fisher-Yates, in place; returns `items`. */
export function shuffle<T> (items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const tmp = items[i]!
    items[i] = items[j]!
    items[j] = tmp
  }
  return items
}

/** A shuffled copy. */
export function shuffled<T> (random: Random, items: readonly T[]): T[] {
  return shuffle([...items], random)
}
