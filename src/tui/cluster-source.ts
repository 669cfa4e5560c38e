// Everything the admin UI and subcommands ask of a cluster, through the typed
// API client only (design.md: tui never imports server internals). One entry
// node answers the /proxy questions; per-member questions (/metrics, /api/sse,
// client stop) go to each member's own API address from the member list.
//
// When the entry node stops answering (network error or timeout) the source
// moves to another member it has seen alive, so the UI keeps working while
// any member is reachable. HTTP errors (401, 400, ...) are answers, not
// outages: they never cause a move.
import { Agent } from 'undici'
import {
  ApiClient, ApiClientError,
  type ClientInfo, type ClientStopResult, type MemberInfo, type MessageInfo, type ProxyAnswer, type SseEvent, type TopicSubscribers
} from '../client/index.js'
import { memberRows, reachableCandidates } from './cluster-model.js'

export interface ClusterTarget {
  url: string
  username?: string | undefined
  password?: string | undefined
}

export interface ClusterSource {
  /** The API currently answering (the entry URL, or a member it moved to). */
  readonly currentUrl: string
  members: () => Promise<MemberInfo[]>
  clients: () => Promise<ProxyAnswer<ClientInfo[]>>
  inflight: (clientId: string) => Promise<ProxyAnswer<MessageInfo[]>>
  retained: (filter: string) => Promise<ProxyAnswer<MessageInfo[]>>
  subscribers: (topic: string) => Promise<ProxyAnswer<TopicSubscribers>>
  /** Disconnects a client on the member whose API is at `apiUrl`. */
  stopClient: (apiUrl: string, clientId: string) => Promise<ClientStopResult>
  /** Prometheus text of the member whose API is at `apiUrl`. */
  metrics: (apiUrl: string) => Promise<string>
  events: (apiUrl: string, options: { filters?: string[], signal?: AbortSignal }) => AsyncGenerator<SseEvent>
  close: () => Promise<void>
}

function isOutage (err: unknown): boolean {
  return err instanceof ApiClientError && (err.kind === 'network' || err.kind === 'timeout')
}

export class ApiClusterSource implements ClusterSource {
  private readonly target: ClusterTarget
  private readonly timeoutMs: number
  private readonly dispatcher: Agent
  private readonly clientsByUrl = new Map<string, ApiClient>()
  private entryUrl: string
  /** API addresses of members last seen alive: where to go when the entry fails. */
  private fallbacks: string[] = []

  /** tls: for an API behind HTTPS (an ingress): the CAs to trust (PEM), or no verification. */
  constructor (target: ClusterTarget, options: { timeoutMs?: number, tls?: { ca?: string | undefined, insecure?: boolean | undefined } } = {}) {
    this.target = target
    const tls = options.tls ?? {}
    this.dispatcher = new Agent({
      connections: 4,
      ...(tls.ca === undefined && tls.insecure !== true ? {} : { connect: { ...(tls.ca === undefined ? {} : { ca: tls.ca }), rejectUnauthorized: tls.insecure !== true } })
    })
    this.timeoutMs = options.timeoutMs ?? 4000
    this.entryUrl = target.url.replace(/\/+$/, '')
  }

  get currentUrl (): string { return this.entryUrl }

  private api (url: string): ApiClient {
    let client = this.clientsByUrl.get(url)
    if (client === undefined) {
      client = new ApiClient({
        baseUrl: url,
        timeoutMs: this.timeoutMs,
        username: this.target.username,
        password: this.target.password,
        dispatcher: this.dispatcher
      })
      this.clientsByUrl.set(url, client)
    }
    return client
  }

  /** Runs `call` on the entry; on an outage, on each other known member in turn. */
  private async viaEntry<T> (call: (api: ApiClient) => Promise<T>): Promise<T> {
    try {
      return await call(this.api(this.entryUrl))
    } catch (err) {
      if (!isOutage(err)) throw err
      const original = this.target.url.replace(/\/+$/, '')
      const others = [...new Set([original, ...this.fallbacks])].filter((u) => u !== this.entryUrl)
      for (const url of others) {
        try {
          const answer = await call(this.api(url))
          this.entryUrl = url
          return answer
        } catch (next) {
          if (!isOutage(next)) throw next
        }
      }
      throw err
    }
  }

  async members (): Promise<MemberInfo[]> {
    const members = await this.viaEntry((api) => api.members())
    this.fallbacks = reachableCandidates(memberRows(members)).map((r) => r.apiUrl!)
    return members
  }

  clients (): Promise<ProxyAnswer<ClientInfo[]>> { return this.viaEntry((api) => api.proxyClients()) }
  inflight (clientId: string): Promise<ProxyAnswer<MessageInfo[]>> { return this.viaEntry((api) => api.proxyInflight(clientId)) }
  retained (filter: string): Promise<ProxyAnswer<MessageInfo[]>> { return this.viaEntry((api) => api.proxyTopicMessages(filter)) }
  subscribers (topic: string): Promise<ProxyAnswer<TopicSubscribers>> { return this.viaEntry((api) => api.proxyTopicSubscribers(topic)) }
  stopClient (apiUrl: string, clientId: string): Promise<ClientStopResult> { return this.api(apiUrl).stopClient(clientId) }
  metrics (apiUrl: string): Promise<string> { return this.api(apiUrl).metrics() }

  events (apiUrl: string, options: { filters?: string[], signal?: AbortSignal }): AsyncGenerator<SseEvent> {
    return this.api(apiUrl).events({ filters: options.filters ?? [], channelSize: 1000, signal: options.signal })
  }

  async close (): Promise<void> {
    this.clientsByUrl.clear()
    await this.dispatcher.destroy()
  }
}

/** One line an operator can act on, for any error the source throws. */
export function describeError (err: unknown, url?: string): string {
  if (err instanceof ApiClientError) {
    if (err.kind === 'http' && err.status === 401) {
      return `credentials refused by ${url ?? err.url} (HTTP 401${err.serverMessage === undefined ? '' : `: ${err.serverMessage}`}): check --user or BROKER_ADMIN_USER`
    }
    if (err.kind === 'http') return `HTTP ${err.status}${err.serverMessage === undefined ? '' : `: ${err.serverMessage}`}`
    if (err.kind === 'network') return `cannot reach ${url ?? err.url}: ${networkReason(err)}`
    if (err.kind === 'timeout') return `no answer from ${url ?? err.url} within the deadline`
    return `unexpected answer from ${url ?? err.url}: not the broker-ha API?`
  }
  return (err as Error)?.message ?? String(err)
}

function networkReason (err: ApiClientError): string {
  const cause = err.cause as { code?: string, message?: string } | undefined
  const code = cause?.code ?? (cause as { cause?: { code?: string } } | undefined)?.cause?.code
  if (code === 'ECONNREFUSED') return 'connection refused'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found'
  if (code === 'ECONNRESET') return 'connection reset'
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'host unreachable'
  return cause?.message ?? err.message
}

/**
 * The server's reason when it refused the request itself (HTTP 400): the
 * caller's mistake (a wildcard where a topic name belongs), not an outage.
 */
export function refusalOf (err: unknown): string | undefined {
  if (!(err instanceof ApiClientError) || err.kind !== 'http' || err.status !== 400) return undefined
  return err.serverMessage ?? 'bad request'
}

export function isAuthError (err: unknown): boolean {
  return err instanceof ApiClientError && err.kind === 'http' && err.status === 401
}
