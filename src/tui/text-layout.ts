// Fixed-width text for table rows: every cell is cut or padded to its column
// so a long client id or topic can never wrap and push the screen around.

/** `text` cut to `width` columns (with an ellipsis) or padded with spaces. */
export function fit (text: string, width: number): string {
  if (width <= 0) return ''
  const clean = text.replace(/[\r\n\t]/g, ' ')
  if (clean.length <= width) return clean.padEnd(width, ' ')
  return width === 1 ? '…' : `${clean.slice(0, width - 1)}…`
}

export interface Column {
  title: string
  /** Columns; 0: flexible, sharing what the fixed ones leave. */
  width: number
  align?: 'left' | 'right'
  /** Flexible columns: the widest cell (title included); the column grows no wider. */
  content?: number
}

export function formatCells (cells: string[], columns: Column[]): string {
  return columns.map((c, i) => {
    const text = cells[i] ?? ''
    return c.align === 'right' && text.length < c.width ? text.padStart(c.width, ' ') : fit(text, c.width)
  }).join(' ')
}

/**
 * Shares `total` columns among columns: fixed ones keep their width, the
 * flexible ones (width 0) split what is left, at least `min` each and no
 * wider than their content, the narrowest first so a short column's unused
 * share goes to the wider ones. What nobody needs stays empty at the right,
 * rather than an 84-column CLIENT ID for ids of 12.
 */
export function layoutColumns (columns: Column[], total: number, min = 6): Column[] {
  let free = total - columns.reduce((sum, c) => sum + c.width, 0) - Math.max(0, columns.length - 1)
  const flexible = columns.map((c, i) => ({ c, i })).filter(({ c }) => c.width === 0)
    .sort((a, b) => (a.c.content ?? Infinity) - (b.c.content ?? Infinity))
  const widths = new Map<number, number>()
  flexible.forEach(({ c, i }, k) => {
    const share = Math.floor(free / (flexible.length - k))
    const width = Math.max(min, Math.min(c.content ?? share, share))
    widths.set(i, width)
    free -= width
  })
  return columns.map((c, i) => (c.width === 0 ? { ...c, width: widths.get(i)! } : c))
}

/** The widest of `title` and `cells`, for Column.content. */
export function contentWidth (title: string, cells: string[]): number {
  return Math.max(title.length + 1, ...cells.map((c) => c.length))
}

/** "1 client", "2 clients": a count with its noun. */
export function plural (n: number, singular: string, pluralForm = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : pluralForm}`
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
