// The one description of broker-ha's configuration. It gives validation (ajv),
// defaults, the TypeScript type, the BROKER_* environment variable names and
// the reference table in docs/configuration.md. Add a key here and all of those follow.
//
// Durations are milliseconds, as in the seed (memberlist's unit), unless the
// key name says otherwise.
import { Type, type Static } from '@sinclair/typebox'

const port = (def: number, description: string) =>
  Type.Integer({ minimum: 1, maximum: 65535, default: def, description })

const ms = (def: number, description: string, minimum = 1, maximum = 86_400_000) =>
  Type.Integer({ minimum, maximum, default: def, description: `${description} (ms)` })

const bindAddress = (description: string) =>
  Type.String({ minLength: 1, default: '0.0.0.0', description })

/** Bus subscriber buffer sizes, keyed by channel name (seed: `*.subscription_size`). */
const subscriptionSize = (defaults: Record<string, number>, description: string) =>
  Type.Record(Type.String({ minLength: 1 }), Type.Integer({ minimum: 1, maximum: 1_000_000 }), {
    default: defaults,
    description
  })

// A trailing `*` in a matched field means "any suffix" (seed auth semantics).
const AuthRule = Type.Object({
  username: Type.Optional(Type.String({ description: 'MQTT username; trailing * matches any suffix' })),
  password: Type.Optional(Type.String({ description: 'plain text, or a scrypt hash from `broker-ha hash-password`', secret: true })),
  client: Type.Optional(Type.String({ description: 'MQTT client id; trailing * matches any suffix' })),
  remote: Type.Optional(Type.String({ description: 'client IP, IP:port, CIDR, or prefix with trailing *' })),
  allow: Type.Boolean({ description: 'decision when every given field matches' })
}, { additionalProperties: false })

const AclRule = Type.Object({
  username: Type.Optional(Type.String()),
  client: Type.Optional(Type.String()),
  remote: Type.Optional(Type.String()),
  filters: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.Integer({ minimum: 0, maximum: 3 }), {
    description: 'MQTT filter -> 0 deny, 1 read, 2 write, 3 read-write'
  }))
}, { additionalProperties: false })

// One entry of mqtt.listeners. Ports default by type (listeners/index.ts):
// 1883 mqtt, 8883 mqtts, 8083 ws, 8084 wss (EMQX's convention; 8080 is the API).
const Listener = Type.Object({
  type: Type.Union([Type.Literal('mqtt'), Type.Literal('mqtts'), Type.Literal('ws'), Type.Literal('wss')], {
    description: 'mqtt (TCP), mqtts (TLS), ws (WebSocket), wss (WebSocket over TLS)'
  }),
  bind: Type.Optional(Type.String({ minLength: 1, description: 'listen address; default: mqtt.bind' })),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'port; default: 1883 mqtt, 8883 mqtts, 8083 ws, 8084 wss' })),
  path: Type.String({ minLength: 1, default: '/mqtt', description: 'ws, wss: the HTTP path of the WebSocket endpoint' }),
  cert: Type.Optional(Type.String({ minLength: 1, description: 'mqtts, wss: PEM certificate chain file (reloaded on SIGHUP and when it changes)' })),
  key: Type.Optional(Type.String({ minLength: 1, description: 'mqtts, wss: PEM private key file' })),
  ca: Type.Optional(Type.String({ minLength: 1, description: 'mqtts, wss: PEM file of the CAs that client certificates must chain to' })),
  client_auth: Type.Union([Type.Literal('none'), Type.Literal('optional'), Type.Literal('require')], {
    default: 'none',
    description: "mqtts, wss: client certificates: none (not asked for), optional (asked for; a client without one may still connect, a bad one is refused), require (a connection without a valid one is refused)"
  }),
  identity: Type.Union([Type.Literal('cn'), Type.Literal('san_dns'), Type.Literal('san_email'), Type.Literal('san_uri')], {
    default: 'cn',
    description: "the client certificate field that becomes the client's user name for mqtt.auth and mqtt.acl: the subject's CN, or the first DNS, email or URI subject alternative name"
  }),
  username_must_match: Type.Boolean({
    default: false,
    description: 'with a client certificate: refuse a CONNECT whose user name is set and differs from the certificate identity (false: the identity replaces it)'
  }),
  proxy_protocol: Type.Boolean({ default: false, description: 'expect a PROXY protocol v1 or v2 header on every connection (from a load balancer); one without a valid header is closed and counted' }),
  max_connections: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0, description: 'most concurrent connections on this listener (within mqtt.max_connections); 0: no own limit' }),
  origins: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'ws, wss: allowed Origin headers (browsers send one); empty: any, and requests without one' })
}, { additionalProperties: false })

