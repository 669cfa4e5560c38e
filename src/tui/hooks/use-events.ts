// Live events from the chosen members' /api/sse streams, merged in arrival
// order into a bounded list. Each stream reconnects with backoff when it
// ends or fails. Pausing holds new events aside (counted) until resumed, so
// the operator can read without the list moving.
import { useEffect, useRef, useState } from 'react'
import { SSE_KEEPALIVE_PREFIX } from '../../client/index.js'
import type { ClusterSource } from '../cluster-source.js'
import { describeError } from '../cluster-source.js'
import { nextDelay } from './use-poll.js'

export interface LiveEvent { seq: number, at: number, node: string, event: string, data: unknown }

export interface EventStreams {
  events: LiveEvent[]
  /** Events received while paused, not shown yet. */
  held: number
  /** Per member: the stream's last error, when it is down. */
  errors: Record<string, string>
}

export const EVENT_BUFFER = 500

export function useEvents (source: ClusterSource, targets: Array<{ name: string, apiUrl: string }>, paused: boolean, enabled: boolean): EventStreams {
  const [shown, setShown] = useState<LiveEvent[]>([])
  const [held, setHeld] = useState<LiveEvent[]>([])
  const [errors, setErrors] = useState<Record<string, string>>({})
  const pausedRef = useRef(paused)
  pausedRef.current = paused
  // Numbers events across reconnects and member changes, so "clear" (hide up to a number) stays right.
  const seqRef = useRef(0)
  const key = targets.map((t) => `${t.name}=${t.apiUrl}`).sort().join(',')

  useEffect(() => {
    if (!paused && held.length > 0) {
      setShown((s) => [...s, ...held].slice(-EVENT_BUFFER))
      setHeld([])
    }
  }, [paused, held])

  useEffect(() => {
    if (!enabled) return undefined
    const controller = new AbortController()
    const follow = async (target: { name: string, apiUrl: string }): Promise<void> => {
      let failures = 0
      while (!controller.signal.aborted) {
        try {
          for await (const e of source.events(target.apiUrl, { signal: controller.signal })) {
            setErrors((x) => {
              if (!(target.name in x)) return x
              const { [target.name]: _, ...rest } = x
              return rest
            })
            failures = 0
            if (e.event.startsWith(SSE_KEEPALIVE_PREFIX)) continue
            const live: LiveEvent = { seq: ++seqRef.current, at: Date.now(), node: target.name, event: e.event, data: e.data }
            if (pausedRef.current) setHeld((h) => [...h, live].slice(-EVENT_BUFFER))
            else setShown((s) => [...s, live].slice(-EVENT_BUFFER))
          }
          if (controller.signal.aborted) return
          failures++
          setErrors((x) => ({ ...x, [target.name]: 'stream ended; reconnecting' }))
        } catch (err) {
          if (controller.signal.aborted) return
          failures++
          setErrors((x) => ({ ...x, [target.name]: describeError(err, target.apiUrl) }))
        }
        await new Promise((resolve) => {
          const t = setTimeout(resolve, nextDelay(1000, failures))
          controller.signal.addEventListener('abort', () => { clearTimeout(t); resolve(undefined) }, { once: true })
        })
      }
    }
    for (const t of targets) void follow(t)
    return () => controller.abort()
  }, [source, key, enabled])

  return { events: shown, held: held.length, errors }
}
