// Options of a bench run and the pure plan derived from them: which clients
// exist, their role, topic or filter, URL and worker. Validation errors are
// USAGE errors (exit 2).
import { BrokerHaError } from '../errors.js'
import { SCHEMES } from './transport.js'

export const PATTERNS = ['one-to-one', 'fan-out', 'fan-in'] as const
export type Pattern = typeof PATTERNS[number]

export interface BenchOptions {
  urls: string[]
  /** Where publishers / subscribers connect; default: spread over `urls`. */
  publisherUrls?: string[]
  subscriberUrls?: string[]
  publishers: number
  subscribers: number
  qos: 0 | 1 | 2
  /** CONNECT user name and password of every client, when the broker wants them. */
  username?: string
  password?: string
  /** mqtts:// and wss://: the CAs to trust (PEM text), or no verification at all. */
  ca?: string
  insecure?: boolean
  /** Payload bytes (at least the 16-byte header). */
  size: number
  /** Messages per second per publisher; 0 = as fast as the broker takes them. */
  rate: number
  pattern: Pattern
  /** Subscribers use a wildcard filter that still matches exactly their publishers. */
  wildcard: boolean
  protocolVersion: 4 | 5
  /** Stop publishing after this long (ms) ... */
  durationMs?: number
  /** ... or after this many messages per publisher. */
  count?: number
  workers: number
  /** QoS 1 and 2: PUBLISHes a publisher keeps unacknowledged (PUBACK, or PUBCOMP for QoS 2). */
  inflight: number
  /** After publishing, how long to wait for stragglers once deliveries stop progressing. */
  drainMs: number
  /** Topic prefix; unique per run so runs never see each other's messages. */
  prefix: string
  connectConcurrency: number
  /** Wait after every subscription is granted before publishing: a cluster propagates subscriptions to its peers asynchronously. */
  settleMs?: number
  /** Subscribers connect with clean: false: every message goes through their stored session's queue. */
  persistentSubscribers?: boolean
}

export interface ClientSpec {
  /** Index among clients of its role. */
  index: number
  role: 'pub' | 'sub'
  url: string
  worker: number
  clientId: string
  /** Publish topic (pub) or subscription filter (sub). */
  topic: string
}

const usage = (key: string, message: string): BrokerHaError => new BrokerHaError('USAGE', `${key}: ${message}`, { key })

export function parseDuration (text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (m === null) throw usage('--duration', `expected e.g. 500ms, 30s, 2m; got ${text}`)
  const n = Number(m[1])
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000
  if (ms <= 0 || ms > 24 * 3600_000) throw usage('--duration', 'between 1ms and 24h')
  return ms
}

export function parseCount (key: string, text: string, min: number, max: number): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min || n > max) throw usage(key, `an integer from ${min} to ${max}; got ${text}`)
  return n
}

export function checkUrl (url: string): string {
  let u: URL
  try { u = new URL(url) } catch { throw usage('--url', `not a URL: ${url}`) }
  if (!(SCHEMES as readonly string[]).includes(u.protocol)) throw usage('--url', `mqtt://, mqtts://, ws:// or wss:// host:port; got ${url}`)
  return url
}

/** Publish topic of publisher i and filter of subscriber j for a pattern. */
export function topicsFor (o: Pick<BenchOptions, 'pattern' | 'wildcard' | 'prefix' | 'publishers'>): { topic: (i: number) => string, filter: (j: number) => string } {
  const p = o.prefix
  switch (o.pattern) {
    case 'one-to-one':
      // Subscriber j listens to publisher j mod P.
      return { topic: (i) => `${p}/${i}/data`, filter: (j) => o.wildcard ? `${p}/${j % o.publishers}/+` : `${p}/${j % o.publishers}/data` }
    case 'fan-out':
      // Every publisher to one topic every subscriber holds.
      return { topic: () => `${p}/all/data`, filter: () => o.wildcard ? `${p}/#` : `${p}/all/data` }
    case 'fan-in':
      // Every publisher its own topic, subscribers take them all with one wildcard.
      return { topic: (i) => `${p}/${i}/data`, filter: () => `${p}/+/data` }
  }
}

/**
 * The clients of a run. Connections are spread round-robin over the URLs in
 * one sequence (subscribers first), like a client fleet behind a load
 * balancer; publisherUrls/subscriberUrls put each role on its own list
 * (cross-node runs). Clients go round-robin to workers.
 */
export function planClients (o: BenchOptions): ClientSpec[] {
  const { topic, filter } = topicsFor(o)
  const specs: ClientSpec[] = []
  let k = 0
  const tag = o.prefix.replace(/[^a-zA-Z0-9]/g, '').slice(-8)
  for (let j = 0; j < o.subscribers; j++, k++) {
    const urls = o.subscriberUrls ?? o.urls
    specs.push({ index: j, role: 'sub', url: urls[(o.subscriberUrls !== undefined ? j : k) % urls.length]!, worker: k % o.workers, clientId: `bench-${tag}-s${j}`, topic: filter(j) })
  }
  for (let i = 0; i < o.publishers; i++, k++) {
    const urls = o.publisherUrls ?? o.urls
    specs.push({ index: i, role: 'pub', url: urls[(o.publisherUrls !== undefined ? i : k) % urls.length]!, worker: k % o.workers, clientId: `bench-${tag}-p${i}`, topic: topic(i) })
  }
  return specs
}

export function validateOptions (o: BenchOptions): void {
  if (o.urls.length === 0 && (o.publisherUrls === undefined || o.subscriberUrls === undefined)) throw usage('--url', 'at least one')
  for (const u of [...o.urls, ...(o.publisherUrls ?? []), ...(o.subscriberUrls ?? [])]) checkUrl(u)
  if (o.publishers < 1) throw usage('--publishers', 'at least 1')
  if (o.subscribers < 0) throw usage('--subscribers', 'not negative')
  if (o.size < 16) throw usage('--size', 'at least 16 bytes (the timestamp header)')
  if ((o.durationMs === undefined) === (o.count === undefined)) throw usage('--count', 'give exactly one of --duration and --count')
  if (o.count !== undefined && o.count >= 2 ** 32) throw usage('--count', 'below 2^32')
  if (o.password !== undefined && o.username === undefined) throw usage('--password', 'needs --username (MQTT 3.1.1 sends no password without a user name)')
}
