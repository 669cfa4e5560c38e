// One load-generator worker thread: owns a share of the clients, connects
// them, publishes pre-encoded PUBLISH batches, counts what its subscribers
// receive, and measures its own event loop so the coordinator can say when
// the generator, not the broker, was the limit.
import { parentPort, workerData } from 'node:worker_threads'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { Socket } from 'node:net'
import { LatencySamples, ReceiveLedger, writeHeader, type ReceiveTally } from './accounting.js'
import { rawConnect, encode, publishLayout, acks, PUBACK, PUBCOMP, PUBREC, PUBREL } from './raw-client.js'
import type { BenchOptions, ClientSpec } from './plan.js'

export interface WorkerInit { options: BenchOptions, clients: ClientSpec[] }

export type ToWorker =
  | { type: 'start', durationMs?: number, count?: number }
  | { type: 'stop' }

export interface PublisherResult { index: number, topic: string, sent: number, acked: number }

export interface LoadStats {
  /** Event-loop utilisation (0..1) of this worker while publishing. */
  elu: number
  /** p99 event-loop delay, ms. */
  delayP99: number
  /** Publish to its acknowledgement (PUBACK, or PUBCOMP for QoS 2), ms: a reservoir sample, and the count and maximum. */
  ackMs: number[]
  ackCount: number
  ackMax: number
}

export type FromWorker =
  | { type: 'ready', connects: Array<{ startedAt: number, connackAt: number }> }
  | { type: 'progress', sent: number, acked: number, received: number, duplicates: number }
  | { type: 'published', publishers: PublisherResult[] }
  | { type: 'final', tally: ReceiveTally, load: LoadStats }
  | { type: 'error', message: string }

const now = (): number => performance.timeOrigin + performance.now()

interface Publisher {
  spec: ClientSpec
  socket: Socket
  sent: number
  acked: number
  nextId: number
  waiting: boolean
  /** Send times of the messages not yet acknowledged, oldest first (a broker acknowledges a client's publishes in order). */
  pendingAt: number[]
  pendingHead: number
}

