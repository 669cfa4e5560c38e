// "Did you mean ...?" for a mistyped word among the ones a command knows
// (subcommands, option values), in the words commander uses for its own
// suggestions (unknown commands and options). Pure.

/** Edits (insert, delete, substitute, swap neighbours) from `a` to `b`. */
export function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1)
      d[i]![j] = best
    }
  }
  return d[a.length]![b.length]!
}

/**
 * The closest candidates to `word`: within a third of its length in edits
 * (at least one), or starting with it. Empty when nothing is close.
 */
export function closest (word: string, candidates: readonly string[]): string[] {
  const limit = Math.max(1, Math.floor(word.length / 3))
  let best = Infinity
  let found: string[] = []
  for (const candidate of new Set(candidates)) {
    const distance = candidate.startsWith(word) && word.length >= 2 ? 1 : editDistance(word.toLowerCase(), candidate.toLowerCase())
    if (distance > limit) continue
    if (distance < best) { best = distance; found = [candidate] } else if (distance === best) found.push(candidate)
  }
  return found
}

/** "\n(Did you mean members?)", or '' when no candidate is close. */
export function didYouMean (word: string, candidates: readonly string[]): string {
  const found = closest(word, candidates)
  if (found.length === 0) return ''
  return found.length === 1 ? `\n(Did you mean ${found[0]}?)` : `\n(Did you mean one of ${found.join(', ')}?)`
}
