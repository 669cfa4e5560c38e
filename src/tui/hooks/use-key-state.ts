// State that key handlers read and write synchronously. Several keys can
// arrive in one chunk (typing fast, pasting, a test or tmux sending keys at
// once); Ink then calls the input handler for each key before React
// re-renders, so a handler reading plain useState would see stale values
// (e.g. "/abc" would miss that "/" just started the filter).
import { useCallback, useRef, useState } from 'react'

export function useKeyState<T> (initial: T): [T, (next: T | ((current: T) => T)) => void, () => T] {
  const [value, setValue] = useState(initial)
  const ref = useRef(value)
  const set = useCallback((next: T | ((current: T) => T)) => {
    ref.current = typeof next === 'function' ? (next as (current: T) => T)(ref.current) : next
    setValue(ref.current)
  }, [])
  const get = useCallback(() => ref.current, [])
  return [value, set, get]
}
