// /proxy/api/...: one request, every member's answer (seed: the endpoints
// marked `| /proxy/...`). Members are asked concurrently through the typed
// client, each with its own deadline (api.proxy_timeout); the answer is
// `{memberName: answer}`, and a member that fails or times out appears as
// `{"error": "..."}` instead of failing the whole answer. Members are
// reached and authenticated as member-calls.ts says (never with the caller's
// Authorization header), and every request is marked local-scope
// (local-scope.ts), so each member answers for itself instead of searching
// the cluster again.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { ApiClient, ApiClientError } from '../../../client/index.js'
import { proxyAnswer, type MemberError } from '../../../client/contract.js'
import type { Member, Membership } from '../../cluster/membership/membership.js'
import { responses } from '../errors.js'
import { SCOPE_HEADER } from '../local-scope.js'
import { memberApiUrl, MemberCallsRefused } from '../member-calls.js'
import type { ProxiedRoute } from './mqtt.js'

export { memberApiUrl } from '../member-calls.js'

export interface ProxyDeps {
  membership: Membership
  /** The member-call pool (member-calls.ts memberDispatcher): signs, marks local scope, strips Authorization. */
  dispatcher: Dispatcher
  timeoutMs: number
  /** Why other members cannot be asked (api.user without a cluster key), as each one's error; undefined when they can. */
  refused?: () => string | undefined
}

/** Members worth asking: alive or merely suspected (a suspect may still answer). */
export function proxyTargets (members: Member[]): Member[] {
  return members.filter((m) => m.state === 'alive' || m.state === 'suspect')
}

/** One line saying why a member could not answer. */
export function describeFailure (err: unknown): string {
  if (err instanceof ApiClientError) {
    if (err.kind === 'http') return `HTTP ${err.status}${err.serverMessage === undefined ? '' : `: ${err.serverMessage}`}`
    return `${err.kind}: ${err.message}`
  }
  return (err as Error).message ?? String(err)
}

/** Asks every target concurrently; never rejects. */
export async function fanOut (targets: Member[], ask: (member: Member) => Promise<unknown>): Promise<Record<string, unknown>> {
  const answers = await Promise.all(targets.map(async (member): Promise<[string, unknown]> => {
    try {
      return [member.name, await ask(member)]
    } catch (err) {
      const failed: MemberError = { error: describeFailure(err) }
      return [member.name, failed]
    }
  }))
  return Object.fromEntries(answers)
}

export function proxyRoutes (app: FastifyInstance, routes: ProxiedRoute[], deps: ProxyDeps): void {
  const self = deps.membership.self.name
  const dispatcher = deps.dispatcher
  const askSelf = async (route: ProxiedRoute, request: FastifyRequest): Promise<unknown> => {
    // Ourselves: through the same route handler in-process, no network hop.
    const headers: Record<string, string> = { [SCOPE_HEADER]: 'local' }
    if (request.headers.authorization !== undefined) headers.authorization = request.headers.authorization
    const res = await app.inject({
      method: route.method,
      url: route.url,
      headers,
      ...(route.method === 'POST' ? { payload: request.body as object } : {})
    })
    const body = res.json() as { error?: string }
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}${typeof body.error === 'string' ? `: ${body.error}` : ''}`)
    return body
  }

  for (const route of routes) {
    app.route({
      method: route.method,
      url: `/proxy${route.url}`,
      schema: {
        summary: `Every member's answer to ${route.method} ${route.url}: {memberName: answer}; a failed member holds {"error": "..."}`,
        tags: ['proxy'],
        ...(route.body === undefined ? {} : { body: route.body }),
        response: responses(proxyAnswer(route.response), route.body === undefined ? [401] : [400, 401])
      },
      handler: async (request) => {
        // A request no member could answer is the caller's mistake: one 400, not one error per member.
        route.check?.((request.body ?? {}) as Record<string, string>)
        return await fanOut(proxyTargets(deps.membership.members()), async (member) => {
          if (member.name === self) return await withDeadline(askSelf(route, request), deps.timeoutMs)
          const refused = deps.refused?.()
          if (refused !== undefined) throw new MemberCallsRefused(refused)
          // No Authorization: the caller's credentials are for this node only.
          const client = new ApiClient({ baseUrl: memberApiUrl(member), timeoutMs: deps.timeoutMs, dispatcher })
          return await client.request(route.method, route.url, route.method === 'POST' ? request.body : undefined)
        })
      }
    })
  }
}

async function withDeadline<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: no answer within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}
