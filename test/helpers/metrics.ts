// Reading a node's Prometheus metrics from its API, for tests and benchmarks.

/** A metric's value on a node's /metrics, summed over its label sets; 0 when absent. */
export async function metricSum (apiUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

/** A metric's values on a node's /metrics by the value of one label (samples without it are left out). */
export async function metricByLabel (apiUrl: string, name: string, label: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text()
  const out: Record<string, number> = {}
  const pattern = new RegExp(`^${name}\\{[^}]*\\b${label}="([^"]*)"[^}]*\\} (\\S+)$`, 'gm')
  for (const m of text.matchAll(pattern)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2])
  return out
}
