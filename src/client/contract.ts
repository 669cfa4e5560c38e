// The wire contract of a node's HTTP API: request and response shapes as
// TypeBox schemas. The server uses them for validation, serialisation and the
// OpenAPI document; the client uses their static types. One description of
// each shape (conventions: "one schema, many uses").
//
// It lives under src/client/ rather than src/server/api/ because the admin TUI
// and the chaos runner may depend on the client but never on server
// internals, while the server already depends on the client for /proxy.
//
// Field names follow the seed (Go broker-ha, mochi-co/mqtt types) where the
// seed shows them: PascalCase for MQTT objects, snake_case for request fields.
import { Type, type Static, type TSchema } from '@sinclair/typebox'

/** Every error answer of the API. */
export const ErrorBody = Type.Object({
  status: Type.Integer({ description: 'HTTP status code, repeated' }),
  error: Type.String({ description: 'what went wrong, naming the field or resource' })
}, { description: 'error answer' })
export type ErrorBody = Static<typeof ErrorBody>

// ---- requests ----------------------------------------------------------

export const ClientIdRequest = Type.Object({
  client_id: Type.String({ minLength: 1, maxLength: 65_535, description: 'MQTT client id' })
}, { additionalProperties: false })
export type ClientIdRequest = Static<typeof ClientIdRequest>

export const TopicRequest = Type.Object({
  topic: Type.String({ minLength: 1, maxLength: 65_535, description: 'MQTT topic or filter (wildcards allowed where the endpoint says so)' })
}, { additionalProperties: false })
export type TopicRequest = Static<typeof TopicRequest>

export const SseRequest = Type.Object({
  filters: Type.Optional(Type.Array(Type.String(), { maxItems: 64, description: 'event bus channels to receive; empty or absent: all channels' })),
  channel_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'events buffered for this client before new ones are dropped (default 100)' }))
}, { additionalProperties: false })
export type SseRequest = Static<typeof SseRequest>

// ---- membership -------------------------------------------------------

export const MemberInfo = Type.Object({
  Name: Type.String(),
  Addr: Type.String(),
  Port: Type.Integer({ description: 'cluster (gossip) port' }),
  Meta: Type.String({ description: 'member metadata as a JSON string: {"api":port,"mqtt":port,"version":"x.y.z"}' }),
  State: Type.Integer({ description: '0 alive, 1 suspect, 2 dead, 3 left (memberlist numbering)' }),
  PMin: Type.Integer({ description: 'lowest membership protocol version spoken' }),
  PMax: Type.Integer({ description: 'highest membership protocol version spoken' }),
  PCur: Type.Integer({ description: 'membership protocol version in use' }),
  DMin: Type.Integer({ description: 'lowest delegate (data plane) protocol version' }),
  DMax: Type.Integer({ description: 'highest delegate (data plane) protocol version' }),
  DCur: Type.Integer({ description: 'delegate protocol version in use' })
})
export type MemberInfo = Static<typeof MemberInfo>
export const MemberList = Type.Array(MemberInfo)

// ---- MQTT ---------------------------------------------------------------

export const SubscriptionInfo = Type.Object({
  ShareName: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'shared subscription group ($share/<group>/...), null otherwise' }),
  Filter: Type.String(),
  Identifier: Type.Integer({ description: 'MQTT 5 subscription identifier, 0 when none' }),
  Identifiers: Type.Union([Type.Record(Type.String(), Type.Integer()), Type.Null()], { description: 'filter -> subscription identifier (subscribers endpoint), null otherwise' }),
  RetainHandling: Type.Integer(),
  Qos: Type.Integer(),
  RetainAsPublished: Type.Boolean(),
  NoLocal: Type.Boolean()
})
export type SubscriptionInfo = Static<typeof SubscriptionInfo>

export const ClientInfo = Type.Object({
  ID: Type.String(),
  ProtocolVersion: Type.Integer({ description: '3 (3.1), 4 (3.1.1) or 5' }),
  Username: Type.String({ description: 'username given at CONNECT, empty when none' }),
  CleanSession: Type.Boolean({ description: 'true when the session ends with the connection' }),
  Done: Type.Boolean({ description: 'true once the connection is closing' }),
  Subscriptions: Type.Record(Type.String(), SubscriptionInfo, { description: 'filter -> subscription' }),
  // Not in the seed; absent from nodes that do not know them.
  Remote: Type.Optional(Type.String({ description: 'address:port the client connects from, as this node sees it' })),
  ConnectedAt: Type.Optional(Type.Integer({ description: 'unix seconds when the connection was accepted' })),
  KeepAlive: Type.Optional(Type.Integer({ description: 'keep alive in force, seconds (0: none)' }))
})
export type ClientInfo = Static<typeof ClientInfo>
export const ClientList = Type.Array(ClientInfo)

