// The MQTT side of a node: aedes, its session store, its TCP listener,
// limits, and our layers around aedes 2.0.0-beta.1. Everything else in the
// node talks to MQTT through this class.
//
// Where each concern lives:
//   hooks.ts                 the one chain of layers around aedes, in declared order
//   aedes-internals.ts       every private part of aedes we touch
//   options.ts               config -> aedes options
//   persistence.ts           the session store aedes runs on (limits, queues, observer)
//   empty-replay.ts          no stream pipeline for aedes' empty replay at CONNECT
//   outgoing-queues.ts       persistent sessions' queues and their ledgers
//   session-sender.ts        delivery of a stored session's queue, in order, within its window
//   delivery.ts              live delivery: de-duplication, QoS downgrade, Receive Maximum, packet size
//   outbound-buffer.ts       a connection's writes of one turn in one writev; mqtt.max_client_buffer_bytes
//   message-emitter.ts       aedes' message emitter with an O(1) backlog that does not recurse
//   topic-aliases.ts         server-to-client topic aliases (MQTT 5)
//   inbound.ts               per-connection packet pipeline (ordering, protocol errors, inflight)
//   publish-acks.ts          QoS 1 PUBACK after the publish
//   wire-writes.ts           PUBACK/PUBREC/PUBREL/PUBCOMP and plain PUBLISH encoded in one buffer
//   quiet-debug.ts           mqtt-packet's debug calls silenced unless DEBUG asks for them
//   shared-subscriptions.ts  $share/group/filter on one node
//   refusal.ts               refusing CONNACKs (connection limit, client id, keep alive)
//   keep-alive.ts            the keep alive a connection gets (Server Keep Alive, max_keepalive)
//   disconnect.ts            how a connection ends: a server DISCONNECT arrives, the client's last packets are read
//   connack.ts               CONNACK fix-up (shared subscriptions are available)
//   bus-events.ts            cluster:message_to events
//   forwarded-properties.ts  what MQTT 5 properties a message carries to subscribers (no will delay)
//   shutdown.ts              graceful stop
//   metrics.ts               Prometheus metrics
//   access.ts, authorize.ts  authentication and ACL
//   introspection.ts         read-only queries for the HTTP API
//   client-log.ts            a log line per client connect and disconnect, with the reason
//   listeners/               mqtt, mqtts, ws, wss listeners, PROXY protocol, certificates and their identity
import type { Socket } from 'node:net'
import { Aedes, type Client } from 'aedes'
import type { Registry } from 'prom-client'
import { listenersOf, type Config } from '../../config/index.js'
import { rateLimited, type Logger } from '../../log.js'
import type { Bus } from '../bus.js'
import { messageEmitter } from './message-emitter.js'
import { aedesOptions } from './options.js'
import { SessionStore } from './persistence.js'
import { MqttMetrics } from './metrics.js'
import { guardInbound, guardOf, inboundClosed, sweepKeepAlive, type InboundOptions } from './inbound.js'
import { SWEEP_PERIOD_MS } from './keep-alive.js'
import { installDelivery, outboundOf, packetSizeLayer, usesSubscriptionIdentifiers, type DeliveryOptions } from './delivery.js'
import { SessionSender, type SenderOptions } from './session-sender.js'
import { SharedSubscriptions, isMarker, displayTopic, toMarker } from './shared-subscriptions.js'
import { refuseBeforeConnect, QUOTA_EXCEEDED } from './refusal.js'
import { messageToEventsLayer } from './bus-events.js'
import { forwardedPropertiesLayer } from './forwarded-properties.js'
import { topicAliasesLayer, outboundAliasLayer } from './topic-aliases.js'
import { shutdown } from './shutdown.js'
import { orderlyEnds } from './disconnect.js'
import { installAccessControl, keepsConnection } from './authorize.js'
import { installSubscriptionQuota, quotaRefusalCode, refuseWholeSubscribe, type QuotaOptions } from './subscription-quota.js'
import type { AccessRules } from './access-rules.js'
import { AedesHooks } from './hooks.js'
import { MqttIntrospection, type MessageCounts } from './introspection.js'
import { internals, brokerInternals, encodePacket, dropEndOfStreamWatch, fastListenerTable, closeClient } from './aedes-internals.js'
import { ClientLog } from './client-log.js'
import { skipEmptyReplay } from './empty-replay.js'
import { Listeners, describeConnection, remoteOf, formatRemote, type ConnectionInfo } from './listeners/index.js'
import { certificateIdentityLayer } from './listeners/identity.js'

