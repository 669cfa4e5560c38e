// The HTTP API of a node (issue 3): fastify on api.bind:api.port with
// probes, metrics, REST, SSE, profiling and /proxy fan-out. Started after
// MQTT and stopped before it, so the API never reports on a broker that is
// not there.
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { Agent } from 'undici'
import type { Aedes } from 'aedes'
import type { Config } from '../../config/index.js'
import type { Logger } from '../../log.js'
import type { Bus } from '../bus.js'
import type { Membership } from '../cluster/membership/membership.js'
import { MqttIntrospection } from '../mqtt/introspection.js'
import { BrokerHaError } from '../../errors.js'
import { buildApp } from './app.js'
import { BasicAuth } from './auth.js'
import { ProbeCache } from './probes.js'
import { ApiMetrics } from './metrics.js'
import { SseStreams } from './routes/sse.js'
import { Profiler } from './routes/debug.js'
import type { ClientControl } from './routes/mqtt.js'
import { ClusterClientControl } from './cluster-client-control.js'
import { ClientConnections } from './client-connections.js'
import type { FaultControl } from './routes/chaos-faults.js'
import { MemberCredential } from '../../security/member-credential.js'
import { LoginBackoff } from '../../security/login-backoff.js'
import { memberDispatcher, memberCallsProblem } from './member-calls.js'

export type { ClientControl } from './routes/mqtt.js'
export { LocalClientControl } from './routes/mqtt.js'
export { ClusterClientControl } from './cluster-client-control.js'
export { ClientConnections } from './client-connections.js'

export interface ApiServerOptions {
  config: Config
  log: Logger
  bus: Bus
  registry: Registry
  /** The MQTT side: its introspection (a bare aedes gets one of its own: counts and queries, no session queues). */
  mqtt: { aedes: Aedes, introspection?: MqttIntrospection }
  membership: Membership
  /** Node start time, ms since the epoch (broker_uptime). */
  startedAt: number
  /**
   * How /api/mqtt/client/stop and /inflight reach a client; when absent, a
   * ClusterClientControl (this node, else the member that has the client;
   * on a node with no other member, just this node).
   */
  clientControl?: ClientControl
  /** Interval of SSE keepalive events (default 15 s; tests shorten it). */
  sseKeepaliveMs?: number
  /** The chaos fault hook (`serve --chaos-control` only): adds /chaos/faults. */
  faults?: FaultControl | undefined
  /**
   * Where and since when clients connected, started by the node before MQTT;
   * when absent, the API keeps its own from its start.
   */
  connections?: ClientConnections
}

export class ApiServer {
  readonly introspection: MqttIntrospection
  private readonly options: ApiServerOptions
  private readonly streams = new SseStreams()
  private readonly profiler = new Profiler()
  private readonly connections: ClientConnections
  private readonly ownConnections: boolean
  private app: FastifyInstance | undefined
  private metrics: ApiMetrics | undefined
  private dispatcher: Agent | undefined
  private auth: BasicAuth | undefined

  constructor (options: ApiServerOptions) {
    this.options = options
    this.introspection = options.mqtt.introspection ?? new MqttIntrospection(options.mqtt.aedes, undefined, { received: 0, sent: 0, dropped: 0 })
    this.ownConnections = options.connections === undefined
    this.connections = options.connections ?? new ClientConnections(options.mqtt.aedes)
  }

  async start (): Promise<void> {
    const { config, log, registry, bus, membership } = this.options
    if (this.ownConnections) await this.connections.start()
    this.profiler.start()
    // Registered at start, after the membership started, so the cluster gauges it owns are already there.
    this.metrics = new ApiMetrics({ registry, introspection: this.introspection, bus, membership, startedAt: this.options.startedAt })
    // One pool for /proxy fan-out and finding a client on other members; a few connections per member are plenty for an admin API.
    this.dispatcher = new Agent({ connections: 4, keepAliveTimeout: 10_000 })
    const auth = new BasicAuth(config.api.user)
    this.auth = auth
    // Derived once; the key string read here is not kept (config/secrets.ts).
    const cc = config.cluster.config
    const credential = new MemberCredential([cc.secret_key, ...cc.secondary_keys], config.cluster.label)
    if (!auth.enabled) log.warn('HTTP API /api and /proxy are open to anyone who reaches api.port, /debug and client/stop to callers on this host: set api.user to require basic auth')
    if (memberCallsProblem({ apiUserSet: auth.enabled, credential }) !== undefined) log.warn('api.user is set and cluster.config.secret_key is not: /proxy and client control answer for this node only (other members cannot be authenticated to)')
    const toMembers = memberDispatcher(this.dispatcher, credential)
    const { bind, port } = config.api
    try {
      this.app = await buildApp({
        log,
        registry,
        bus,
        membership,
        introspection: this.introspection,
        connections: this.connections,
        clientControl: this.options.clientControl ?? new ClusterClientControl({
          introspection: this.introspection,
          membership,
          dispatcher: toMembers,
          timeoutMs: config.api.proxy_timeout,
          log,
          refused: () => memberCallsProblem({ apiUserSet: auth.enabled, credential })
        }),
        auth,
        probes: new ProbeCache({ membership, config }),
        metrics: this.metrics,
        streams: this.streams,
        profiler: this.profiler,
        dispatcher: toMembers,
        memberCredential: credential,
        loginBackoff: new LoginBackoff(),
        proxyTimeoutMs: config.api.proxy_timeout,
        sseKeepaliveMs: this.options.sseKeepaliveMs ?? 15_000,
        faults: this.options.faults
      })
      await this.app.listen({ host: bind, port })
    } catch (err) {
      await this.stop()
      throw new BrokerHaError('LISTEN_FAILED', `cannot listen for HTTP on ${bind}:${port}: ${(err as Error).message}`, { key: 'api.port', cause: err })
    }
    log.info({ bind, port }, 'HTTP API listening')
  }

  /** A config reload's api.user (src/server/reload.ts). */
  replaceUsers (users: Record<string, string>): void {
    this.auth?.replace(users)
  }

  address (): { address: string, port: number } {
    const a = this.app?.server.address()
    if (a === null || a === undefined || typeof a === 'string') throw new Error('HTTP API is not listening')
    return { address: a.address, port: a.port }
  }

  /** Open SSE streams (for tests and the runtime summary). */
  get sseStreams (): number { return this.streams.size }

  async stop (): Promise<void> {
    this.streams.closeAll()
    this.profiler.stop()
    const app = this.app
    this.app = undefined
    if (app !== undefined) await app.close()
    await this.dispatcher?.close()
    this.dispatcher = undefined
    this.metrics?.unregister()
    this.metrics = undefined
    if (this.ownConnections) await this.connections.stop()
  }
}
