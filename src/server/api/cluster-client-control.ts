// client/stop and client/inflight for a client on any member (issue 5). A
// client id is connected on one node at a time and a persistent session
// lives on one node, so the answer is this node's when it has the client,
// otherwise the one member's that has it: the others are asked at once, over
// their HTTP API, marked local-scope so that they answer for themselves
// (no recursion), authenticated as member-calls.ts says (never with the
// caller's Authorization header), with the /proxy deadline
// (api.proxy_timeout).
import type { Dispatcher } from 'undici'
import { ApiClient, ApiClientError } from '../../client/index.js'
import type { ClientStopResult, MessageInfo } from '../../client/contract.js'
import type { Member, Membership } from '../cluster/membership/membership.js'
import type { MqttIntrospection } from '../mqtt/introspection.js'
import type { Logger } from '../../log.js'
import { BrokerHaError } from '../../errors.js'
import { LocalClientControl, type ClientControl, type ClientControlRequest } from './routes/mqtt.js'
import { describeFailure, proxyTargets } from './routes/proxy.js'
import { memberApiUrl, MemberCallsRefused } from './member-calls.js'

/** What asking the members found: the first member that had it, and who could not be asked. */
export interface MemberSearch<T> {
  found?: { member: string, value: T }
  /** Member name -> why it gave no answer (timeout, network, HTTP error). */
  unreachable: Record<string, string>
}

/**
 * Asks every target concurrently. `ask` resolves with the member's value
 * when the member has what is looked for, undefined when it does not, and
 * throws when it could not answer. Resolves at the first value (the rest
 * are left to finish on their own), or once every member has answered.
 */
export async function searchMembers<T> (targets: Member[], ask: (member: Member) => Promise<T | undefined>): Promise<MemberSearch<T>> {
  const unreachable: Record<string, string> = {}
  return await new Promise((resolve) => {
    let pending = targets.length
    let done = false
    const settle = (): void => {
      if (--pending === 0 && !done) {
        done = true
        resolve({ unreachable })
      }
    }
    if (pending === 0) { resolve({ unreachable }); return }
    for (const member of targets) {
      ask(member).then((value) => {
        if (value !== undefined && !done) {
          done = true
          resolve({ found: { member: member.name, value }, unreachable })
        }
        settle()
      }, (err: unknown) => {
        unreachable[member.name] = describeFailure(err)
        settle()
      })
    }
  })
}

/** The 404 message when no member has the client: names the members that could not be asked. */
export function notFoundMessage (clientId: string, unreachable: Record<string, string>): string {
  const names = Object.keys(unreachable).sort()
  if (names.length === 0) return `client ${JSON.stringify(clientId)} is not connected to any member`
  return `client ${JSON.stringify(clientId)} is not connected to any reachable member; unreachable: ${names.map((n) => `${n} (${unreachable[n]!})`).join(', ')}`
}

export interface ClusterClientControlOptions {
  introspection: MqttIntrospection
  membership: Membership
  /** The member-call pool (member-calls.ts memberDispatcher): signs, marks local scope, strips Authorization. */
  dispatcher: Dispatcher
  /** Deadline of each member request, ms (api.proxy_timeout). */
  timeoutMs: number
  log: Logger
  /** Why other members cannot be asked (api.user without a cluster key), as each one's failure; undefined when they can. */
  refused?: () => string | undefined
}

export class ClusterClientControl implements ClientControl {
  private readonly local: LocalClientControl
  private readonly options: ClusterClientControlOptions
  private readonly dispatcher: Dispatcher

  constructor (options: ClusterClientControlOptions) {
    this.options = options
    this.local = new LocalClientControl(options.introspection, options.membership.self.name)
    this.dispatcher = options.dispatcher
  }

  async stop (clientId: string, request: ClientControlRequest = {}): Promise<ClientStopResult> {
    const others = request.local === true ? [] : this.others()
    try {
      return await this.local.stop(clientId)
    } catch (err) {
      // Alone, or asked for this node only: exactly the node-local answer.
      if (others.length === 0 || !(err instanceof BrokerHaError) || err.code !== 'NOT_FOUND') throw err
    }
    const search = await searchMembers(others, async (member) => {
      try {
        return await this.client(member, request).stopClient(clientId)
      } catch (err) {
        if (err instanceof ApiClientError && err.kind === 'http' && err.status === 404) return undefined
        throw err
      }
    })
    if (search.found !== undefined) return search.found.value
    throw new BrokerHaError('NOT_FOUND', notFoundMessage(clientId, search.unreachable), { key: 'client_id' })
  }

  async inflight (clientId: string, request: ClientControlRequest = {}): Promise<MessageInfo[]> {
    const here = await this.local.inflight(clientId)
    // The session is here when it has messages here or its client is connected here (possibly with nothing in flight).
    if (request.local === true || here.length > 0 || this.connectedHere(clientId)) return here
    const others = this.others()
    if (others.length === 0) return here
    // Members answer from their own persistence only (local scope): a node
    // holding a replica of the session does not list it, so the first
    // non-empty answer is the session's node.
    const search = await searchMembers(others, async (member) => {
      const messages = await this.client(member, request).inflight(clientId)
      return messages.length > 0 ? messages : undefined
    })
    const unreachable = Object.keys(search.unreachable)
    if (search.found === undefined && unreachable.length > 0) {
      // The answer's shape (a list) has no room to say so: an empty answer may be incomplete.
      this.options.log.warn({ client_id: clientId, unreachable: search.unreachable }, 'in-flight messages: some members could not be asked')
    }
    return search.found?.value ?? []
  }

  /** Members to ask: alive or suspect ones other than this node. */
  private others (): Member[] {
    const self = this.options.membership.self.name
    return proxyTargets(this.options.membership.members()).filter((m) => m.name !== self)
  }

  private connectedHere (clientId: string): boolean {
    return this.options.introspection.clients().some((c) => c.ID === clientId)
  }

  private client (member: Member, _request: ClientControlRequest): ApiClient {
    const refused = this.options.refused?.()
    if (refused !== undefined) throw new MemberCallsRefused(refused)
    // No Authorization: the caller's credentials are for this node only.
    return new ApiClient({ baseUrl: memberApiUrl(member), timeoutMs: this.options.timeoutMs, dispatcher: this.dispatcher })
  }
}