export { displayTopic } from './shared-subscriptions.js'
export { SessionStore } from './persistence.js'
export { AedesHooks } from './hooks.js'

/** How often connected sessions are checked for the no-stall invariant (session-sender.ts). */
const STALL_SWEEP_MS = 1000

export interface MqttServerOptions {
  config: Config
  log: Logger
  bus: Bus
  registry: Registry
  /** false: no TCP listener; connections arrive through accept() (the data-plane simulation). */
  listen?: boolean
  /** The process part of aedes' id (`<name>@<incarnation>`, message-stamp.ts); random by default. */
  incarnation?: string
}

export class MqttServer {
  readonly aedes: Aedes
  /** The session store aedes runs on; the cluster observes it and moves sessions in and out of it. */
  readonly persistence: SessionStore
  readonly shared: SharedSubscriptions
  readonly metrics: MqttMetrics
  /** The chain of layers around aedes: the cluster adds its own before start(). */
  readonly hooks = new AedesHooks()
  readonly counts: MessageCounts = { received: 0, sent: 0, dropped: 0 }
  readonly introspection: MqttIntrospection
  /** A line per client connect and disconnect (log.clients); others tell it why they close a connection. */
  readonly clientLog: ClientLog
  /**
   * Set by the cluster data plane: resolves when a session that just moved
   * here may start receiving (what it was owed from its old node is queued);
   * undefined when nothing is awaited.
   */
  deliveryGate: ((clientId: string) => Promise<void> | undefined) | undefined
  /** mqtt.auth and mqtt.acl in force: a config reload replaces them (src/server/reload.ts). */
  readonly access: AccessRules
  /** The listeners (mqtt.port, mqtt.listeners); undefined with listen: false. */
  readonly listeners: Listeners | undefined
  private readonly options: MqttServerOptions
  /** Sockets handed to aedes. */
  private readonly sockets = new Set<Socket>()
  /** Sockets over max_connections, being refused. */
  private readonly refused = new Set<Socket>()
  /** The session sender of each connection whose session is stored, by client id. */
  private readonly senders = new Map<string, SessionSender>()
  /** Each connection's session sender, made when first needed (clean sessions never need one). */
  private readonly ownSenders = new WeakMap<Client, SessionSender>()
  /** The close listener of every socket handed to aedes: one function for all, not a closure per socket. */
  private readonly onSocketClose: (this: Socket) => void
  private sweepTimer: NodeJS.Timeout | undefined
  /** The keep alive sweep over every connection (keep-alive.ts), in place of a timer per client. */
  private keepAliveTimer: NodeJS.Timeout | undefined
  // One rate limit per kind of noise, so a flood of one hides none of the others.
  private readonly warnLimit: ReturnType<typeof rateLimited>
  private readonly warnBad: ReturnType<typeof rateLimited>
  private readonly warnRefused: ReturnType<typeof rateLimited>
  private readonly warnStall: ReturnType<typeof rateLimited>
  private stopping: Promise<void> | undefined
  private readonly quota: QuotaOptions

