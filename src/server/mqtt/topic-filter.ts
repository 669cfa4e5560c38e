// MQTT topic filter matching (MQTT 5 §4.7), for the few places where we must
// match outside aedes' own router. Pure.

/** True when `filter` (which may hold + and #) matches the topic name. [MQTT-4.7.1] */
export function filterMatches (filter: string, topic: string): boolean {
  // Wildcards at the first level never match topics starting with $. [MQTT-4.7.2-1]
  if (topic.charCodeAt(0) === 36 && (filter.charCodeAt(0) === 35 || filter.charCodeAt(0) === 43)) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true // also matches the parent level. [MQTT-4.7.1-2]
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}
