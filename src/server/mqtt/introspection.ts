// Read-only queries over aedes and its persistence for the HTTP API (clients
// with subscriptions, in-flight messages, retained messages, subscribers of a
// topic), the one administrative action (disconnecting a client), and the
// message counters behind the seed's broker_messages_* metrics.
//
// aedes has no public API for most of this, so this file - and only this
// file - reads aedes internals (documented fields of aedes 2.0.0-beta.1:
// `broker.clients`, `client.subscriptions`). Each such read says so where it happens.
// Persistence is only used through its public interface, so a replicated
// persistence (cluster work) answers the same queries.
import type { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import { BrokerHaError } from '../../errors.js'
import { displayTopic } from './shared-subscriptions.js'
import type { ClientInfo, MessageInfo, SubscriptionInfo, TopicSubscribers } from '../../client/contract.js'
import type { SessionStore } from './persistence.js'
import type { AedesHooks } from './hooks.js'

// ---- topic rules (pure) ------------------------------------------------------

/** Why `filter` is not a valid MQTT topic filter (MQTT 5 section 4.7.1), or undefined. */
export function filterProblem (filter: string): string | undefined {
  if (filter.length === 0) return 'must not be empty'
  if (filter.includes('\u0000')) return 'must not contain U+0000'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return "'#' must be a whole level and the last one"
    if (level.includes('+') && level !== '+') return "'+' must be a whole level"
  }
  return undefined
}

/** Why `topic` is not a valid MQTT topic name (no wildcards, section 4.7.3), or undefined. */
export function topicProblem (topic: string): string | undefined {
  if (topic.length === 0) return 'must not be empty'
  if (topic.includes('\u0000')) return 'must not contain U+0000'
  if (topic.includes('+') || topic.includes('#')) return 'must be a topic name, without wildcards'
  return undefined
}

/**
 * True when `topic` matches `filter` (MQTT 5 section 4.7). Filters starting
 * with a wildcard never match topics starting with '$' [MQTT-4.7.2-1].
 */
export function topicMatches (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true // also matches the parent level [MQTT-4.7.1-2]
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

/** Splits `$share/<group>/<filter>` (MQTT 5 section 4.8.2); undefined for ordinary filters. */
export function parseSharedFilter (filter: string): { group: string, filter: string } | undefined {
  if (!filter.startsWith('$share/')) return undefined
  const rest = filter.slice('$share/'.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return undefined
  return { group: rest.slice(0, slash), filter: rest.slice(slash + 1) }
}

// ---- shapes ----------------------------------------------------------------

/** What aedes keeps per subscription in `client.subscriptions` (lib/handlers/subscribe.js). */
interface AedesSubscription {
  qos: number
  si?: number
  rh?: number
  rap?: boolean
  nl?: boolean
}

interface StoredPacket {
  topic: string
  payload?: Buffer | string
  qos?: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  clientId?: string
  messageExpiry?: number
  properties?: Record<string, unknown>
  /** Set by a persistence that timestamps what it stores (ms since the epoch). */
  created?: number
}

/** The part of the aedes persistence interface used here (all public methods). */
interface QueryablePersistence {
  createRetainedStream (pattern: string): Readable
  subscriptionsByTopic (topic: string): Promise<Array<{ clientId: string, topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean }>>
}

/** Private view of an aedes Client; only this file uses it. */
interface ClientInternals extends Client {
  subscriptions: Record<string, AedesSubscription>
}

function subscriptionInfo (filter: string, s: { qos: number, si?: number, rh?: number, rap?: boolean, nl?: boolean }, identifiers: Record<string, number> | null = null): SubscriptionInfo {
  const shared = parseSharedFilter(filter)
  return {
    ShareName: shared === undefined ? null : [shared.group],
    Filter: shared === undefined ? filter : shared.filter,
    Identifier: s.si ?? 0,
    Identifiers: identifiers,
    RetainHandling: s.rh ?? 0,
    Qos: s.qos,
    RetainAsPublished: s.rap === true,
    NoLocal: s.nl === true
  }
}

/** MQTT 5 properties as JSON: Buffers (correlation data) become base64. */
function jsonProperties (properties: Record<string, unknown> | undefined): Record<string, unknown> | null {
  if (properties === undefined || properties === null) return null
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(properties)) {
    out[key] = Buffer.isBuffer(value) ? value.toString('base64') : value
  }
  return out
}

export function messageInfo (p: StoredPacket): MessageInfo {
  const payload = p.payload === undefined ? Buffer.alloc(0) : Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload)
  return {
    TopicName: p.topic,
    Payload: payload.toString('base64'),
    FixedHeader: { remaining: 0, type: 3, qos: p.qos ?? 0, dup: p.dup === true, retain: p.retain === true },
    PacketID: p.messageId ?? 0,
    Created: typeof p.created === 'number' ? Math.floor(p.created / 1000) : 0,
    Expiry: typeof p.messageExpiry === 'number' ? Math.floor(p.messageExpiry / 1000) : 0,
    Origin: p.clientId ?? '',
    Properties: jsonProperties(p.properties)
  }
}