  constructor (options: MqttServerOptions) {
    this.options = options
    const { config, log, registry } = options
    const sockets = this.sockets
    const hooks = this.hooks
    this.onSocketClose = function (this: Socket & { client?: Client }) {
      sockets.delete(this)
      if (this.client === undefined) return
      hooks.disconnected(this.client)
      // In place of aedes' end-of-stream watch (dropEndOfStreamWatch), and
      // where it ran: after this listener, added before aedes'.
      closeClient(this.client)
    }
    const mqtt = config.mqtt
    this.warnLimit = rateLimited(log)
    this.warnBad = rateLimited(log)
    this.warnRefused = rateLimited(log)
    this.warnStall = rateLimited(log, 1000)
    this.persistence = new SessionStore({
      limits: {
        maxRetainedMessages: mqtt.max_retained_messages,
        maxRetainedBytes: mqtt.max_retained_bytes,
        maxQueuedMessages: mqtt.max_queued_messages
      },
      onReject: (limit) => {
        this.metrics.limit(limit)
        this.warnLimit('warn', { limit }, 'MQTT limit reached')
      }
    })
    this.persistence.replay = 'sender'
    if (!skipEmptyReplay()) log.debug('stream.pipeline left as it is: aedes pipes an empty replay at every CONNECT')
    this.persistence.onQueueChange = (clientId) => this.senders.get(clientId)?.kick()
    this.metrics = new MqttMetrics(registry, {
      connections: () => this.sockets.size,
      retainedMessages: () => this.persistence.retainedCount,
      retainedBytes: () => this.persistence.retainedBytes,
      queuedMessages: () => this.persistence.queuedCount
    })
    this.aedes = new Aedes({ ...aedesOptions(config, options.incarnation), persistence: this.persistence, mq: messageEmitter() })
    // A client's QoS 2 PUBLISH gets its stamp as it is stored, before aedes
    // publishes it, so the stamp travels with the session's incoming state.
    const broker = brokerInternals(this.aedes)
    this.persistence.stamp = (p) => {
      if (p.brokerCounter !== undefined && p.brokerCounter !== 0) return
      p.brokerId = broker.id
      p.brokerCounter = ++broker.counter
    }
    this.clientLog = new ClientLog(log, (c) => this.introspection.usernameOf(c))
    if (config.log.clients) {
      this.clientLog.attach(this.aedes)
      this.clientLog.installHooks(this.hooks, this.aedes)
    }
    this.introspection = new MqttIntrospection(this.aedes, this.persistence, this.counts, (c, reason) => this.clientLog.because(c, reason))
    this.access = installAccessControl(this.hooks, { config, log, registry })
    this.quota = {
      max: mqtt.max_subscriptions_per_client,
      onRefused: (c, filter, max) => {
        this.metrics.limit('subscriptions')
        this.warnLimit('warn', { client: c.id, filter, max }, 'MQTT subscription refused: max_subscriptions_per_client reached')
      }
    }
    installSubscriptionQuota(this.hooks, this.aedes, this.quota)
    this.introspection.installHooks(this.hooks)
    this.addLayers()
    this.shared = new SharedSubscriptions(this.aedes)
    this.watchErrors()
    // Nagle's algorithm stays on by default, as in aedes and mosquitto: it
    // coalesces the many small packets of a message stream (0.62x bare aedes
    // one-to-one QoS 0 with it off). Off, it removes the 40 ms stalls that
    // Nagle plus delayed ACKs cause for request/response traffic with few
    // messages in flight (`broker-ha bench --qos 1 --inflight 1000` against
    // bare aedes: 23k msg/s with it on, 66-80k off).
    this.listeners = options.listen === false
      ? undefined
      : new Listeners({
        listeners: listenersOf(config),
        log,
        registry,
        accept: (conn, info) => this.accept(conn, info),
        handshakeTimeoutMs: Math.min(mqtt.connect_timeout, 10_000),
        maxPacketSize: mqtt.max_packet_size,
        noDelay: mqtt.tcp_no_delay
      })
  }

