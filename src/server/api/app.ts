// The fastify application of a node's HTTP API: error shape, validation,
// basic auth, OpenAPI, and one plugin-like function per concern (routes/).
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import { Ajv } from 'ajv'
import type { Registry } from 'prom-client'
import type { Dispatcher } from 'undici'
import type { Logger } from '../../log.js'
import type { Bus } from '../bus.js'
import type { Membership } from '../cluster/membership/membership.js'
import type { MqttIntrospection } from '../mqtt/introspection.js'
import { VERSION } from '../../version.js'
import { errorHandler } from './errors.js'
import type { BasicAuth } from './auth.js'
import type { ClientConnections } from './client-connections.js'
import type { ProbeCache } from './probes.js'
import type { ApiMetrics } from './metrics.js'
import { healthRoutes } from './routes/health.js'
import { discoveryRoutes, MEMBERS_ROUTE } from './routes/discovery.js'
import { mqttRoutes, MQTT_PROXIED_ROUTES, type ClientControl } from './routes/mqtt.js'
import { sseRoutes, type SseStreams } from './routes/sse.js'
import { debugRoutes, type Profiler } from './routes/debug.js'
import { proxyRoutes } from './routes/proxy.js'
import { chaosFaultRoutes, type FaultControl } from './routes/chaos-faults.js'

export interface AppDeps {
  log: Logger
  registry: Registry
  bus: Bus
  membership: Membership
  introspection: MqttIntrospection
  connections: ClientConnections
  clientControl: ClientControl
  auth: BasicAuth
  probes: ProbeCache
  metrics: ApiMetrics
  streams: SseStreams
  profiler: Profiler
  dispatcher: Dispatcher
  proxyTimeoutMs: number
  sseKeepaliveMs: number
  /** Only for nodes started with `serve --chaos-control` (loopback only): the chaos runner's fault hook. */
  faults?: FaultControl | undefined
}

/**
 * Behind basic auth when api.user is set: /api and /debug (seed), and /proxy,
 * which answers the same data. Decided on the matched route pattern when
 * there is one, so an oddly spelt URL that still reaches a route is covered.
 */
export function isProtected (path: string): boolean {
  return path === '/debug' || path.startsWith('/debug/') || path.startsWith('/api/') || path.startsWith('/proxy/')
}

/** The logger's level, or warn when it is more verbose than that. */
function atLeastWarn (log: Logger): string {
  return log.levelVal >= log.levels.values.warn! ? log.level : 'warn'
}

export async function buildApp (deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    // fastify's own info lines are its start-up banner, "Server listening at
    // <url>" once per interface, which repeats our "HTTP API listening" (per-
    // request lines are off, below): it logs from warn up. Our handlers log
    // through deps.log at the configured level.
    loggerInstance: deps.log.child({}, { level: atLeastWarn(deps.log) }) as unknown as FastifyBaseLogger,
    // Probes and scrapes arrive every few seconds: per-request logs would drown the rest.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // Close idle keep-alive connections on stop; SSE streams are ended by SseStreams.
    forceCloseConnections: 'idle',
    return503OnClosing: true
  })

  // Request bodies are validated strictly (a number where a string belongs is a
  // 400, not silently coerced); query strings are text, so they are coerced.
  const strict = new Ajv({ strict: false, coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false })
  const coercing = new Ajv({ strict: false, coerceTypes: true, useDefaults: true, removeAdditional: false, allErrors: false })
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'querystring' || httpPart === 'params' ? coercing : strict).compile(schema))

  // `curl -d '{...}'` without -H sends application/x-www-form-urlencoded; the
  // seed's examples work either way, so any body is read as JSON.
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, (body as string).length === 0 ? undefined : JSON.parse(body as string))
    } catch (err) {
      done(Object.assign(err as Error, { statusCode: 400 }), undefined)
    }
  })

  app.setErrorHandler(errorHandler(deps.log))
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ status: 404, error: `no route ${request.method} ${request.url.split('?')[0]}` })
  })

  app.addHook('onRequest', async (request, reply) => {
    if (!deps.auth.enabled || !isProtected(request.routeOptions.url ?? request.url.split('?')[0]!)) return
    if (await deps.auth.check(request.headers.authorization)) return
    await reply
      .code(401)
      .header('www-authenticate', 'Basic realm="broker-ha", charset="UTF-8"')
      .send({ status: 401, error: request.headers.authorization === undefined ? 'authentication required (HTTP basic auth)' : 'wrong username or password' })
  })
  app.addHook('onResponse', async (request, reply) => {
    deps.metrics.requests.inc({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) })
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'broker-ha node API',
        version: VERSION,
        description: 'Probes, metrics, MQTT and cluster introspection, event stream, profiling and cluster-wide /proxy answers of one broker-ha node.'
      },
      components: { securitySchemes: { basicAuth: { type: 'http', scheme: 'basic' } } },
      tags: [
        { name: 'probes', description: 'unauthenticated: Kubernetes probes and Prometheus metrics' },
        { name: 'discovery', description: 'cluster membership' },
        { name: 'mqtt', description: 'MQTT clients, sessions, retained messages' },
        { name: 'events', description: 'event bus stream' },
        { name: 'proxy', description: 'every member answers' },
        { name: 'debug', description: 'profiling' }
      ]
    },
    transform: ({ schema, url }) => {
      // Mark the routes behind basic auth, so generated clients send credentials.
      const s = { ...(schema ?? {}) } as Record<string, unknown>
      if (isProtected(url)) s.security = [{ basicAuth: [] }]
      return { schema: s, url }
    }
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  healthRoutes(app, { probes: deps.probes, registry: deps.registry })
  discoveryRoutes(app, { membership: deps.membership })
  mqttRoutes(app, { introspection: deps.introspection, connections: deps.connections, clientControl: deps.clientControl })
  sseRoutes(app, { bus: deps.bus, streams: deps.streams, keepaliveMs: deps.sseKeepaliveMs })
  debugRoutes(app, { profiler: deps.profiler, nodeName: deps.membership.self.name })
  proxyRoutes(app, [MEMBERS_ROUTE, ...MQTT_PROXIED_ROUTES], { membership: deps.membership, dispatcher: deps.dispatcher, timeoutMs: deps.proxyTimeoutMs })
  if (deps.faults !== undefined) chaosFaultRoutes(app, { faults: deps.faults })
  return app
}
