// How this node's API calls another member's API (/proxy fan-out, finding a
// client for client/stop and client/inflight): at the member's gossip address
// (an IP literal, checked again here) and its advertised API port (an
// integer, checked again here), built with the URL API from those parts
// only, so a member's gossip metadata can never choose a host name, a path
// or credentials in the URL. The operator's Authorization header is never
// sent: with a cluster key each request carries the member credential
// (security/member-credential.ts), which the receiving member accepts in
// place of api.user; with no key and no api.user, requests go without
// credentials; with api.user set and no cluster key the members are not
// asked at all (MemberCallsRefused), because this node holds no password it
// could present and must not pass on the operator's.
import { isIP } from 'node:net'
import type { Dispatcher } from 'undici'
import type { Member } from '../cluster/membership/membership.js'
import { MEMBER_HEADER, type MemberCredential } from '../../security/member-credential.js'
import { SCOPE_HEADER, withLocalScopeHeader } from './local-scope.js'

/** The base URL of a member's API, or an Error saying why its advertised address is refused. */
export function memberApiUrl (member: Pick<Member, 'addr' | 'meta'>): string {
  const { addr } = member
  const port = member.meta?.api
  if (typeof addr !== 'string' || isIP(addr) === 0) throw new Error(`member address ${JSON.stringify(addr)} is not an IP address`)
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`member API port ${JSON.stringify(port)} is not a port number`)
  const url = new URL('http://0.0.0.0/')
  url.hostname = isIP(addr) === 6 ? `[${addr}]` : addr
  url.port = String(port)
  // What the URL API made of it must be exactly those parts (no user info, no path).
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') throw new Error(`member address ${JSON.stringify(addr)} does not make a plain URL`)
  return url.origin
}

/** Thrown for every member when member calls cannot be authenticated. */
export class MemberCallsRefused extends Error {}

export const NO_KEY_WITH_API_USER = 'not asked: api.user is set and there is no cluster.config.secret_key, so this node cannot authenticate to other members (the caller\'s credentials are never forwarded); set a cluster key on every member'

/**
 * The connection pool for member calls: every request marked local-scope
 * and signed with the member credential, any Authorization header removed.
 */
export function memberDispatcher (dispatcher: Dispatcher, credential: MemberCredential): Dispatcher {
  return dispatcher.compose((dispatch) => (options, handler) => {
    const headers = stripAuthorization(withLocalScopeHeader(options.headers) as Record<string, string | string[] | undefined>)
    const signed = credential.sign(options.method, options.path)
    if (signed !== undefined) headers[MEMBER_HEADER] = signed
    headers[SCOPE_HEADER] = 'local'
    return dispatch({ ...options, headers }, handler)
  })
}

function stripAuthorization (headers: Record<string, string | string[] | undefined> | string[]): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {}
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) out[headers[i]!] = headers[i + 1]
  } else {
    Object.assign(out, headers)
  }
  for (const name of Object.keys(out)) if (name.toLowerCase() === 'authorization' || name.toLowerCase() === MEMBER_HEADER) delete out[name]
  return out
}

/** Whether member calls may be made: undefined if so, else why not. */
export function memberCallsProblem (options: { apiUserSet: boolean, credential: MemberCredential }): string | undefined {
  return options.apiUserSet && !options.credential.enabled ? NO_KEY_WITH_API_USER : undefined
}
