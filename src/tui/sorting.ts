// Sorting a table by one of its columns: `o` moves to the next sortable
// column, `O` reverses the order (the header marks the column ▲ or ▼). Pure.

export interface SortColumn<R> {
  /** The column's title, as in the header. */
  title: string
  value: (row: R) => string | number
}

export interface SortState { column: number, descending: boolean }

export const UNSORTED: SortState = { column: 0, descending: false }

export function sortRows<R> (rows: R[], columns: Array<SortColumn<R>>, state: SortState): R[] {
  const column = columns[state.column]
  if (column === undefined) return rows
  const sign = state.descending ? -1 : 1
  return [...rows].sort((a, b) => {
    const x = column.value(a)
    const y = column.value(b)
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))
    return sign * order
  })
}

/** The next state for a key: `o` the next column (ascending), `O` the other direction. */
export function nextSort (state: SortState, columns: number, input: string): SortState | undefined {
  if (input === 'o') return { column: (state.column + 1) % columns, descending: false }
  if (input === 'O') return { ...state, descending: !state.descending }
  return undefined
}

/** A header title with the sort mark when the table is sorted by it. */
export function sortedTitle (title: string, index: number, state: SortState): string {
  return index === state.column ? `${title}${state.descending ? '▼' : '▲'}` : title
}
