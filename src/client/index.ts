// A typed client for a broker-ha node's HTTP API (undici). The admin TUI, the
// chaos runner and the API's own /proxy fan-out use it, so every endpoint is
// here once, with its types from the wire contract (contract.ts).
//
// Every call has a deadline (whole request, body included) and fails with an
// ApiClientError that says what happened: the server's status and message, a
// timeout, a network error, or an answer that is not what the API sends.
import { Agent, request, type Dispatcher } from 'undici'
import type { Readable } from 'node:stream'
import type {
  ClientInfo, ClientStopResult, MemberInfo, MessageInfo, ProbeResult, ProxyAnswer,
  RuntimeSummary, SseEvent, TopicSubscribers
} from './contract.js'

export type * from './contract.js'
export { isMemberError, SSE_KEEPALIVE_PREFIX } from './contract.js'

export type ApiClientErrorKind =
  | 'http' // the server answered with an error status
  | 'timeout' // no complete answer within the deadline
  | 'network' // connection refused, reset, DNS, ...
  | 'invalid-response' // the answer is not what the API sends (e.g. not JSON)

export class ApiClientError extends Error {
  readonly kind: ApiClientErrorKind
  /** HTTP status of the answer; 0 when there was none. */
  readonly status: number
  /** The server's `error` field, when it sent one. */
  readonly serverMessage: string | undefined
  readonly method: string
  readonly url: string

  constructor (kind: ApiClientErrorKind, message: string, details: { status?: number, serverMessage?: string, method: string, url: string, cause?: unknown }) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'ApiClientError'
    this.kind = kind
    this.status = details.status ?? 0
    this.serverMessage = details.serverMessage
    this.method = details.method
    this.url = details.url
  }
}

export interface ApiClientOptions {
  /** e.g. http://127.0.0.1:8080 */
  baseUrl: string
  /** Deadline of each call, ms (default 5000). CPU profiles get their duration on top. */
  timeoutMs?: number
  /** Basic auth credentials for /api, /proxy and /debug. */
  username?: string
  password?: string
  /** A ready Authorization header (what /proxy forwards); wins over username/password. */
  authorization?: string
  /** Connection pool to use; the client makes (and closes) its own when absent. */
  dispatcher?: Dispatcher
}

/** A Chrome DevTools .cpuprofile (V8 Profiler.Profile). */
export interface CpuProfile {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number }, hitCount?: number, children?: number[] }>
  startTime: number
  endTime: number
  samples?: number[]
  timeDeltas?: number[]
}

/** A probe answer with whether the node passed it (HTTP 200) or not (503). */
export interface ProbeAnswer {
  ok: boolean
  result: ProbeResult
}

type Method = 'GET' | 'POST'

export class ApiClient {
  readonly baseUrl: string
  private readonly timeoutMs: number
  private readonly authorization: string | undefined
  private readonly dispatcher: Dispatcher
  private readonly ownsDispatcher: boolean

  constructor (options: ApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.timeoutMs = options.timeoutMs ?? 5000
    this.authorization = options.authorization ??
      (options.username !== undefined
        ? `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}`
        : undefined)
    this.ownsDispatcher = options.dispatcher === undefined
    this.dispatcher = options.dispatcher ?? new Agent({ connections: 8 })
  }

