// Keyboard input for the admin UI, one key at a time (keys.ts says why).
//
// Inside the app, one listener (App's) reads the terminal and routes each key
// in order: to the open overlay, else to the view while it captures typing,
// else to the global keys, else to the view. A view registers its handler
// with `useViewKeys`; a view rendered on its own (tests, another app) listens
// to Ink itself through the same hook.
import { createContext, useContext, useEffect, useMemo, useRef } from 'react'
import { useInput } from 'ink'
import { splitKeys, type KeyHandler } from '../keys.js'

export interface KeyRouter {
  /** Makes `handler` the view's key handler. */
  attach: (handler: KeyHandler) => void
  /** Removes `handler` if it is still the view's. */
  detach: (handler: KeyHandler) => void
}

export const KeyRouterContext = createContext<KeyRouter | undefined>(undefined)

/** A router whose current view handler lives in a ref the owner reads. */
export function useKeyRouter (): { router: KeyRouter, viewHandler: () => KeyHandler | undefined } {
  const current = useRef<KeyHandler | undefined>(undefined)
  return useMemo(() => ({
    router: {
      attach: (handler: KeyHandler) => { current.current = handler },
      detach: (handler: KeyHandler) => { if (current.current === handler) current.current = undefined }
    },
    viewHandler: () => current.current
  }), [])
}

/** Calls `handler` once per key; `isActive: false` while something else (an overlay) has the keyboard. */
export function useViewKeys (handler: KeyHandler, options: { isActive?: boolean } = {}): void {
  const active = options.isActive !== false
  const router = useContext(KeyRouterContext)
  const latest = useRef(handler)
  latest.current = handler
  useEffect(() => {
    if (router === undefined || !active) return undefined
    const forward: KeyHandler = (input, key) => latest.current(input, key)
    router.attach(forward)
    return () => router.detach(forward)
  }, [router, active])
  useInput((input, key) => {
    for (const press of splitKeys(input, key)) latest.current(press.input, press.key)
  }, { isActive: active && router === undefined })
}
