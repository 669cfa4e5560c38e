// Fixed-width text for table rows: every cell is cut or padded to its column
// so a long client id or topic can never wrap and push the screen around.

/** `text` cut to `width` columns (with an ellipsis) or padded with spaces. */
export function fit (text: string, width: number): string {
  if (width <= 0) return ''
  const clean = text.replace(/[\r\n\t]/g, ' ')
  if (clean.length <= width) return clean.padEnd(width, ' ')
  return width === 1 ? '…' : `${clean.slice(0, width - 1)}…`
}

export interface Column { title: string, width: number, align?: 'left' | 'right' }

export function formatCells (cells: string[], columns: Column[]): string {
  return columns.map((c, i) => {
    const text = cells[i] ?? ''
    return c.align === 'right' && text.length < c.width ? text.padStart(c.width, ' ') : fit(text, c.width)
  }).join(' ')
}

/**
 * Shares `total` columns among columns: fixed ones keep their width, the
 * flexible ones (width 0) split what is left, at least `min` each.
 */
export function layoutColumns (columns: Column[], total: number, min = 6): Column[] {
  const fixed = columns.reduce((sum, c) => sum + c.width, 0) + Math.max(0, columns.length - 1)
  const flexible = columns.filter((c) => c.width === 0).length
  const share = flexible === 0 ? 0 : Math.max(min, Math.floor((total - fixed) / flexible))
  return columns.map((c) => (c.width === 0 ? { ...c, width: share } : c))
}

/** First row to show so that `selected` stays inside a window of `height` rows. */
export function windowStart (count: number, selected: number, height: number): number {
  if (height <= 0 || count <= height) return 0
  const half = Math.floor(height / 2)
  return Math.max(0, Math.min(count - height, selected - half))
}

export function formatBytes (n: number | undefined): string {
  if (n === undefined) return '-'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

export function formatNumber (n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '-'
  return n.toFixed(digits)
}

export function formatDuration (seconds: number | undefined): string {
  if (seconds === undefined) return '-'
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`
}
