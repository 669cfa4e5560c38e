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
