// Unauthenticated operational endpoints: Kubernetes probes and Prometheus
// metrics (seed: /ready, /healthz, /metrics).
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { ProbeResult } from '../../../client/contract.js'
import type { ProbeCache } from '../probes.js'

export function healthRoutes (app: FastifyInstance, deps: { probes: ProbeCache, registry: Registry }): void {
  const probeSchema = (summary: string) => ({
    summary,
    tags: ['probes'],
    response: { 200: ProbeResult, 503: ProbeResult }
  })
  app.get('/ready', { schema: probeSchema('Readiness probe: 200 when ready, 503 when not') }, async (_req, reply) => {
    const result = deps.probes.readiness()
    return await reply.code(result.status === 'up' ? 200 : 503).send(result)
  })
  app.get('/healthz', { schema: probeSchema('Liveness probe: 200 when healthy, 503 when not') }, async (_req, reply) => {
    const result = deps.probes.liveness()
    return await reply.code(result.status === 'up' ? 200 : 503).send(result)
  })
  app.get('/metrics', {
    schema: {
      summary: 'Prometheus metrics (text exposition format)',
      tags: ['probes'],
      produces: ['text/plain'],
      response: { 200: { type: 'string', description: 'Prometheus text format 0.0.4' } }
    }
  }, async (_req, reply) => {
    const text = await deps.registry.metrics()
    return await reply.type(deps.registry.contentType).send(text)
  })
}
