// Unicode block sparklines: eight heights per cell, scaled to the series'
// own maximum, so a quiet node shows a flat baseline, not noise.
const BARS = '▁▂▃▄▅▆▇█'

export function sparkline (values: number[], width: number): string {
  if (width <= 0) return ''
  const tail = values.slice(-width)
  if (tail.length === 0) return ''.padEnd(width, ' ')
  const max = Math.max(...tail)
  const cells = tail.map((v) => {
    if (!Number.isFinite(v) || max <= 0 || v <= 0) return BARS[0]!
    return BARS[Math.min(BARS.length - 1, Math.round((v / max) * (BARS.length - 1)))]!
  })
  return cells.join('').padStart(width, ' ')
}
