// Polling a source at an interval, keeping the last good answer when a poll
// fails (the screen shows stale data with the error instead of going blank)
// and backing off while failures repeat, so an unreachable URL is retried
// without hammering it.
import { useEffect, useRef, useState } from 'react'

export interface Polled<T> {
  data: T | undefined
  /** The last poll's error; undefined after a success. */
  error: unknown
  /** ms since the epoch of the last successful poll. */
  updatedAt: number | undefined
  /** Failures in a row. */
  failures: number
  /** When the next attempt is due (ms since the epoch), while failing. */
  retryAt: number | undefined
}

export const MAX_BACKOFF_MS = 30_000

/** Delay before the next poll: the interval, doubled per failure in a row, capped. */
export function nextDelay (intervalMs: number, failures: number): number {
  if (failures <= 0) return intervalMs
  return Math.min(MAX_BACKOFF_MS, Math.max(intervalMs, 1000) * 2 ** Math.min(failures - 1, 10))
}

/**
 * Calls `fetcher` now and then every `intervalMs`; restarts when a value in
 * `deps` changes. Disabled polls keep their last state.
 */
export function usePoll<T> (fetcher: () => Promise<T>, intervalMs: number, deps: unknown[] = [], enabled = true): Polled<T> & { refresh: () => void } {
  const [state, setState] = useState<Polled<T>>({ data: undefined, error: undefined, updatedAt: undefined, failures: 0, retryAt: undefined })
  const fetcherRef = useRef(fetcher)
  fetcherRef.current = fetcher
  const [generation, setGeneration] = useState(0)

  useEffect(() => {
    if (!enabled) return undefined
    let stopped = false
    let timer: NodeJS.Timeout | undefined
    let failures = 0
    const run = async (): Promise<void> => {
      try {
        const data = await fetcherRef.current()
        if (stopped) return
        failures = 0
        setState({ data, error: undefined, updatedAt: Date.now(), failures: 0, retryAt: undefined })
      } catch (error) {
        if (stopped) return
        failures++
        const retryAt = Date.now() + nextDelay(intervalMs, failures)
        setState((s) => ({ ...s, error, failures, retryAt }))
      }
      if (!stopped) timer = setTimeout(() => { void run() }, nextDelay(intervalMs, failures))
    }
    void run()
    return () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
    }
  }, [intervalMs, enabled, generation, ...deps])

  return { ...state, refresh: () => setGeneration((g) => g + 1) }
}
