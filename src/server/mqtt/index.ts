// The MQTT side of a node: aedes, its TCP listener, limits, and our fixes
// around aedes 2.0.0-beta.1. Everything else in the node talks to MQTT
// through this class.
//
// Where each concern lives:
//   options.ts               config -> aedes options
//   persistence.ts           stored-state limits (retained, queued) around the store
//   inbound.ts               per-connection packet pipeline (ordering, protocol errors, inflight)
//   delivery.ts              outbound fixes (QoS downgrade, client Receive Maximum and Maximum Packet Size)
//   shared-subscriptions.ts  $share/group/filter on one node
//   refusal.ts               refusing CONNACKs (connection limit, client id, keep alive)
//   connack.ts               CONNACK fix-up (shared subscriptions are available)
//   bus-events.ts            cluster:message_to events
//   shutdown.ts              graceful stop
//   metrics.ts               Prometheus metrics
//   access.ts, authorize.ts  authentication and ACL (installAccessControl)
//   introspection.ts         read-only queries for the HTTP API
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { Aedes, type Client } from 'aedes'
import type { Registry } from 'prom-client'
import type { Config } from '../../config/index.js'
import { rateLimited, type Logger } from '../../log.js'
import type { Bus } from '../bus.js'
import { BrokerHaError } from '../../errors.js'
import { aedesOptions } from './options.js'
import { LimitedPersistence } from './persistence.js'
import { MqttMetrics } from './metrics.js'
import { guardInbound, guardOf } from './inbound.js'
import { installDeliveryFixes, composeAuthorizeForward } from './delivery.js'
import { SharedSubscriptions, isMarker, displayTopic, toMarker } from './shared-subscriptions.js'
import { refuseBeforeConnect, QUOTA_EXCEEDED } from './refusal.js'
import { installMessageToEvents } from './bus-events.js'
import { shutdown } from './shutdown.js'
import { installAccessControl } from './authorize.js'

export { displayTopic } from './shared-subscriptions.js'
export { LimitedPersistence } from './persistence.js'

export interface MqttServerOptions {
  config: Config
  log: Logger
  bus: Bus
  registry: Registry
  /** false: no TCP listener; connections arrive through accept() (the data-plane simulation). */
  listen?: boolean
}

export class MqttServer {
  readonly aedes: Aedes
  /** The persistence aedes uses (limits wrapper around the store); for introspection and the cluster. */
  readonly persistence: LimitedPersistence
  readonly shared: SharedSubscriptions
  readonly metrics: MqttMetrics
  /** Set by the cluster data plane: when a session that moved here has what it was owed from its old node (DeliveryOptions.settled). */
  settled: ((clientId: string) => Promise<void> | undefined) | undefined
  private readonly server: Server
  private readonly options: MqttServerOptions
  /** Sockets handed to aedes. */
  private readonly sockets = new Set<Socket>()
  /** Sockets over max_connections, being refused. */
  private readonly refused = new Set<Socket>()
  // One rate limit per kind of noise, so a flood of one hides none of the others.
  private readonly warnLimit: ReturnType<typeof rateLimited>
  private readonly warnBad: ReturnType<typeof rateLimited>
  private readonly warnRefused: ReturnType<typeof rateLimited>
  private stopping: Promise<void> | undefined