  /** Our own layers (hooks.ts); the cluster's are added by the data plane. */
  private addLayers (): void {
    const hooks = this.hooks
    hooks.use('authenticate', 'client-certificate', certificateIdentityLayer((c, username, identity) => {
      this.warnRefused('warn', { client: c.id, username, identity, remote: formatRemote(remoteOf(c.conn)) }, 'MQTT connection refused: user name does not match the client certificate')
    }))
    // The shared-subscription marker prefix is ours: no client may publish there.
    hooks.use('authorizePublish', 'reserved-topics', (next) => (client, packet, callback) => {
      if (packet.topic.charCodeAt(0) === 36 && isMarker(packet.topic)) return callback(new Error('reserved topic'))
      next(client, packet, callback)
    })
    hooks.use('authorizeSubscribe', 'subscription-identifiers', (next) => (client, sub, callback) => {
      if ((sub as { subscriptionIdentifier?: number }).subscriptionIdentifier !== undefined) usesSubscriptionIdentifiers(client)
      next(client, sub, callback)
    })
    // Access rules see a shared subscription as the client wrote it.
    hooks.use('authorizeSubscribe', 'shared-subscriptions', (next) => (client, sub, callback) => {
      if (!isMarker(sub.topic)) return next(client, sub, callback)
      next(client, { ...sub, topic: displayTopic(sub.topic) }, (err, granted) => {
        if (err || granted === null || granted === undefined) return callback(err, granted as null)
        callback(null, { ...granted, topic: toMarker(granted.topic) ?? sub.topic })
      })
    })
    hooks.use('preConnect', 'topic-aliases', topicAliasesLayer(this.options.config.mqtt.server_topic_aliases))
    hooks.use('authorizeForward', 'topic-aliases', outboundAliasLayer)
    hooks.use('authorizeForward', 'packet-size', packetSizeLayer)
    hooks.use('published', 'bus-events', messageToEventsLayer(this.options.bus))
    hooks.use('publish', 'forwarded-properties', forwardedPropertiesLayer)
    // The publishing client travels with the message into the queues, for no-local subscriptions (persistence.ts).
    hooks.use('publish', 'no-local', (next) => ((packet: { clientId?: string }, client: unknown, done: unknown) => {
      if (client !== null && typeof client === 'object' && typeof (client as Client).id === 'string') packet.clientId = (client as Client).id
      return (next as (...a: unknown[]) => void)(packet, client, done)
    }) as never)
    // Per-connection layers: their options are made once here and shared by
    // every connection (a heap snapshot of idle clients showed an options
    // object and its closures per connection and layer: about 1.5 KiB of each).
    const inbound: InboundOptions = {
      maxInflight: this.options.config.mqtt.max_inflight,
      maxInflightExcess: this.options.config.mqtt.max_inflight_excess,
      maxClientIdLength: this.options.config.mqtt.max_client_id_length,
      overQuota: (c, filters) => refuseWholeSubscribe(c, filters, this.quota) ? quotaRefusalCode(c) : undefined,
      keepAlive: { maxKeepalive: this.options.config.mqtt.max_keepalive, serverKeepAlive: this.options.config.mqtt.server_keep_alive },
      onRefused: (c, detail) => this.warnRefused('warn', { client: c.id ?? undefined, remote: formatRemote(remoteOf(internals(c).conn)), detail }, 'MQTT connection refused'),
      onBad: (c, reason, detail) => {
        this.metrics.bad(reason)
        this.badInput(c, reason, detail)
      },
      onLimit: (_c, limit) => this.metrics.limit(limit),
      hasSession: (clientId) => this.persistence.hasSession(clientId)
    }
    hooks.connection('inbound', (client) => guardInbound(client, inbound))
    hooks.closed('inbound', inboundClosed)
    const senderOptions: SenderOptions = {
      store: this.persistence,
      authorizeForward: (c, packet) => this.aedes.authorizeForward(c, packet as never) as never,
      write: (c, packet) => {
        const conn = internals(c).conn
        if (conn.destroyed || !conn.writable) return true
        return conn.write(encodePacket(packet, internals(c)._wireVersion ?? 4))
      },
      onExpired: () => { this.counts.dropped++ },
      onSent: () => { this.counts.sent++ },
      room: (c) => outboundOf(c)?.room() ?? Infinity
    }
    const delivery: DeliveryOptions = {
      store: this.persistence,
      sender: (client) => this.senderFor(client, senderOptions),
      counts: this.counts,
      maxHeld: this.options.config.mqtt.max_queued_messages,
      onHeldDropped: () => {
        this.metrics.limit('queued_messages')
        this.warnLimit('warn', { limit: 'queued_messages' }, 'MQTT limit reached')
      },
      buffer: {
        limit: this.options.config.mqtt.max_client_buffer_bytes,
        onDropped: (client) => {
          this.counts.dropped++
          this.metrics.limit('client_buffer')
          this.warnLimit('warn', { limit: 'client_buffer', client: client.id }, 'MQTT limit reached: QoS 0 dropped for a client that reads too slowly')
        },
        onOverflow: (client) => {
          this.metrics.bufferDisconnects.inc()
          this.warnLimit('warn', { limit: 'client_buffer', client: client.id }, 'MQTT limit reached: client disconnected, its QoS 1/2 deliveries did not drain')
        }
      }
    }
    // One listener for every client (`this` is the client), left in place
    // once it ran: removing the client's last 'connected' listener would
    // turn its listener table back into a dictionary (fastListenerTable).
    const startSender = (client: Client): void => {
      // The queue is the sender's for a stored session (persistent, or resumed with Clean Start 0).
      const sender = this.senderFor(client, senderOptions)
      if (!sender.managing) {
        this.ownSenders.delete(client)
        return
      }
      this.senders.get(client.id)?.stop()
      this.senders.set(client.id, sender)
      sender.start(this.deliveryGate?.(client.id))
    }
    const onConnected = function (this: Client): void { startSender(this) }
    hooks.connection('delivery', (client) => {
      installDelivery(client, delivery)
      client.on('connected', onConnected)
    })
    hooks.closed('delivery', (client) => {
      const sender = this.ownSenders.get(client)
      if (sender === undefined) return
      sender.stop()
      if (this.senders.get(client.id) === sender) this.senders.delete(client.id)
    })
    hooks.connection('disconnect', orderlyEnds)
  }