async function collect (stream: Readable): Promise<StoredPacket[]> {
  const out: StoredPacket[] = []
  for await (const packet of stream) out.push(packet as StoredPacket)
  return out
}

// ---- the queries -----------------------------------------------------------

/** Counts behind broker_messages_recv / _sent / _dropped. */
export interface MessageCounts {
  /** PUBLISH packets received from clients. */
  received: number
  /** PUBLISH packets handed to a subscriber's connection. */
  sent: number
  /** Messages that could not be delivered: subscriber connection already closed, or a will dropped at shutdown. */
  dropped: number
}

/** MQTT 5 reason code 0x98, Administrative action (section 3.14.2.1). */
const ADMINISTRATIVE_ACTION = 0x98

export class MqttIntrospection {
  readonly counts: MessageCounts
  private readonly aedes: Aedes
  private readonly store: SessionStore | undefined
  /** Username given at CONNECT; aedes hands it to authenticate() but does not keep it. */
  private readonly usernames = new WeakMap<Client, string>()

  /** Told why a client is disconnected here (client-log.ts). */
  private readonly because: (client: Client, reason: string) => void

  /** `counts` is kept by the delivery layer and the session senders (sent, dropped) and here (received). */
  constructor (aedes: Aedes, store: SessionStore | undefined, counts: MessageCounts, because: (client: Client, reason: string) => void = () => {}) {
    this.aedes = aedes
    this.store = store
    this.counts = counts
    this.because = because
    aedes.on('publish', (_packet: unknown, client: Client | null) => {
      if (client !== null && client !== undefined) this.counts.received++
    })
    // 'willDropped' is emitted by aedes.js but missing from its typings.
    ;(aedes as unknown as EventEmitter).on('willDropped', () => { this.counts.dropped++ })
  }

  /** The 'introspection' layer of authenticate (hooks.ts): aedes passes the CONNECT username there only. */
  installHooks (hooks: AedesHooks): void {
    hooks.use('authenticate', 'introspection', (next) => (client, username, password, callback) => {
      if (typeof username === 'string') this.usernames.set(client, username)
      next(client, username, password, callback)
    })
  }

  /** The username the client gave at CONNECT, if any. */
  usernameOf (client: Client): string | undefined { return this.usernames.get(client) }

  private persistence (): QueryablePersistence | undefined {
    // Public but untyped in aedes.d.ts; set by aedes.listen().
    return (this.aedes as unknown as { persistence?: QueryablePersistence }).persistence
  }

  private connected (): ClientInternals[] {
    // Private: aedes keeps connected clients in `broker.clients` by id.
    const clients = (this.aedes as unknown as { clients: Record<string, ClientInternals> }).clients
    return Object.values(clients)
  }

  private client (id: string): ClientInternals | undefined {
    const clients = (this.aedes as unknown as { clients: Record<string, ClientInternals> }).clients
    return Object.prototype.hasOwnProperty.call(clients, id) ? clients[id] : undefined
  }

  connectedCount (): number {
    return this.aedes.connectedClients ?? 0
  }

  /** Connected clients with their subscriptions (seed: /api/mqtt/clients). */
  clients (): ClientInfo[] {
    return this.connected().map((client) => {
      const subscriptions: Record<string, SubscriptionInfo> = {}
      for (const [stored, s] of Object.entries(client.subscriptions ?? {})) {
        // Shared subscriptions are held under a marker topic (shared-subscriptions.ts); show what the client sent.
        const filter = displayTopic(stored)
        subscriptions[filter] = subscriptionInfo(filter, s)
      }
      return {
        ID: client.id,
        ProtocolVersion: client.version ?? 0,
        Username: this.usernames.get(client) ?? '',
        CleanSession: client.clean,
        Done: client.closed,
        Subscriptions: subscriptions
      }
    })
  }

  /** Subscriptions of connected clients (seed: broker_subscriptions). */
  subscriptionCount (): number {
    let n = 0
    for (const client of this.connected()) n += Object.keys(client.subscriptions ?? {}).length
    return n
  }

