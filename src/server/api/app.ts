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
import { MEMBER_HEADER, type MemberCredential } from '../../security/member-credential.js'
import type { LoginBackoff } from '../../security/login-backoff.js'
import { callerAddress, isLocalCaller, LOCAL_ONLY_MESSAGE, needsTrustedCaller } from './caller-trust.js'
import { isLocalScope } from './local-scope.js'
import { memberCallsProblem } from './member-calls.js'

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
  /** Calls from other members (member-calls.ts); disabled without a cluster key. */
  memberCredential: MemberCredential
  /** Failed basic-auth logins per caller address. */
  loginBackoff: LoginBackoff
  /** Only for nodes started with `serve --chaos-control` (loopback only): the chaos runner's fault hook. */
  faults?: FaultControl | undefined
}

/**
 * Behind basic auth when api.user is set: /api and /debug (seed), and /proxy,
 * which answers the same data. Decided on the matched route pattern when
 * there is one, so an oddly spelt URL that still reaches a route is covered.
 */
export function isProtected (path: string): boolean {
  return path === '/debug' || path.startsWith('/debug/') || path.startsWith('/api/') || path.startsWith('/proxy/') ||
    path === '/chaos' || path.startsWith('/chaos/')
}

function isMemberAddress (membership: Membership, address: string): boolean {
  const self = membership.self.name
  return membership.members().some((m) => m.name !== self && (m.state === 'alive' || m.state === 'suspect') && m.addr === address)
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

  // Who may call what (docs/security.md, "The HTTP API"): another member by
  // its credential; with api.user, basic auth (failures back the caller's
  // address off); without api.user, reads are open and /debug, /chaos and
  // the mutating endpoints answer callers on this host only.
  app.addHook('onRequest', async (request, reply) => {
    const path = request.routeOptions.url ?? request.url.split('?')[0]!
    if (!isProtected(path)) return
    const member = request.headers[MEMBER_HEADER]
    if (member !== undefined) {
      if (deps.memberCredential.verify(Array.isArray(member) ? member[0] : member, request.method, request.url)) return
      await reply.code(401).send({ status: 401, error: 'member credential not valid: the members hold different cluster keys, or their clocks are more than 60 s apart' })
      return
    }
    if (deps.auth.enabled) {
      const address = callerAddress(request)
      const wait = deps.loginBackoff.blockedFor(address, Date.now())
      if (wait > 0) {
        await reply.code(429).header('retry-after', String(Math.ceil(wait / 1000)))
          .send({ status: 429, error: `too many failed logins from ${address}: try again in ${Math.ceil(wait / 1000)} s` })
        return
      }
      const header = request.headers.authorization
      if (await deps.auth.check(header)) {
        deps.loginBackoff.succeeded(address)
        return
      }
      // A request without credentials is a browser's first try, not a failed guess.
      if (header !== undefined) deps.loginBackoff.failed(address, Date.now())
      await reply
        .code(401)
        .header('www-authenticate', 'Basic realm="broker-ha", charset="UTF-8"')
        .send({ status: 401, error: header === undefined ? 'authentication required (HTTP basic auth)' : 'wrong username or password' })
      return
    }
    if (!needsTrustedCaller(request.method, path) || isLocalCaller(request.socket)) return
    // A cluster without a key: another member looking for a client here
    // (cluster-client-control.ts) is known by its gossip address only, which
    // is as much as such a cluster knows of its members anyway.
    if (!deps.memberCredential.enabled && isLocalScope(request.headers) && path.startsWith('/api/') && isMemberAddress(deps.membership, callerAddress(request))) return
    await reply.code(403).send({ status: 403, error: LOCAL_ONLY_MESSAGE })
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
  proxyRoutes(app, [MEMBERS_ROUTE, ...MQTT_PROXIED_ROUTES], {
    membership: deps.membership,
    dispatcher: deps.dispatcher,
    timeoutMs: deps.proxyTimeoutMs,
    // Asked per request: a reload may set or clear api.user.
    refused: () => memberCallsProblem({ apiUserSet: deps.auth.enabled, credential: deps.memberCredential })
  })
  if (deps.faults !== undefined) chaosFaultRoutes(app, { faults: deps.faults })
  return app
}
