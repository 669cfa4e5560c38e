// A trie of MQTT topic filters for routing: which peers need a publish.
// Matching semantics are those of src/topic-filter.ts (MQTT 5 section 4.7).

interface TrieNode<V> {
  children: Map<string, TrieNode<V>>
  /** Values whose filter ends at this node. */
  values: Set<V>
}

function node<V> (): TrieNode<V> { return { children: new Map(), values: new Set() } }

/**
 * A trie of topic filters, one level per node, holding a set of values per
 * filter. `match(topic)` visits O(levels x matching wildcard branches) nodes,
 * independent of how many filters are stored.
 */
export class FilterTrie<V> {
  private readonly root: TrieNode<V> = node()
  private count = 0

  /** Number of (filter, value) pairs stored. */
  get size (): number { return this.count }

  add (filter: string, value: V): boolean {
    let n = this.root
    for (const level of filter.split('/')) {
      let next = n.children.get(level)
      if (next === undefined) { next = node(); n.children.set(level, next) }
      n = next
    }
    if (n.values.has(value)) return false
    n.values.add(value)
    this.count++
    return true
  }

  remove (filter: string, value: V): boolean {
    const path: Array<[TrieNode<V>, string]> = []
    let n = this.root
    for (const level of filter.split('/')) {
      const next = n.children.get(level)
      if (next === undefined) return false
      path.push([n, level])
      n = next
    }
    if (!n.values.delete(value)) return false
    this.count--
    // Prune empty branches so a churn of unique filters does not leak nodes.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i]!
      const child = parent.children.get(level)!
      if (child.values.size > 0 || child.children.size > 0) break
      parent.children.delete(level)
    }
    return true
  }

  /** Calls `visit` for every value whose filter matches `topic` (a value may be visited once per matching filter). */
  match (topic: string, visit: (value: V) => void): void {
    const levels = topic.split('/')
    const dollar = topic.startsWith('$')
    const walk = (n: TrieNode<V>, i: number): void => {
      // '#' also matches the parent level ("a/#" matches "a"), 4.7.1.2.
      const hash = n.children.get('#')
      if (hash !== undefined && !(dollar && i === 0)) for (const v of hash.values) visit(v)
      if (i === levels.length) {
        for (const v of n.values) visit(v)
        return
      }
      const exact = n.children.get(levels[i]!)
      if (exact !== undefined) walk(exact, i + 1)
      const plus = n.children.get('+')
      if (plus !== undefined && !(dollar && i === 0)) walk(plus, i + 1)
    }
    walk(this.root, 0)
  }

  /** Whether any stored filter matches `topic`. */
  matches (topic: string): boolean {
    let found = false
    this.match(topic, () => { found = true })
    return found
  }
}
