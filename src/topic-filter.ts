// MQTT topic names, filters and shared subscription names (MQTT 5 sections
// 4.7 and 4.8.2): the one implementation that config validation, the ACL,
// delivery and cluster routing all use. Pure.

export const SHARE_PREFIX = '$share/'

export interface SharedFilter {
  /** The share name `g` of `$share/g/f`. */
  group: string
  /** The topic filter `f` of `$share/g/f`. */
  filter: string
}

/** Splits `$share/g/f` into group and filter; undefined for an ordinary filter or a malformed share. */
export function parseShared (filter: string): SharedFilter | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined
  const rest = filter.slice(SHARE_PREFIX.length)
  const slash = rest.indexOf('/')
  // [MQTT-4.8.2-1] the share name is at least one character and holds no / + #;
  // [MQTT-4.8.2-2] a filter follows it.
  if (slash <= 0 || slash === rest.length - 1) return undefined
  const group = rest.slice(0, slash)
  if (group.includes('+') || group.includes('#')) return undefined
  return { group, filter: rest.slice(slash + 1) }
}

/** `$share/g/f` -> `f`; any other filter unchanged. */
export function stripSharePrefix (filter: string): string {
  return parseShared(filter)?.filter ?? filter
}

/** Why `filter` is not a valid topic filter (4.7.1), or undefined when it is. */
export function filterProblem (filter: string): string | undefined {
  if (filter.length === 0) return 'a filter is at least one character long'
  const levels = filter.split('/')
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '# must be a whole level and the last one'
    if (level.includes('+') && level !== '+') return '+ must be a whole level'
  }
  return undefined
}

export function isValidFilter (filter: string): boolean {
  return filterProblem(filter) === undefined
}

/** Does filter `f` match topic name `t` (both split into levels; no wildcards in `t`)? */
export function levelsMatch (f: readonly string[], t: readonly string[]): boolean {
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with '$'.
  if ((f[0] === '+' || f[0] === '#') && t[0] !== undefined && t[0].charCodeAt(0) === 36) return false
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true // also matches the parent level: `a/#` matches `a` [MQTT-4.7.1-2]
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

/** Does `filter` match the topic name `topic`? */
export function topicMatches (filter: string, topic: string): boolean {
  return levelsMatch(filter.split('/'), topic.split('/'))
}
