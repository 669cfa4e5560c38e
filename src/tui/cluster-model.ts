// The cluster as the admin UI shows it: pure functions from the API's answers
// (members, /proxy answers) to rows. No I/O here, so views and subcommands
// share one reading of the wire contract and tests need no node.
import { isMemberError, type ClientInfo, type MemberInfo, type MessageInfo, type ProxyAnswer, type SubscriptionInfo, type TopicSubscribers } from '../client/index.js'

export type MemberStateName = 'alive' | 'suspect' | 'dead' | 'left' | 'unknown'

// memberlist numbering, as State is sent on the wire (docs/http-api.md).
const STATE_NAMES: MemberStateName[] = ['alive', 'suspect', 'dead', 'left']

export function memberStateName (state: number): MemberStateName {
  return STATE_NAMES[state] ?? 'unknown'
}

export interface MemberMeta { api?: number, mqtt?: number, version?: string }

/** Member metadata is a JSON string; a member from another build may send anything. */
export function parseMeta (meta: string): MemberMeta {
  try {
    const value = JSON.parse(meta) as Record<string, unknown>
    const out: MemberMeta = {}
    if (typeof value.api === 'number') out.api = value.api
    if (typeof value.mqtt === 'number') out.mqtt = value.mqtt
    if (typeof value.version === 'string') out.version = value.version
    return out
  } catch {
    return {}
  }
}

export interface MemberRow {
  name: string
  addr: string
  /** Cluster (gossip) port. */
  port: number
  state: MemberStateName
  version: string
  /** http://addr:api, undefined when the member does not advertise its API port. */
  apiUrl: string | undefined
  mqttPort: number | undefined
}

export function memberApiUrl (addr: string, apiPort: number): string {
  const host = addr.includes(':') ? `[${addr}]` : addr
  return `http://${host}:${apiPort}`
}

export function memberRows (members: MemberInfo[]): MemberRow[] {
  return members.map((m) => {
    const meta = parseMeta(m.Meta)
    return {
      name: m.Name,
      addr: m.Addr,
      port: m.Port,
      state: memberStateName(m.State),
      version: meta.version ?? '',
      apiUrl: meta.api === undefined ? undefined : memberApiUrl(m.Addr, meta.api),
      mqttPort: meta.mqtt
    }
  }).sort((a, b) => a.name.localeCompare(b.name))
}

/** Members worth asking directly (the same rule /proxy applies). */
export function reachableCandidates (rows: MemberRow[]): MemberRow[] {
  return rows.filter((r) => (r.state === 'alive' || r.state === 'suspect') && r.apiUrl !== undefined)
}

/** A /proxy answer split into the members that answered and those that failed. */
export interface Gathered<T> {
  answers: Array<[string, T]>
  /** Members that could not answer (down, slow, refused credentials), with why. */
  failures: Record<string, string>
  /**
   * Why members refused the request itself (HTTP 400): the caller's mistake,
   * said once, not an unreachable member. A node refuses such a /proxy
   * request before asking anyone; older nodes answered it per member.
   */
  refused: string | undefined
}

/** The outcome of one /proxy question as rows. */
export interface Answered<R> { rows: R[], failures: Record<string, string>, refused: string | undefined }

/**
 * A member's /proxy error without the request line the client repeats
 * ("network: GET http://10.0.0.3:8080/api/mqtt/clients: connect ECONNREFUSED
 * 10.0.0.3:8080" becomes "network: connect ECONNREFUSED 10.0.0.3:8080"): the
 * member is already named, and the reason has to fit a terminal line.
 */
export function shortReason (error: string): string {
  return error.replace(/^([a-z-]+): (?:GET|POST) \S+: /, '$1: ')
}

export function gather<T> (answer: ProxyAnswer<T>): Gathered<T> {
  const answers: Array<[string, T]> = []
  const failures: Record<string, string> = {}
  let refused: string | undefined
  for (const [member, value] of Object.entries(answer).sort(([a], [b]) => a.localeCompare(b))) {
    if (!isMemberError(value)) answers.push([member, value])
    else if (value.error.startsWith('HTTP 400: ')) refused ??= value.error.slice('HTTP 400: '.length)
    else failures[member] = shortReason(value.error)
  }
  return { answers, failures, refused }
}

export function protocolName (version: number): string {
  return version === 5 ? '5.0' : version === 4 ? '3.1.1' : version === 3 ? '3.1' : String(version)
}