  /** Closes the connection pool if the client made it. */
  async close (): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close()
  }

  // ---- probes and metrics --------------------------------------------------

  ready (): Promise<ProbeAnswer> { return this.probe('/ready') }
  healthz (): Promise<ProbeAnswer> { return this.probe('/healthz') }

  /** Prometheus text exposition. */
  async metrics (): Promise<string> {
    return (await this.send('GET', '/metrics', undefined, { accept: [200], parse: 'text' })).body as string
  }

  // ---- /api ----------------------------------------------------------------

  members (): Promise<MemberInfo[]> { return this.request('GET', '/api/discovery/members') }
  clients (): Promise<ClientInfo[]> { return this.request('GET', '/api/mqtt/clients') }
  stopClient (clientId: string): Promise<ClientStopResult> { return this.request('POST', '/api/mqtt/client/stop', { client_id: clientId }) }
  inflight (clientId: string): Promise<MessageInfo[]> { return this.request('POST', '/api/mqtt/client/inflight', { client_id: clientId }) }
  topicMessages (topic: string): Promise<MessageInfo[]> { return this.request('POST', '/api/mqtt/topic/messages', { topic }) }
  topicSubscribers (topic: string): Promise<TopicSubscribers> { return this.request('POST', '/api/mqtt/topic/subscribers', { topic }) }

  // ---- /proxy: every member's answer ---------------------------------------

  proxyMembers (): Promise<ProxyAnswer<MemberInfo[]>> { return this.request('GET', '/proxy/api/discovery/members') }
  proxyClients (): Promise<ProxyAnswer<ClientInfo[]>> { return this.request('GET', '/proxy/api/mqtt/clients') }
  proxyInflight (clientId: string): Promise<ProxyAnswer<MessageInfo[]>> { return this.request('POST', '/proxy/api/mqtt/client/inflight', { client_id: clientId }) }
  proxyTopicMessages (topic: string): Promise<ProxyAnswer<MessageInfo[]>> { return this.request('POST', '/proxy/api/mqtt/topic/messages', { topic }) }
  proxyTopicSubscribers (topic: string): Promise<ProxyAnswer<TopicSubscribers>> { return this.request('POST', '/proxy/api/mqtt/topic/subscribers', { topic }) }

  // ---- /debug --------------------------------------------------------------

  runtime (): Promise<RuntimeSummary> { return this.request('GET', '/debug') }

  /** Profiles the node's CPU for `seconds` (1..60) and returns the .cpuprofile. */
  cpuProfile (seconds: number): Promise<CpuProfile> {
    return this.request('GET', `/debug/pprof/profile?seconds=${encodeURIComponent(seconds)}`, undefined, this.timeoutMs + seconds * 1000)
  }

  /** A V8 heap snapshot (.heapsnapshot JSON) as a stream; it can be hundreds of MB. */
  async heapSnapshot (timeoutMs = 120_000): Promise<Readable> {
    return (await this.send('GET', '/debug/pprof/heap', undefined, { accept: [200], parse: 'stream', timeoutMs })).body as Readable
  }

  /** The OpenAPI 3 document of the API. */
  openapi (): Promise<{ openapi: string, paths: Record<string, Record<string, unknown>> } & Record<string, unknown>> {
    return this.request('GET', '/openapi.json')
  }

  /**
   * Server-sent events from the node's event bus (seed /api/sse). Ends when
   * the server closes the stream or `signal` aborts; keepalive events are
   * passed through (their event name starts with SSE_KEEPALIVE_PREFIX).
   */
  async * events (options: { filters?: string[], channelSize?: number, signal?: AbortSignal } = {}): AsyncGenerator<SseEvent> {
    const body: Record<string, unknown> = { filters: options.filters ?? [] }
    if (options.channelSize !== undefined) body.channel_size = options.channelSize
    const res = await this.send('POST', '/api/sse', body, { accept: [200], parse: 'stream', stream: true, signal: options.signal })
    const stream = res.body as Readable
    stream.setEncoding('utf8')
    let buffer = ''
    try {
      for await (const chunk of stream) {
        buffer += chunk as string
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = parseSseBlock(block)
          if (event !== undefined) yield event
        }
      }
    } catch (err) {
      if (options.signal?.aborted === true) return
      throw err
    } finally {
      stream.destroy()
    }
  }

  // ---- plumbing ------------------------------------------------------------

  /** Calls any JSON endpoint; resolves with the parsed body of a 2xx answer. */
  async request<T> (method: Method, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    return (await this.send(method, path, body, { accept: [200], parse: 'json', timeoutMs })).body as T
  }

  private async probe (path: string): Promise<ProbeAnswer> {
    const res = await this.send('GET', path, undefined, { accept: [200, 503], parse: 'json' })
    return { ok: res.status === 200, result: res.body as ProbeResult }
  }

  private async send (method: Method, path: string, body: unknown, options: {
    accept: number[]
    parse: 'json' | 'text' | 'stream'
    timeoutMs?: number
    /** Long-lived answer (SSE): the deadline covers the headers only. */
    stream?: boolean
    signal?: AbortSignal | undefined
  }): Promise<{ status: number, body: unknown }> {
    const url = this.baseUrl + path
    const timeoutMs = options.timeoutMs ?? this.timeoutMs
    const headers: Record<string, string> = { accept: options.parse === 'text' ? 'text/plain' : 'application/json' }
    if (this.authorization !== undefined) headers.authorization = this.authorization
    if (body !== undefined) headers['content-type'] = 'application/json'
    const deadline = options.stream === true ? undefined : AbortSignal.timeout(timeoutMs)
    const signals = [deadline, options.signal].filter((s): s is AbortSignal => s !== undefined)
    const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals)
    const fail = (kind: ApiClientErrorKind, message: string, extra: { status?: number, serverMessage?: string, cause?: unknown } = {}): ApiClientError =>
      new ApiClientError(kind, `${method} ${url}: ${message}`, { ...extra, method, url })
    const timedOut = (): boolean => deadline?.aborted === true
    let res: Dispatcher.ResponseData
    try {
      res = await request(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.dispatcher,
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: options.stream === true ? 0 : timeoutMs
      })
    } catch (err) {
      if (timedOut()) throw fail('timeout', `no answer within ${timeoutMs} ms`, { cause: err })
      throw fail('network', (err as Error).message, { cause: err })
    }
    try {
      if (!options.accept.includes(res.statusCode)) {
        const text = await res.body.text()
        let serverMessage: string | undefined
        try {
          const parsed = JSON.parse(text) as { error?: unknown }
          if (typeof parsed.error === 'string') serverMessage = parsed.error
        } catch { /* not JSON: report the status alone */ }
        throw fail('http', `HTTP ${res.statusCode}${serverMessage === undefined ? '' : `: ${serverMessage}`}`, { status: res.statusCode, serverMessage })
      }
      if (options.parse === 'stream') return { status: res.statusCode, body: res.body }
      const text = await res.body.text()
      if (options.parse === 'text') return { status: res.statusCode, body: text }
      try {
        return { status: res.statusCode, body: JSON.parse(text) }
      } catch (err) {
        throw fail('invalid-response', `answer is not JSON (HTTP ${res.statusCode}): ${text.slice(0, 200)}`, { status: res.statusCode, cause: err })
      }
    } catch (err) {
      if (err instanceof ApiClientError) throw err
      res.body.destroy()
      if (timedOut()) throw fail('timeout', `answer not complete within ${timeoutMs} ms`, { status: res.statusCode, cause: err })
      throw fail('network', (err as Error).message, { status: res.statusCode, cause: err })
    }
  }
}

/** One `event:`/`data:` block of a text/event-stream; undefined for comments and blanks. */
export function parseSseBlock (block: string): SseEvent | undefined {
  let event = 'message'
  const data: string[] = []
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  if (data.length === 0) return undefined
  const text = data.join('\n')
  try {
    return { event, data: JSON.parse(text) }
  } catch {
    return { event, data: text }
  }
}
