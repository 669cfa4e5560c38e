// /debug: Node's counterpart of Go's net/http/pprof (seed: /debug).
//   GET /debug                          runtime summary (event-loop delay, heap, handles)
//   GET /debug/pprof/profile?seconds=N  CPU profile for N seconds (1..60), a .cpuprofile
//                                       that Chrome DevTools and speedscope load
//   GET /debug/pprof/heap               V8 heap snapshot (.heapsnapshot), streamed
// Profiling uses an in-process inspector session (node:inspector), so no
// debugger port is opened. One profile or snapshot at a time: they are
// expensive and a second one would only distort the first.
import { Session } from 'node:inspector/promises'
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks'
import { PassThrough } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { RuntimeSummary, type RuntimeSummary as RuntimeSummaryType } from '../../../client/contract.js'
import { VERSION } from '../../../version.js'
import { responses } from '../errors.js'

const ProfileQuery = Type.Object({
  seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 60, default: 30, description: 'profile duration, 1..60 s (default 30, as pprof)' }))
}, { additionalProperties: false })

const ENDPOINTS = ['/debug', '/debug/pprof/profile?seconds=N', '/debug/pprof/heap']

/** 409: the answer to a second concurrent profile (the error handler keeps `statusCode`). */
class BusyError extends Error {
  readonly statusCode = 409
}

/** The runtime state /debug reports; owns the event-loop delay histogram. */
export class Profiler {
  private histogram: IntervalHistogram | undefined
  private lastElu = performance.eventLoopUtilization()
  private busy: string | undefined
  /** Aborted on stop, so a running profile ends with the node. */
  private stopping = new AbortController()

  start (): void {
    this.stopping = new AbortController()
    // 10 ms resolution: enough to see a blocked loop, negligible overhead.
    this.histogram = monitorEventLoopDelay({ resolution: 10 })
    this.histogram.enable()
  }

  stop (): void {
    this.stopping.abort()
    this.histogram?.disable()
  }

  get running (): boolean { return this.busy !== undefined }

  summary (node: string): RuntimeSummaryType {
    const h = this.histogram
    const ms = (ns: number): number => (Number.isFinite(ns) ? Math.round(ns / 1e4) / 100 : 0)
    const delay = h === undefined || h.count === 0
      ? { min: 0, mean: 0, p50: 0, p99: 0, max: 0 }
      : { min: ms(h.min), mean: ms(h.mean), p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) }
    h?.reset()
    const elu = performance.eventLoopUtilization()
    const utilization = performance.eventLoopUtilization(elu, this.lastElu).utilization
    this.lastElu = elu
    const mem = process.memoryUsage()
    const resources: Record<string, number> = {}
    for (const kind of process.getActiveResourcesInfo()) resources[kind] = (resources[kind] ?? 0) + 1
    return {
      node,
      version: VERSION,
      node_version: process.version,
      pid: process.pid,
      uptime_seconds: Math.round(process.uptime() * 1000) / 1000,
      event_loop_delay_ms: delay,
      event_loop_utilization: Number.isFinite(utilization) ? Math.round(utilization * 10_000) / 10_000 : 0,
      memory: { rss: mem.rss, heap_total: mem.heapTotal, heap_used: mem.heapUsed, external: mem.external, array_buffers: mem.arrayBuffers },
      active_resources: resources,
      cpu_profile_running: this.busy === 'cpu profile',
      endpoints: ENDPOINTS
    }
  }

  private claim (what: string): void {
    if (this.busy !== undefined) throw new BusyError(`a ${this.busy} is already running; one at a time`)
    this.busy = what
  }

  /** Samples the CPU for `seconds` and returns the V8 profile (the .cpuprofile JSON). */
  async cpuProfile (seconds: number): Promise<object> {
    this.claim('cpu profile')
    const session = new Session()
    try {
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.start')
      try {
        await sleep(seconds * 1000, undefined, { signal: this.stopping.signal })
      } catch {
        // The node is stopping: return what was sampled so far.
      }
      const { profile } = await session.post('Profiler.stop')
      return profile
    } finally {
      session.disconnect()
      this.busy = undefined
    }
  }

  /** Streams a heap snapshot; the snapshot is taken before the first byte is sent. */
  async heapSnapshot (): Promise<PassThrough> {
    this.claim('heap snapshot')
    const out = new PassThrough()
    const session = new Session()
    try {
      session.connect()
      session.on('HeapProfiler.addHeapSnapshotChunk', (message) => { out.write(message.params.chunk) })
      await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false })
      out.end()
      return out
    } catch (err) {
      out.destroy()
      throw err
    } finally {
      session.disconnect()
      this.busy = undefined
    }
  }
}

export function debugRoutes (app: FastifyInstance, deps: { profiler: Profiler, nodeName: string }): void {
  app.get('/debug', {
    schema: { summary: 'Runtime summary: event-loop delay, memory, active handles', tags: ['debug'], response: responses(RuntimeSummary, [401]) }
  }, async () => deps.profiler.summary(deps.nodeName))

  app.get<{ Querystring: Static<typeof ProfileQuery> }>('/debug/pprof/profile', {
    schema: {
      summary: 'CPU profile for N seconds, as a .cpuprofile (Chrome DevTools, speedscope)',
      tags: ['debug'],
      querystring: ProfileQuery,
      response: responses({ type: 'object', additionalProperties: true, description: 'V8 CPU profile: nodes, startTime, endTime, samples, timeDeltas' }, [400, 401, 409, 500])
    }
  }, async (request, reply) => {
    const seconds = request.query.seconds ?? 30
    const profile = await deps.profiler.cpuProfile(seconds)
    const name = `broker-ha-${deps.nodeName}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`
    // Serialised here: the profile is large and free-form, no response schema to apply.
    return await reply
      .type('application/json')
      .header('content-disposition', `attachment; filename="${name}"`)
      .serializer((p) => JSON.stringify(p))
      .send(profile)
  })

  app.get('/debug/pprof/heap', {
    schema: {
      summary: 'V8 heap snapshot (.heapsnapshot, load in Chrome DevTools Memory tab); pauses the node while it is taken',
      tags: ['debug'],
      response: responses({ type: 'string', description: '.heapsnapshot JSON' }, [401, 409, 500])
    }
  }, async (_request, reply) => {
    const stream = await deps.profiler.heapSnapshot()
    const name = `broker-ha-${deps.nodeName}-${new Date().toISOString().replace(/[:.]/g, '-')}.heapsnapshot`
    return await reply.type('application/json').header('content-disposition', `attachment; filename="${name}"`).send(stream)
  })
}