  /**
   * Messages queued for a persistent session or sent and not yet acknowledged
   * (the session's outgoing queue). Clean sessions keep none in aedes, so
   * their answer is empty; an unknown client id also answers empty, so the
   * /proxy fan-out shows the member that holds the session.
   */
  async inflight (clientId: string): Promise<MessageInfo[]> {
    return (this.store?.queue(clientId) ?? []).map((p) => messageInfo(p as StoredPacket))
  }

  /**
   * QoS 1/2 messages held for persistent sessions, queued or awaiting
   * acknowledgement (broker_inflight_messages). O(1) when the persistence
   * keeps the count (the limits wrapper does); otherwise counted from the
   * queues of connected sessions.
   */
  async inflightCount (): Promise<number> {
    return this.store?.queuedCount ?? 0
  }


  /** Retained messages whose topic matches `filter` (seed: /api/mqtt/topic/messages). */
  async retained (filter: string): Promise<MessageInfo[]> {
    const problem = filterProblem(filter)
    if (problem !== undefined) throw new BrokerHaError('BAD_REQUEST', `topic ${JSON.stringify(filter)} is not a valid MQTT topic filter: ${problem}`, { key: 'topic' })
    const persistence = this.persistence()
    if (persistence === undefined) return []
    return (await collect(persistence.createRetainedStream(filter))).map(messageInfo)
  }

  /** Retained messages held, '$' topics included. */
  async retainedCount (): Promise<number> {
    const persistence = this.persistence()
    if (persistence === undefined) return 0
    let n = 0
    // '#' skips topics starting with '$' [MQTT-4.7.2-1]; '$' ones are counted apart.
    for (const pattern of ['#', '$SYS/#']) {
      for await (const _ of persistence.createRetainedStream(pattern)) n++
    }
    return n
  }

  /**
   * Who would receive a message published to `topic` on this node (seed:
   * /api/mqtt/topic/subscribers): connected clients from their live
   * subscriptions, offline persistent sessions from the persistence.
   */
  async subscribers (topic: string): Promise<TopicSubscribers> {
    const problem = topicProblem(topic)
    if (problem !== undefined) throw new BrokerHaError('BAD_REQUEST', `topic ${JSON.stringify(topic)} is not a valid MQTT topic name: ${problem}`, { key: 'topic' })
    const result: TopicSubscribers = { Shared: {}, SharedSelected: {}, Subscriptions: {} }
    for (const client of this.connected()) {
      let best: { filter: string, s: AedesSubscription } | undefined
      const identifiers: Record<string, number> = {}
      for (const [stored, s] of Object.entries(client.subscriptions ?? {})) {
        const filter = displayTopic(stored)
        const shared = parseSharedFilter(filter)
        if (shared !== undefined) {
          if (topicMatches(shared.filter, topic)) (result.Shared[filter] ??= {})[client.id] = subscriptionInfo(filter, s)
          continue
        }
        if (!topicMatches(filter, topic)) continue
        identifiers[filter] = s.si ?? 0
        if (best === undefined || s.qos > best.s.qos) best = { filter, s }
      }
      // One client, several matching filters: one delivery at the highest QoS (MQTT 5 section 4.7.2 allows it).
      if (best !== undefined) result.Subscriptions[client.id] = subscriptionInfo(best.filter, best.s, identifiers)
    }
    const persistence = this.persistence()
    if (persistence !== undefined) {
      for (const sub of await persistence.subscriptionsByTopic(topic)) {
        if (this.client(sub.clientId) !== undefined || result.Subscriptions[sub.clientId] !== undefined) continue
        result.Subscriptions[sub.clientId] = subscriptionInfo(sub.topic, sub, { [sub.topic]: 0 })
      }
    }
    // A shared group delivers each message to one member (round-robin); name one per group, as the seed's random pick did.
    for (const members of Object.values(result.Shared)) {
      const first = Object.keys(members).sort()[0]
      if (first !== undefined) result.SharedSelected[first] = members[first]!
    }
    return result
  }

  /**
   * Disconnects a client connected to this node; MQTT 5 clients get
   * DISCONNECT 0x98 (Administrative action). False when it is not here.
   */
  async disconnect (clientId: string): Promise<boolean> {
    const client = this.client(clientId)
    if (client === undefined || client.closed) return false
    this.because(client, 'disconnected by an operator (client/stop)')
    await new Promise<void>((resolve) => client.disconnect({ reasonCode: ADMINISTRATIVE_ACTION }, resolve))
    return true
  }
}
