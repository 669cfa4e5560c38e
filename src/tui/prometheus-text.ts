// Reading the Prometheus text exposition a node serves on /metrics: just
// enough of the format (samples, labels, comments) for the admin's Metrics
// and Overview views. Unknown or malformed lines are skipped, never fatal: a
// newer node may export more than this build knows.

export interface Sample { name: string, labels: Record<string, string>, value: number }

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

export function parsePrometheusText (text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (m === null) continue
    const value = parseValue(m[4]!)
    if (value === undefined) continue
    const labels: Record<string, string> = {}
    if (m[3] !== undefined) {
      for (const l of m[3].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    }
    out.push({ name: m[1]!, labels, value })
  }
  return out
}

function parseValue (text: string): number | undefined {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  const n = Number(text)
  return Number.isNaN(n) ? undefined : n
}

/** Sum of every sample of a metric (all label sets, or those with `label`'s value); undefined when absent. */
export function metricSum (samples: Sample[], name: string, label?: { name: string, value: string }): number | undefined {
  let found = false
  let sum = 0
  for (const s of samples) {
    if (s.name !== name) continue
    if (label !== undefined && s.labels[label.name] !== label.value) continue
    found = true
    sum += s.value
  }
  return found ? sum : undefined
}