  constructor (options: MqttServerOptions) {
    this.options = options
    const { config, log, registry } = options
    const mqtt = config.mqtt
    this.warnLimit = rateLimited(log)
    this.warnBad = rateLimited(log)
    this.warnRefused = rateLimited(log)
    this.persistence = new LimitedPersistence({
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
    this.metrics = new MqttMetrics(registry, {
      connections: () => this.sockets.size,
      retainedMessages: () => this.persistence.retainedCount,
      retainedBytes: () => this.persistence.retainedBytes,
      queuedMessages: () => this.persistence.queuedCount
    })
    this.aedes = new Aedes({ ...aedesOptions(config), persistence: this.persistence })
    installAccessControl(this.aedes, { config, log, registry })
    this.composeHooks()
    this.shared = new SharedSubscriptions(this.aedes)
    installMessageToEvents(this.aedes, options.bus)
    this.watchErrors()
    // Nagle's algorithm stays on by default, as in aedes and mosquitto: it
    // coalesces the many small packets of a message stream (0.62x bare aedes
    // one-to-one QoS 0 with it off). Off, it removes the 40 ms stalls that
    // Nagle plus delayed ACKs cause for request/response traffic with few
    // messages in flight (`broker-ha bench --qos 1 --inflight 1000` against
    // bare aedes: 23k msg/s with it on, 66-80k off).
    this.server = createServer({ noDelay: options.config.mqtt.tcp_no_delay }, (socket) => this.accept(socket))
  }

  /** Our additions to the access hooks, wrapped around whatever is installed. */
  private composeHooks (): void {
    const aedes = this.aedes
    const authorizePublish = aedes.authorizePublish.bind(aedes)
    // The shared-subscription marker prefix is ours: no client may publish there.
    aedes.authorizePublish = (client, packet, callback) => {
      if (packet.topic.charCodeAt(0) === 36 && isMarker(packet.topic)) return callback(new Error('reserved topic'))
      authorizePublish(client, packet, callback)
    }
    const authorizeSubscribe = aedes.authorizeSubscribe.bind(aedes)
    // Access rules see a shared subscription as the client wrote it.
    aedes.authorizeSubscribe = (client, sub, callback) => {
      if (!isMarker(sub.topic)) return authorizeSubscribe(client, sub, callback)
      authorizeSubscribe(client, { ...sub, topic: displayTopic(sub.topic) }, (err, granted) => {
        if (err || granted === null || granted === undefined) return callback(err, granted as null)
        callback(null, { ...granted, topic: toMarker(granted.topic) ?? sub.topic })
      })
    }
    composeAuthorizeForward(aedes)
  }

  private watchErrors (): void {
    const { log } = this.options
    const onClientError = (client: Client, err: Error): void => {
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
      const level = code !== undefined || err.message === 'write after end' || err.message === 'connection closed' ? 'debug' : 'info'
      log[level]({ client: client.id, err: err.message }, 'MQTT client error')
    }
    this.aedes.on('clientError', onClientError)
    this.aedes.on('connectionError', onClientError)
    // Persistence and will-sweep failures; without a listener aedes would throw.
    const emitter = this.aedes as unknown as NodeJS.EventEmitter
    emitter.on('error', (err: Error) => log.error({ err }, 'aedes error'))
  }

  private badInput (client: Client, reason: string, detail: string): void {
    const c = client as Client & { conn?: Socket }
    this.warnBad('warn', { client: client.id ?? undefined, remote: c.conn?.remoteAddress, reason, detail }, 'MQTT client dropped for bad input')
  }

  /** Takes a client connection (the TCP listener's, or any duplex stream with a socket's surface). */
  accept (socket: Socket): void {
    if (this.stopping !== undefined) {
      socket.destroy()
      return
    }
    const { max_connections: max, connect_timeout: connectTimeout } = this.options.config.mqtt
    if (max > 0 && this.sockets.size >= max) {
      this.metrics.limit('connections')
      this.warnLimit('warn', { remote: socket.remoteAddress, max }, 'MQTT connection refused: max_connections reached')
      this.refused.add(socket)
      socket.once('close', () => this.refused.delete(socket))
      refuseBeforeConnect(socket, QUOTA_EXCEEDED, Math.min(connectTimeout, 10_000))
      return
    }
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    const client = this.aedes.handle(socket)
    installDeliveryFixes(client, {
      queuedAt: (clientId, packet) => this.persistence.waitingAt(clientId, packet),
      settled: (clientId) => this.settled?.(clientId),
      maxHeld: this.options.config.mqtt.max_queued_messages,
      onHeldDropped: () => {
        this.metrics.limit('queued_messages')
        this.warnLimit('warn', { limit: 'queued_messages' }, 'MQTT limit reached')
      }
    })
    guardInbound(client, {
      maxInflight: this.options.config.mqtt.max_inflight,
      maxClientIdLength: this.options.config.mqtt.max_client_id_length,
      maxKeepalive: this.options.config.mqtt.max_keepalive,
      onRefused: (c, detail) => this.warnRefused('warn', { client: c.id ?? undefined, remote: socket.remoteAddress, detail }, 'MQTT connection refused'),
      onBad: (c, reason, detail) => {
        this.metrics.bad(reason)
        this.badInput(c, reason, detail)
      },
      onLimit: (_c, limit) => this.metrics.limit(limit)
    })
  }

  async start (): Promise<void> {
    const { bind, port } = this.options.config.mqtt
    await this.aedes.listen()
    if (this.options.listen === false) return
    this.server.listen(port, bind)
    try {
      await once(this.server, 'listening')
    } catch (err) {
      await new Promise<void>((resolve) => this.aedes.close(() => resolve()))
      throw new BrokerHaError('LISTEN_FAILED', `cannot listen for MQTT on ${bind}:${port}: ${(err as Error).message}`, { key: 'mqtt.port', cause: err })
    }
    this.options.log.info({ bind, port }, 'MQTT listening')
  }

  address (): { address: string, port: number } {
    const a = this.server.address()
    if (a === null || typeof a === 'string') throw new Error('MQTT server is not listening')
    return { address: a.address, port: a.port }
  }

  /** Number of open MQTT connections accepted (refused ones excluded). */
  get connections (): number {
    return this.sockets.size
  }

  /** Graceful: see shutdown.ts. Safe to call more than once. */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      const all = new Set([...this.sockets, ...this.refused])
      const { cut } = await shutdown({ server: this.server, aedes: this.aedes, sockets: all, graceMs: this.options.config.mqtt.shutdown_grace_period })
      this.options.log.info({ cut }, 'MQTT stopped')
    })()
    return this.stopping
  }
}