  private watchErrors (): void {
    const { log } = this.options
    const infoClientError = rateLimited(log)
    const onClientError = (client: Client, err: Error): void => {
      if (keepsConnection(err)) return
      if (err.message === 'packet too large') {
        this.metrics.limit('packet_size')
        const guard = guardOf(client)
        if (guard !== undefined) guard.bad('oversize', `${String((err as { size?: number }).size)} bytes`)
        else this.badInput(client, 'oversize', err.message)
        return
      }
      // Connection-level noise (a peer that went away) at debug; anything
      // else closed a client for a reason worth seeing.
      const code = (err as NodeJS.ErrnoException).code
      if (code !== undefined || err.message === 'write after end' || err.message === 'connection closed') {
        log.debug({ client: client.id, err: err.message }, 'MQTT client error')
        return
      }
      // A socket that never sends CONNECT ("connect did not arrive in time"),
      // or goes silent past its keep alive, is anyone's to open by the
      // thousand: at most one line per 10 s, with the count of those left out.
      infoClientError('info', { client: client.id ?? undefined, remote: internals(client).conn?.remoteAddress, err: err.message }, 'MQTT client error')
    }
    this.aedes.on('clientError', onClientError)
    this.aedes.on('connectionError', onClientError)
    // Persistence and will-sweep failures; without a listener aedes would throw.
    const emitter = this.aedes as unknown as NodeJS.EventEmitter
    emitter.on('error', (err: Error) => log.error({ err }, 'aedes error'))
  }

  private senderFor (client: Client, options: SenderOptions): SessionSender {
    let sender = this.ownSenders.get(client)
    if (sender === undefined) {
      sender = new SessionSender(client, options)
      this.ownSenders.set(client, sender)
    }
    return sender
  }