export const ConfigSchema = Type.Object({
  api: Type.Object({
    bind: bindAddress('HTTP API listen address'),
    port: port(8080, 'HTTP API port (metrics, probes, REST, SSE, /proxy)'),
    user: Type.Record(Type.String({ minLength: 1 }), Type.String(), {
      default: {},
      secret: true,
      description: 'HTTP basic auth users for /api and /debug, name -> password (plain or scrypt hash); empty: open'
    }),
    proxy_timeout: ms(5000, 'per-member timeout of /proxy fan-out requests', 100, 600_000)
  }, { additionalProperties: false, default: {} }),

  discovery: Type.Object({
    domain: Type.String({ default: '', description: 'DNS name whose SRV records list the cluster members (Kubernetes headless Service); empty: no DNS discovery' }),
    seeds: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'static list of members to join, host:port (port defaults to cluster.port)' }),
    dns_server: Type.String({ default: '', description: 'DNS server (host or host:port) for the SRV lookup; empty: the system resolver' }),
    resolve_interval: ms(30_000, 'how often SRV records and seeds are resolved again, so clusters that formed apart merge', 1000),
    formation_wait_min: ms(1000, 'least time a node waits for peers before forming a cluster on its own', 0, 600_000),
    formation_wait_max: ms(5000, 'most time a node waits for peers before forming a cluster on its own (randomised between min and max)', 0, 600_000),
    subscription_size: subscriptionSize({ 'cluster:message_to': 1024 }, 'event bus buffer per channel for the cluster side')
  }, { additionalProperties: false, default: {} }),

  mqtt: Type.Object({
    bind: bindAddress('MQTT listen address (of mqtt.port, and the default of every listener)'),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 1883, description: 'MQTT TCP port: the first plain listener; 0: none (only mqtt.listeners)' }),
    listeners: Type.Array(Listener, {
      default: [],
      indexedEnv: true,
      description: 'further listeners (TLS, WebSocket, PROXY protocol), each with the fields below; as one environment variable, a JSON list'
    }),
    reload_disconnect: Type.Boolean({ default: true, description: 'on a reload of mqtt.auth, disconnect connected clients the new rules no longer admit (MQTT 5: DISCONNECT 0x87); false: they stay until they reconnect' }),
    subscription_size: subscriptionSize({ 'cluster:message_from': 1024, 'cluster:new_member': 10 }, 'event bus buffer per channel for the broker side'),
    auth: Type.Array(AuthRule, { default: [], description: 'authentication rules, first match decides; empty: anonymous access' }),
    acl: Type.Array(AclRule, { default: [], description: 'topic access rules, first applicable rule decides; empty: everything allowed' }),
    max_connections: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 10_000, description: 'most concurrent MQTT connections on this node; 0: unlimited' }),
    max_packet_size: Type.Integer({ minimum: 64, maximum: 268_435_455, default: 4_194_304, description: 'largest MQTT packet accepted, bytes (advertised to MQTT 5 clients)' }),
    max_queued_messages: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 1000, description: 'most QoS 1/2 messages queued for one offline session; older ones are dropped first; 0: unlimited' }),
    max_client_buffer_bytes: Type.Integer({ minimum: 0, maximum: 4_294_967_296, default: 8_388_608, description: 'most bytes buffered for delivery to one online client (its socket plus what the broker holds for it); past it QoS 0 is dropped and counted, a persistent session\'s QoS 1/2 waits in its queue, and a clean session whose QoS 1/2 cannot drain below it for 5 s is disconnected (MQTT 5: 0x97 Quota exceeded); 0: no bound' }),
    max_inflight: Type.Integer({ minimum: 1, maximum: 65_535, default: 100, description: 'most unacknowledged QoS 1/2 publishes a client may send at once (MQTT 5 Receive Maximum)' }),
    max_inflight_excess: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000, description: 'QoS 2 publishes (and the packets behind them) held, in order, when a client sends more than max_inflight unreleased at once, as Paho 1.6 does after a reconnect; they go on as its PUBRELs free the window (at most 16 MiB of them); past it: DISCONNECT 0x93; 0: DISCONNECT 0x93 at once, as mosquitto' }),
    max_retained_messages: Type.Integer({ minimum: 0, maximum: 100_000_000, default: 200_000, description: 'most retained messages held; 0: unlimited' }),
    max_retained_bytes: Type.Integer({ minimum: 0, maximum: 68_719_476_736, default: 268_435_456, description: 'most bytes of retained payloads held; 0: unlimited' }),
    max_subscriptions_per_client: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 10_000, description: 'most subscriptions one client may hold (each is a route every node keeps); past it a new filter is refused in the SUBACK; 0: unlimited' }),
    max_client_id_length: Type.Integer({ minimum: 23, maximum: 65_535, default: 256, description: 'longest client id accepted' }),
    max_keepalive: Type.Integer({ minimum: 0, maximum: 65_535, default: 0, description: 'largest keep alive accepted (s): a larger (or no) keep alive refuses an MQTT 3.1/3.1.1 CONNECT and gets this as Server Keep Alive on MQTT 5; 0: no limit' }),
    server_keep_alive: Type.Integer({ minimum: 0, maximum: 65_535, default: 0, description: "keep alive (s) every MQTT 5 client is told to use (CONNACK Server Keep Alive) and held to, whatever it asked for: 1.5 times it without a packet closes the connection; MQTT 3.1/3.1.1 clients keep their own; 0: the client's own, within max_keepalive" }),
    topic_alias_maximum: Type.Integer({ minimum: 0, maximum: 65_535, default: 64, description: 'topic aliases an MQTT 5 client may use towards the broker; 0: none' }),
    server_topic_aliases: Type.Integer({ minimum: 0, maximum: 65_535, default: 16, description: "topic aliases the broker uses towards an MQTT 5 client that allows them (at most its CONNECT's Topic Alias Maximum), least recently used topic first out; 0: none" }),
    max_session_expiry: Type.Integer({ minimum: 0, maximum: 4_294_967_295, default: 0, description: 'cap on the session expiry interval an MQTT 5 client may ask for (s); 0: no cap' }),
    connect_timeout: ms(30_000, 'time a new connection has to send CONNECT'),
    tcp_no_delay: Type.Boolean({ default: false, description: "switch Nagle's algorithm off on client connections: lower latency for request/response traffic with few messages in flight, lower throughput for message streams" }),
    shutdown_grace_period: ms(10_000, 'time given to connections to close on SIGTERM/SIGINT before they are cut', 0, 600_000)
  }, { additionalProperties: false, default: {} }),

  cluster: Type.Object({
    name: Type.String({ default: '', description: 'member name, unique in the cluster; empty: the host name (the pod name)' }),
    bind: bindAddress('cluster (gossip and peer link) listen address, UDP and TCP'),
    port: port(7946, 'cluster port, UDP and TCP'),
    advertise: Type.String({ default: '', description: 'address announced to other members; empty: the bind address, or the first non-loopback IPv4 when bound to all interfaces' }),
    expected_members: Type.Integer({ minimum: 1, maximum: 1000, default: 3, description: 'members the cluster should have; /healthz fails when a node is alone although more are expected and discovery lists peers it cannot join' }),
    retained_tombstone_ttl: ms(86_400_000, 'how long a cleared retained topic is remembered, so a node that missed the clear cannot bring it back; must exceed the longest partition to tolerate', 1000, 2_592_000_000),
    retained_sync_interval: ms(30_000, 'interval of the retained-message digest comparison with one random peer (also done whenever a peer link comes up); 0: only on link start', 0),
    ack_after: Type.Union([Type.Literal('replicated'), Type.Literal('local')], {
      default: 'replicated',
      description: "when a QoS 1/2 publish is acknowledged (PUBACK, PUBREC): 'replicated' once a second node holds it (the peers that deliver it, and the replica holders of the sessions it was queued for), so the death of one node loses nothing acknowledged; 'local' once this node queued and forwarded it (lower latency; a node killed right after can lose it)"
    }),
    ack_timeout: ms(10_000, 'longest an acknowledgement waits for a peer to confirm it holds a message (ack_after: replicated); it then goes anyway, logged and counted (broker_cluster_acks_unreplicated_total). Also the longest a publish for a dead node\'s sessions waits for their takeover once dead_peer_buffer_bytes is reached; it is then refused, not acknowledged', 100, 600_000),
    dead_peer_buffer_bytes: Type.Integer({ minimum: 65_536, maximum: 17_179_869_184, default: 67_108_864, description: 'most bytes of QoS 1/2 publishes kept for a node declared dead, for the nodes taking its sessions over; past it, publishers to its sessions wait (no acknowledgement, their in-flight window fills) until the takeover is done, at most ack_timeout, and a publish still without a copy then is refused (MQTT 5: PUBACK 0x97; MQTT 3.1.1: the connection is closed unacknowledged, the client sends it again) and counted (broker_cluster_publishes_refused_total)' }),
    label: Type.String({ default: '', maxLength: 255, description: "this cluster's name (memberlist's label), bound into every authenticated packet and link: two clusters that share a key but not a label never merge" }),
    max_pending_connections: Type.Integer({ minimum: 1, maximum: 100_000, default: 32, description: 'most inbound cluster TCP connections not yet authenticated: connections not yet identified or whose push/pull request is not answered, and peer-link handshakes (each up to this many); more are closed at once and counted' }),
    handshake_timeout: ms(5000, 'time an inbound peer link has to complete its handshake', 100, 600_000),
    max_clock_drift: ms(60_000, 'a retained entry from a peer stamped further ahead of our clock than this is refused and counted (broker_retained_future_refused_total), so an entry from the future cannot win forever', 1000, 86_400_000),
    partition_will_delay: ms(60_000, "extra wait before a node publishes the wills of clients whose node became unreachable without being known to be down (a partition: they may still be connected there); a node known to be down (its port refuses connections or closed them, it restarted or left) gets its clients' wills published after their will delay", 0, 86_400_000),
    config: Type.Object({
      secret_key: Type.String({ default: '', secret: true, description: 'key (16, 24 or 32 bytes) that encrypts and authenticates all cluster traffic; empty: plain text' }),
      secondary_keys: Type.Array(Type.String(), { default: [], secret: true, description: 'further keys accepted for decryption, for key rotation' }),
      tcp_timeout: ms(10_000, 'timeout of TCP exchanges (join, push/pull)'),
      push_pull_interval: ms(30_000, 'interval of the full state exchange with one random member', 0),
      probe_interval: ms(500, 'interval between failure-detection probes'),
      probe_timeout: ms(400, 'time to wait for an ack before indirect probes'),
      gossip_interval: ms(200, 'interval of gossip rounds'),
      gossip_nodes: Type.Integer({ minimum: 1, maximum: 64, default: 3, description: 'members gossiped to per round' }),
      gossip_to_the_dead_time: ms(30_000, 'how long dead members still receive gossip', 0),
      indirect_checks: Type.Integer({ minimum: 0, maximum: 64, default: 3, description: 'members asked to probe a node that missed an ack' }),
      retransmit_mult: Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'each update is gossiped retransmit_mult * ceil(log10(N+1)) times (gossip rounds and piggybacked packets)' }),
      suspicion_mult: Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'suspicion timeout = suspicion_mult * max(1, log10(N)) * probe_interval' }),
      suspicion_max_timeout_mult: Type.Integer({ minimum: 1, maximum: 64, default: 6, description: 'upper bound of the suspicion timeout, as a multiple of its minimum' }),
      awareness_max_multiplier: Type.Integer({ minimum: 1, maximum: 64, default: 8, description: 'most the local health score stretches probe timeouts' })
    }, { additionalProperties: false, default: {} })
  }, { additionalProperties: false, default: {} }),

  storage: Type.Object({
    dir: Type.String({ default: '', description: "directory of this node's store (retained messages, persistent sessions and their queues survive a restart); empty: everything in memory, lost on restart. The container image sets /data" }),
    batch_interval: ms(0, "with sync batch or always, how long writes are gathered into one commit; 0: one commit per event-loop turn", 0, 1000),
    sync: Type.Union([Type.Literal('always'), Type.Literal('batch'), Type.Literal('off')], {
      default: 'batch',
      description: "'always': a QoS 1/2 acknowledgement (and a retained write's) also waits for the store's write to reach the disk; 'batch': writes are committed and synced once per event-loop turn, acknowledgements do not wait (a power cut loses the last turn's writes, a process crash loses nothing written before its last turn); 'off': committed without syncing (the OS writes them out; a power cut can lose more, and LMDB may need a reset)"
    }),
    max_size: Type.Integer({ minimum: 0, maximum: 1_099_511_627_776, default: 536_870_912, description: 'most bytes of data in the store; beyond it publishes that need storage are refused (MQTT 5: reason 0x97 quota exceeded) until space frees; 0: unlimited (until the disk is full). The file on disk can exceed it (freed pages are kept for reuse): leave the volume room, e.g. twice this' }),
    peers_wait: ms(15_000, "after a restart in a cluster (cluster.expected_members > 1, discovery configured): how long resuming clients' session fetches and QoS 1/2 publishes wait for the expected members, whose disks hold sessions. A member still absent then is taken for gone: the replicas of its sessions read from this node's disk are taken over here (its disk copies yield to them if it comes back later). Raise it where pods take longer to come back (slow volume attach), at the cost of a longer wait after a restart with a member truly gone", 1000, 600_000),
    on_corruption: Type.Union([Type.Literal('fail'), Type.Literal('reset')], {
      default: 'fail',
      description: "an unreadable or corrupted store: 'fail' stops the node with an error (exit 2) until an operator runs serve --reset-storage; 'reset' moves it aside, starts empty and refills from the peers (logged as an error, counted in broker_storage_errors_total{kind=\"reset\"})"
    })
  }, { additionalProperties: false, default: {} }),

  log: Type.Object({
    level: Type.Union([
      Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'),
      Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')
    ], { default: 'info', description: 'log level' }),
    format: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], {
      default: 'auto',
      description: 'json, pretty, or auto (pretty on a terminal, JSON otherwise)'
    }),
    clients: Type.Boolean({ default: true, description: 'an info line per MQTT client connect (address, user, protocol, keep alive, session) and disconnect (with its reason); false turns them off' })
  }, { additionalProperties: false, default: {} })
}, { additionalProperties: false })

export type Config = Static<typeof ConfigSchema>
export type AuthRuleConfig = Static<typeof AuthRule>
export type AclRuleConfig = Static<typeof AclRule>
export type ListenerConfig = Static<typeof Listener>
