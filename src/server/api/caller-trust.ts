// Who may use /debug, the mutating endpoints (client/stop) and /chaos when
// api.user is not set: callers on this host only. "On this host" is decided
// from the connection, not from headers:
//   - the peer is 127.0.0.1 or ::1, the source address the kernel gives every
//     connection to a loopback address (curl localhost, kubectl port-forward,
//     a sidecar); or
//   - the peer address is the address the connection arrived on: the host
//     talking to itself over one of its own addresses (Linux drops packets
//     from outside whose source is a local address).
// Other 127.0.0.0/8 sources are treated as remote: they appear only when a
// program binds one on purpose, and treating them so is what lets tests play
// a caller from elsewhere (API on 127.0.0.2, caller bound to 127.0.0.3).
import type { FastifyRequest } from 'fastify'
import { normaliseAddress } from '../mqtt/access.js'

export function isLocalCaller (socket: { remoteAddress?: string | undefined, localAddress?: string | undefined }): boolean {
  if (socket.remoteAddress === undefined) return false
  const remote = normaliseAddress(socket.remoteAddress)
  if (remote === '127.0.0.1' || remote === '::1') return true
  return socket.localAddress !== undefined && remote === normaliseAddress(socket.localAddress)
}

/** The caller's address as rules and the backoff see it. */
export function callerAddress (request: FastifyRequest): string {
  return normaliseAddress(request.socket.remoteAddress ?? 'unknown')
}

/** Routes that act on the node (or reveal its memory) and need a trusted caller without api.user. */
export function needsTrustedCaller (method: string, path: string): boolean {
  if (path === '/debug' || path.startsWith('/debug/')) return true
  if (path === '/chaos' || path.startsWith('/chaos/')) return true
  return method === 'POST' && MUTATING_ROUTES.has(path)
}

/** POST routes that change state (everything else under /api and /proxy reads). */
export const MUTATING_ROUTES = new Set(['/api/mqtt/client/stop'])

export const LOCAL_ONLY_MESSAGE = 'this endpoint answers only callers on this host while api.user is not set: set api.user (HTTP basic auth) to use it from elsewhere, or call it through localhost (kubectl port-forward)'