export interface ClientRow {
  id: string
  node: string
  username: string
  protocol: string
  cleanSession: boolean
  subscriptions: SubscriptionInfo[]
  /** The subscription keys as the client wrote them ($share/... included). */
  filters: string[]
  /** address:port it connects from, when the member says. */
  remote: string | undefined
  /** Unix seconds the connection was accepted, when the member says. */
  connectedAt: number | undefined
  /** Keep alive in force (s), when the member says. */
  keepAlive: number | undefined
}

export function clientRows (answer: ProxyAnswer<ClientInfo[]>): Answered<ClientRow> {
  const { answers, failures, refused } = gather(answer)
  const rows: ClientRow[] = []
  for (const [node, clients] of answers) {
    for (const c of clients) {
      rows.push({
        id: c.ID,
        node,
        username: c.Username,
        protocol: protocolName(c.ProtocolVersion),
        cleanSession: c.CleanSession,
        subscriptions: Object.values(c.Subscriptions),
        filters: Object.keys(c.Subscriptions).sort(),
        remote: c.Remote,
        connectedAt: c.ConnectedAt,
        keepAlive: c.KeepAlive
      })
    }
  }
  rows.sort((a, b) => a.id.localeCompare(b.id) || a.node.localeCompare(b.node))
  return { rows, failures, refused }
}

/** Case-insensitive substring match on id, node and username. */
export function filterClients (rows: ClientRow[], text: string): ClientRow[] {
  const needle = text.trim().toLowerCase()
  if (needle === '') return rows
  return rows.filter((r) => r.id.toLowerCase().includes(needle) || r.node.toLowerCase().includes(needle) || r.username.toLowerCase().includes(needle))
}

export function clientsPerNode (answer: ProxyAnswer<ClientInfo[]> | undefined): Map<string, number> {
  const counts = new Map<string, number>()
  if (answer === undefined) return counts
  for (const [node, clients] of gather(answer).answers) counts.set(node, clients.length)
  return counts
}

export interface RetainedRow {
  topic: string
  /** Members holding this topic. */
  nodes: string[]
  qos: number
  payload: Buffer
  properties: Record<string, unknown> | null
  /** True when members hold different payloads for the topic (replication not converged). */
  differs: boolean
}

/** Retained messages are replicated to every member: one row per topic, with who holds it. */
export function retainedRows (answer: ProxyAnswer<MessageInfo[]>): Answered<RetainedRow> {
  const { answers, failures, refused } = gather(answer)
  const byTopic = new Map<string, RetainedRow>()
  for (const [node, messages] of answers) {
    for (const m of messages) {
      const existing = byTopic.get(m.TopicName)
      if (existing === undefined) {
        byTopic.set(m.TopicName, {
          topic: m.TopicName,
          nodes: [node],
          qos: m.FixedHeader.qos,
          payload: Buffer.from(m.Payload, 'base64'),
          properties: m.Properties,
          differs: false
        })
      } else {
        existing.nodes.push(node)
        if (existing.payload.toString('base64') !== m.Payload) existing.differs = true
      }
    }
  }
  return { rows: [...byTopic.values()].sort((a, b) => a.topic.localeCompare(b.topic)), failures, refused }
}

export interface SubscriberRow {
  node: string
  clientId: string
  filter: string
  qos: number
  /** Shared subscription group, empty when not shared. */
  group: string
}

export function subscriberRows (answer: ProxyAnswer<TopicSubscribers>): Answered<SubscriberRow> {
  const { answers, failures, refused } = gather(answer)
  const rows: SubscriberRow[] = []
  for (const [node, subs] of answers) {
    for (const [clientId, s] of Object.entries(subs.Subscriptions)) {
      rows.push({ node, clientId, filter: s.Filter, qos: s.Qos, group: '' })
    }
    for (const [shared, members] of Object.entries(subs.Shared)) {
      for (const [clientId, s] of Object.entries(members)) {
        rows.push({ node, clientId, filter: shared, qos: s.Qos, group: s.ShareName?.[0] ?? '' })
      }
    }
  }
  rows.sort((a, b) => a.clientId.localeCompare(b.clientId) || a.node.localeCompare(b.node))
  return { rows, failures, refused }
}

export interface InflightRow { node: string, topic: string, qos: number, packetId: number, payload: Buffer }

export function inflightRows (answer: ProxyAnswer<MessageInfo[]>): Answered<InflightRow> {
  const { answers, failures, refused } = gather(answer)
  const rows: InflightRow[] = []
  for (const [node, messages] of answers) {
    for (const m of messages) rows.push({ node, topic: m.TopicName, qos: m.FixedHeader.qos, packetId: m.PacketID, payload: Buffer.from(m.Payload, 'base64') })
  }
  return { rows, failures, refused }
}