  private badInput (client: Client, reason: string, detail: string): void {
    this.warnBad('warn', { client: client.id ?? undefined, remote: formatRemote(remoteOf(internals(client).conn)), reason, detail }, 'MQTT client dropped for bad input')
  }

  /**
   * Takes a client connection (a listener's TCP or TLS socket or WebSocket
   * stream, or any duplex stream with a socket's surface) with what its
   * listener learned about it.
   */
  accept (socket: Socket, info?: ConnectionInfo): void {
    if (info !== undefined) describeConnection(socket, info)
    if (this.stopping !== undefined) {
      socket.destroy()
      return
    }
    const { max_connections: max, connect_timeout: connectTimeout } = this.options.config.mqtt
    if (max > 0 && this.sockets.size >= max) {
      this.metrics.limit('connections')
      this.warnLimit('warn', { remote: formatRemote(remoteOf(socket)), max }, 'MQTT connection refused: max_connections reached')
      this.refused.add(socket)
      socket.once('close', () => this.refused.delete(socket))
      refuseBeforeConnect(socket, QUOTA_EXCEEDED, Math.min(connectTimeout, 10_000))
      return
    }
    this.sockets.add(socket)
    socket.on('close', this.onSocketClose)
    const client = this.aedes.handle(socket)
    dropEndOfStreamWatch(client)
    this.hooks.connected(client)
    fastListenerTable(client)
    fastListenerTable(internals(client)._parser)
  }

  /**
   * Connected sessions whose queue does not move although it could (the
   * session sender's invariant): said loudly, counted, and kicked. Never
   * expected; the simulation and the chaos runs check it stays at zero.
   */
  private sweep (): void {
    for (const sender of this.senders.values()) {
      if (!sender.stalled()) continue
      this.metrics.stall()
      this.warnStall('error', { client: sender.id, waiting: sender.waiting() }, 'session delivery stalled: messages waiting for a connected client with room in its window; resuming')
      sender.kick()
    }
  }

  async start (): Promise<void> {
    this.hooks.install(this.aedes)
    await this.aedes.listen()
    this.sweepTimer = setInterval(() => this.sweep(), STALL_SWEEP_MS)
    this.sweepTimer.unref()
    this.keepAliveTimer = setInterval(() => sweepKeepAlive(this.sockets), SWEEP_PERIOD_MS)
    this.keepAliveTimer.unref()
    if (this.listeners === undefined) return
    try {
      await this.listeners.start()
    } catch (err) {
      clearInterval(this.sweepTimer)
      clearInterval(this.keepAliveTimer)
      await new Promise<void>((resolve) => this.aedes.close(() => resolve()))
      throw err
    }
  }

  /** The first listener's address (mqtt.port, unless it is 0). */
  address (): { address: string, port: number } {
    const a = this.listeners?.addresses()[0]
    if (a === undefined) throw new Error('MQTT server is not listening')
    return { address: a.address, port: a.port }
  }

  /** Number of open MQTT connections accepted (refused ones excluded). */
  get connections (): number {
    return this.sockets.size
  }

  /** The session sender of a connected client with a stored session (tests, introspection). */
  senderOf (clientId: string): SessionSender | undefined {
    return this.senders.get(clientId)
  }

  /** Graceful: see shutdown.ts. Safe to call more than once. */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.sweepTimer)
      for (const c of Object.values(brokerInternals(this.aedes).clients)) if (c !== undefined) this.clientLog.because(c, 'node stopping')
      const all = new Set([...this.sockets, ...this.refused])
      // The keep alive sweep runs through the grace period: a silent client is still cut, as with aedes' timers.
      const { cut } = await shutdown({ server: this.listeners ?? { close: (done: () => void) => done() }, aedes: this.aedes, sockets: all, graceMs: this.options.config.mqtt.shutdown_grace_period })
        .finally(() => clearInterval(this.keepAliveTimer))
      this.options.log.info({ cut }, 'MQTT stopped')
    })()
    return this.stopping
  }
}
