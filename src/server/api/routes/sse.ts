// Server-sent events from the event bus (seed: /api/sse). Each HTTP client
// gets one bounded bus subscription: when it reads too slowly its buffer
// fills and the bus drops events for it alone (counted in
// broker_bus_dropped_total), so a slow client never slows the broker. The
// subscription is closed when the client goes away or the node stops.
import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { SseRequest, SSE_KEEPALIVE_PREFIX } from '../../../client/contract.js'
import { CHANNELS, isChannel, type Bus, type Channel } from '../../bus.js'
import { BrokerHaError } from '../../../errors.js'
import { responses } from '../errors.js'

const DEFAULT_CHANNEL_SIZE = 100

const SseQuery = Type.Object({
  filters: Type.Optional(Type.String({ description: 'comma-separated channels; absent: all' })),
  channel_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 }))
}, { additionalProperties: false })

/** Open SSE streams, so that stopping the node can end them (they never end by themselves). */
export class SseStreams {
  private readonly open = new Set<() => void>()
  add (close: () => void): void { this.open.add(close) }
  delete (close: () => void): void { this.open.delete(close) }
  get size (): number { return this.open.size }
  closeAll (): void { for (const close of [...this.open]) close() }
}

function channelsFrom (filters: string[]): Channel[] {
  if (filters.length === 0) return [...CHANNELS]
  const unknown = filters.filter((f) => !isChannel(f))
  if (unknown.length > 0) {
    throw new BrokerHaError('BAD_REQUEST', `unknown SSE filter ${unknown.map((f) => JSON.stringify(f)).join(', ')}: channels are ${CHANNELS.join(', ')}`, { key: 'filters' })
  }
  return [...new Set(filters as Channel[])]
}

/** `[::1]:53398` / `127.0.0.1:53398`, as the seed's keepalive event names. */
function remoteName (request: FastifyRequest): string {
  const addr = request.socket.remoteAddress ?? 'unknown'
  return `${addr.includes(':') ? `[${addr}]` : addr}:${request.socket.remotePort ?? 0}`
}

export function sseRoutes (app: FastifyInstance, deps: { bus: Bus, streams: SseStreams, keepaliveMs: number }): void {
  const stream = (request: FastifyRequest, reply: FastifyReply, filters: string[], size: number): void => {
    const channels = channelsFrom(filters)
    const remote = remoteName(request)
    const sub = deps.bus.subscribe(`sse:${remote}`, channels, size)
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no' // nginx: do not buffer the stream
    })
    let closed = false
    const write = (event: string, data: unknown): boolean => {
      let json: string
      try {
        json = JSON.stringify(data) ?? 'null'
      } catch {
        json = '"unserialisable event"'
      }
      return res.write(`event: ${event}\ndata: ${json}\n\n`)
    }
    const close = (): void => {
      if (closed) return
      closed = true
      clearInterval(keepalive)
      sub.close()
      deps.streams.delete(close)
      if (!res.writableEnded) res.end()
    }
    const keepalive = setInterval(() => {
      // A client that is not reading does not need more keepalives buffered for it.
      if (!res.writableNeedDrain) write(`${SSE_KEEPALIVE_PREFIX}${remote}`, 'keepalive')
    }, deps.keepaliveMs)
    deps.streams.add(close)
    res.on('close', close)
    res.on('error', close)
    // Opening comment: flushes the headers through proxies at once.
    res.write(': broker-ha event stream\n\n')
    void (async () => {
      while (!closed) {
        const event = await sub.next()
        if (event === undefined || closed) break
        if (!write(event.channel, event.data)) {
          // Stop pulling until the socket drains; meanwhile the bus buffers up to `size` and drops the rest.
          await new Promise<void>((resolve) => {
            const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
            res.on('drain', done)
            res.on('close', done)
          })
        }
      }
      close()
    })()
  }

  const schema = (extra: Record<string, unknown>) => ({
    summary: 'Server-sent events from the event bus: `event: <channel>` / `data: <json>`, plus keepalive events `sse:keepalive:<client address>`',
    tags: ['events'],
    produces: ['text/event-stream'],
    ...extra,
    response: responses({ type: 'string', description: 'text/event-stream' }, [400, 401])
  })
  app.post<{ Body: SseRequest }>('/api/sse', { schema: schema({ body: SseRequest }) }, (request, reply) => {
    const body = request.body ?? {}
    stream(request, reply, body.filters ?? [], body.channel_size ?? DEFAULT_CHANNEL_SIZE)
  })
  app.get<{ Querystring: Static<typeof SseQuery> }>('/api/sse', { schema: schema({ querystring: SseQuery }) }, (request, reply) => {
    const filters = (request.query.filters ?? '').split(',').map((f) => f.trim()).filter((f) => f !== '')
    stream(request, reply, filters, request.query.channel_size ?? DEFAULT_CHANNEL_SIZE)
  })
}