async function run (init: WorkerInit): Promise<void> {
  const port = parentPort!
  const post = (m: FromWorker): void => { port.postMessage(m) }
  const o = init.options
  const v = o.protocolVersion
  const ledger = new ReceiveLedger()
  const ackLatency = new LatencySamples()
  const sockets: Socket[] = []
  const publishers: Publisher[] = []
  const suback = new Map<number, (ok: boolean) => void>()
  const credentials = { username: o.username, password: o.password }
  const transport = { ca: o.ca, insecure: o.insecure }

  // Acknowledgements of one read go out in one write, as a real client's
  // would; one write per message would make the generator's syscalls the
  // bottleneck. QoS 1: PUBACK. QoS 2 (MQTT 4.3.3): PUBREC for each PUBLISH,
  // PUBCOMP for each PUBREL; a message counts when its PUBLISH arrives.
  const subscriberHandler = (spec: ClientSpec, socket: () => Socket): { onPacket: (header: number, body: Buffer) => void, onChunkEnd: () => void } => {
    const pending = { publish: [] as number[], release: [] as number[] }
    const onChunkEnd = (): void => {
      if (pending.publish.length > 0) socket().write(acks(o.qos === 2 ? PUBREC : PUBACK, pending.publish))
      if (pending.release.length > 0) socket().write(acks(PUBCOMP, pending.release))
      pending.publish = []
      pending.release = []
    }
    return { onPacket: (header, body) => onPacket(spec, header, body, pending), onChunkEnd }
  }
  const onPacket = (spec: ClientSpec, header: number, body: Buffer, pending: { publish: number[], release: number[] }): void => {
    const type = header & 0xF0
    if (type === 0x30) {
      const { packetId, payloadAt } = publishLayout(header, body, v)
      ledger.receive(spec.index, body, now(), payloadAt)
      if (packetId !== undefined) pending.publish.push(packetId)
    } else if (type === (PUBREL & 0xF0)) {
      pending.release.push(body.readUInt16BE(0))
    } else if (type === 0x90) {
      // SUBACK: packet id, [v5 properties], one granted QoS or reason code >= 0x80.
      let at = 2
      if (v === 5) at += 1 + (body[2] ?? 0)
      suback.get(spec.index)?.((body[at] ?? 0x80) < 0x80)
    }
  }

  const connects: Array<{ startedAt: number, connackAt: number }> = []
  // Connections open a bounded number at a time: a burst of thousands of SYNs
  // overflows the listen backlog and measures retransmit timers instead.
  const queue = [...init.clients]
  const perWorker = Math.max(1, Math.ceil(o.connectConcurrency / Math.max(1, o.workers)))
  await Promise.all(Array.from({ length: Math.min(perWorker, queue.length) }, async () => {
    for (let spec = queue.shift(); spec !== undefined; spec = queue.shift()) {
      const s = spec
      if (s.role === 'sub') {
        // The handler acknowledges on the socket that rawConnect is still opening.
        const handler = subscriberHandler(s, () => c.socket)
        const c = await rawConnect(s.url, s.clientId, v, handler.onPacket, 10_000, handler.onChunkEnd, { ...credentials, clean: o.persistentSubscribers !== true }, transport)
        const sock = c.socket
        sockets.push(sock)
        connects.push({ startedAt: c.startedAt, connackAt: c.connackAt })
        const granted = new Promise<boolean>((resolve) => suback.set(s.index, resolve))
        sock.write(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: s.topic, qos: o.qos }] }, v))
        if (!await granted) throw new Error(`subscription ${s.topic} refused by ${s.url}`)
      } else {
        const holder: { pub?: Publisher } = {}
        // QoS 1 ends at PUBACK; QoS 2 at PUBCOMP, after our PUBREL answers the PUBREC.
        let releases: number[] = []
        const c = await rawConnect(s.url, s.clientId, v, (header, body) => {
          const pub = holder.pub
          const type = header & 0xF0
          // An MQTT 5 PUBREC with a reason code >= 0x80 (refused) ends the exchange: no PUBREL, not acknowledged.
          if (type === PUBREC) { if (body.length < 3 || body[2]! < 0x80) releases.push(body.readUInt16BE(0)) }
          else if ((type === PUBACK || type === PUBCOMP) && pub !== undefined) {
            pub.acked++
            const at = pub.pendingAt[pub.pendingHead++]
            if (at !== undefined) ackLatency.add(Math.max(0, now() - at))
            if (pub.pendingHead > 4096) { pub.pendingAt.splice(0, pub.pendingHead); pub.pendingHead = 0 }
            onAck(pub)
          }
        }, 10_000, () => {
          if (releases.length > 0 && holder.pub !== undefined) holder.pub.socket.write(acks(PUBREL, releases))
          releases = []
        }, credentials, transport)
        sockets.push(c.socket)
        connects.push({ startedAt: c.startedAt, connackAt: c.connackAt })
        holder.pub = { spec: s, socket: c.socket, sent: 0, acked: 0, nextId: 1, waiting: false, pendingAt: [], pendingHead: 0 }
        publishers.push(holder.pub)
      }
    }
  }))
  for (const s of sockets) s.on('error', () => {})
  post({ type: 'ready', connects })

  let onAck: (p: Publisher) => void = () => {}
  let limit = Infinity
  let deadline = Infinity
  let stopped = false
  let rate = o.rate
  const elu0 = { value: performance.eventLoopUtilization() }
  const delay = monitorEventLoopDelay({ resolution: 10 })

  // Pre-encoded PUBLISH: the payload's header and (QoS 1, 2) the packet id are
  // patched per message in a copy; nothing else is encoded per message.
  const templates = new Map<Publisher, { buf: Buffer, payloadAt: number, idAt: number }>()
  for (const p of publishers) {
    const buf = encode({ cmd: 'publish', topic: p.spec.topic, payload: Buffer.alloc(o.size, 0x2E), qos: o.qos, messageId: o.qos > 0 ? 1 : undefined }, v)
    const payloadAt = buf.length - o.size
    // Before the payload: [packet id][v5: properties length 0].
    const idAt = payloadAt - 2 - (v === 5 ? 1 : 0)
    templates.set(p, { buf, payloadAt, idAt })
  }
  const window = o.qos > 0 ? o.inflight : Infinity
  const BATCH = 256

  const allowed = (p: Publisher): number => {
    let n = Math.min(limit - p.sent, window - (p.sent - p.acked), BATCH)
    if (rate > 0 && started > 0) n = Math.min(n, Math.floor((performance.now() - started) / 1000 * rate) - p.sent)
    return n
  }
  let started = 0

  const pump = (p: Publisher): void => {
    if (stopped || p.waiting) return
    if (now() >= deadline) { limit = Math.min(limit, p.sent); return }
    const n = allowed(p)
    if (n <= 0) return
    const t = templates.get(p)!
    const batch = Buffer.allocUnsafe(t.buf.length * n)
    const stamp = now()
    for (let k = 0; k < n; k++) {
      const at = k * t.buf.length
      t.buf.copy(batch, at)
      writeHeader(batch, at + t.payloadAt, p.spec.index, p.sent + k, stamp)
      if (o.qos > 0) {
        batch.writeUInt16BE(p.nextId, at + t.idAt)
        p.nextId = p.nextId === 65535 ? 1 : p.nextId + 1
      }
    }
    p.sent += n
    if (o.qos > 0) for (let k = 0; k < n; k++) p.pendingAt.push(stamp)
    if (!p.socket.write(batch)) {
      // TCP backpressure: the broker reads no faster; wait rather than buffer.
      p.waiting = true
      p.socket.once('drain', () => { p.waiting = false; setImmediate(() => pump(p)) })
    } else if (rate === 0) {
      setImmediate(() => pump(p))
    }
  }
  onAck = (p) => { if (rate === 0 && p.sent - p.acked <= window / 2) pump(p) }

  const done = (p: Publisher): boolean => p.sent >= limit && (o.qos === 0 || p.acked >= p.sent)
  let reported = false
  const progress = setInterval(() => {
    post({ type: 'progress', sent: publishers.reduce((s, p) => s + p.sent, 0), acked: publishers.reduce((s, p) => s + p.acked, 0), received: ledger.unique, duplicates: ledger.duplicates })
  }, 250)
  let ticker: NodeJS.Timeout | undefined
  const finishCheck = (): void => {
    if (reported || started === 0) return
    if (now() >= deadline) for (const p of publishers) limit = Math.min(limit, p.sent)
    // A QoS 1 publisher whose acks stopped (broker lost them) is not waited on past the drain time.
    if (publishers.every(done) || now() >= deadline + o.drainMs) {
      reported = true
      post({ type: 'published', publishers: publishers.map((p) => ({ index: p.spec.index, topic: p.spec.topic, sent: p.sent, acked: p.acked })) })
    }
  }

  port.on('message', (m: ToWorker) => {
    if (m.type === 'start') {
      started = performance.now()
      elu0.value = performance.eventLoopUtilization()
      delay.enable()
      if (m.count !== undefined) limit = m.count
      if (m.durationMs !== undefined) deadline = now() + m.durationMs
      rate = o.rate
      // Rated publishers are paced by a 5 ms tick; unrated ones pump themselves.
      ticker = setInterval(() => {
        if (rate > 0) for (const p of publishers) pump(p)
        finishCheck()
      }, 5)
      for (const p of publishers) pump(p)
      finishCheck()
    } else if (m.type === 'stop') {
      stopped = true
      clearInterval(progress)
      if (ticker !== undefined) clearInterval(ticker)
      delay.disable()
      const elu = performance.eventLoopUtilization(elu0.value).utilization
      const load: LoadStats = { elu, delayP99: delay.count > 0 ? delay.percentile(99) / 1e6 : 0, ackMs: ackLatency.samples, ackCount: ackLatency.count, ackMax: ackLatency.max }
      const disconnect = encode({ cmd: 'disconnect' }, v)
      for (const s of sockets) s.end(disconnect)
      post({ type: 'final', tally: ledger.tally(), load })
      // Sockets that do not close promptly must not keep the thread alive.
      setTimeout(() => { for (const s of sockets) s.destroy(); port.close() }, 500).unref()
    }
  })
}

run(workerData as WorkerInit).catch((err: unknown) => {
  parentPort!.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) } satisfies FromWorker)
})