/** MQTT 5 properties of a message, mqtt-packet names; binary values as base64. */
const Properties = Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], {
  description: 'MQTT 5 properties (mqtt-packet names: userProperties, contentType, responseTopic, correlationData (base64), payloadFormatIndicator, messageExpiryInterval, ...), null when none'
})

export const MessageInfo = Type.Object({
  TopicName: Type.String(),
  Payload: Type.String({ description: 'payload, base64' }),
  FixedHeader: Type.Object({
    remaining: Type.Integer({ description: 'always 0 (not tracked)' }),
    type: Type.Integer({ description: 'MQTT packet type, 3 = PUBLISH' }),
    qos: Type.Integer(),
    dup: Type.Boolean(),
    retain: Type.Boolean()
  }),
  PacketID: Type.Integer({ description: 'packet identifier towards the client, 0 when not assigned yet' }),
  Created: Type.Integer({ description: 'unix seconds when the message was stored, 0 when unknown' }),
  Expiry: Type.Integer({ description: 'unix seconds when the message expires (MQTT 5 message expiry), 0 when never' }),
  Origin: Type.String({ description: 'client id of the publisher, empty when unknown' }),
  Properties
})
export type MessageInfo = Static<typeof MessageInfo>
export const MessageList = Type.Array(MessageInfo)

export const TopicSubscribers = Type.Object({
  Shared: Type.Record(Type.String(), Type.Record(Type.String(), SubscriptionInfo), { description: '$share/<group>/<filter> -> client id -> subscription' }),
  SharedSelected: Type.Record(Type.String(), SubscriptionInfo, { description: 'client id -> subscription: one member per shared group (the first by client id; deliveries rotate among members)' }),
  Subscriptions: Type.Record(Type.String(), SubscriptionInfo, { description: 'client id -> matching non-shared subscription' })
})
export type TopicSubscribers = Static<typeof TopicSubscribers>

export const ClientStopResult = Type.Object({
  client_id: Type.String(),
  node: Type.String({ description: 'member the client was connected to' }),
  stopped: Type.Boolean()
})
export type ClientStopResult = Static<typeof ClientStopResult>

// ---- probes --------------------------------------------------------------

export const CheckResult = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  timestamp: Type.String({ description: 'RFC 3339 time the check ran' }),
  error: Type.Optional(Type.String({ description: 'why the check is down' }))
})
export type CheckResult = Static<typeof CheckResult>

export const ProbeResult = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  details: Type.Record(Type.String(), CheckResult)
})
export type ProbeResult = Static<typeof ProbeResult>

// ---- debug -----------------------------------------------------------------

export const RuntimeSummary = Type.Object({
  node: Type.String({ description: 'member name' }),
  version: Type.String({ description: 'broker-ha version' }),
  node_version: Type.String({ description: 'Node.js version' }),
  pid: Type.Integer(),
  uptime_seconds: Type.Number(),
  event_loop_delay_ms: Type.Object({
    min: Type.Number(),
    mean: Type.Number(),
    p50: Type.Number(),
    p99: Type.Number(),
    max: Type.Number()
  }, { description: 'since the previous summary (the histogram is reset on each read)' }),
  event_loop_utilization: Type.Number({ description: 'fraction of time the event loop was busy since the previous summary (or the API start), 0..1' }),
  memory: Type.Object({
    rss: Type.Integer(),
    heap_total: Type.Integer(),
    heap_used: Type.Integer(),
    external: Type.Integer(),
    array_buffers: Type.Integer()
  }, { description: 'bytes' }),
  active_resources: Type.Record(Type.String(), Type.Integer(), { description: 'kind -> count (process.getActiveResourcesInfo)' }),
  cpu_profile_running: Type.Boolean(),
  endpoints: Type.Array(Type.String())
})
export type RuntimeSummary = Static<typeof RuntimeSummary>

// ---- /proxy ------------------------------------------------------------

export const MemberError = Type.Object({
  error: Type.String({ description: 'why this member gave no answer (timeout, refused, HTTP status and message)' })
})
export type MemberError = Static<typeof MemberError>

/** `{memberName: answer}`; a member that failed holds `{"error": "..."}`. */
export const proxyAnswer = <T extends TSchema>(answer: T) =>
  Type.Record(Type.String(), Type.Union([answer, MemberError]))

/** The answer of a /proxy endpoint, per member. */
export type ProxyAnswer<T> = Record<string, T | MemberError>

export function isMemberError (value: unknown): value is MemberError {
  return typeof value === 'object' && value !== null && !Array.isArray(value) &&
    Object.keys(value).length === 1 && typeof (value as { error?: unknown }).error === 'string'
}

/** Event channels of /api/sse besides the bus channels. */
export const SSE_KEEPALIVE_PREFIX = 'sse:keepalive:'

export interface SseEvent {
  event: string
  data: unknown
}
