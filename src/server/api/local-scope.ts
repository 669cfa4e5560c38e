// The local-scope marker of node-to-node API calls. A node that looks for a
// client on the other members (client/stop, client/inflight) and the /proxy
// fan-out ask each member to answer for itself only: without the marker the
// member would search the cluster again, and every /proxy answer would repeat
// the holder's. The marker only narrows what a request does; it is an
// ordinary header and auth applies to it as to any request.
import { Type } from '@sinclair/typebox'
import type { Dispatcher } from 'undici'

export const SCOPE_HEADER = 'x-broker-ha-scope'

/**
 * Route `headers` schema of the endpoints that search the cluster: `local`
 * answers from this node only; `cluster` (the default) asks the other members
 * when the client is not here. Any other value is a 400.
 */
export const ScopeHeaders = Type.Object({
  [SCOPE_HEADER]: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('cluster')], {
    description: 'local: answer from this node only (what members send each other); cluster (default): find the client on any member'
  }))
})

/** True when the request carries the local-scope marker. */
export function isLocalScope (headers: Record<string, string | string[] | undefined>): boolean {
  return headers[SCOPE_HEADER] === 'local'
}

/** Adds `SCOPE_HEADER: local` to a header set in any of the shapes undici accepts. */
export function withLocalScopeHeader (headers: Dispatcher.DispatchOptions['headers']): Dispatcher.DispatchOptions['headers'] {
  if (headers === null || headers === undefined) return { [SCOPE_HEADER]: 'local' }
  // Flat [name, value, name, value, ...] list.
  if (Array.isArray(headers)) return [...(headers as string[]), SCOPE_HEADER, 'local']
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return { ...Object.fromEntries(headers as Iterable<[string, string | string[] | undefined]>), [SCOPE_HEADER]: 'local' }
  }
  return { ...(headers as Record<string, string | string[] | undefined>), [SCOPE_HEADER]: 'local' }
}

/**
 * The same connection pool, with every request marked local-scope. Closing
 * it closes the pool (undici's composed dispatchers share their target).
 */
export function localScopeDispatcher (dispatcher: Dispatcher): Dispatcher {
  return dispatcher.compose((dispatch) => (options, handler) => dispatch({ ...options, headers: withLocalScopeHeader(options.headers) }, handler))
}
