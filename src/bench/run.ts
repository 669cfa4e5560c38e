// The load generator's coordinator: starts the worker threads, runs the
// phases (connect + subscribe, publish, drain), aggregates progress and turns
// the workers' tallies into the final figures.
import { Worker } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import { account, expectedDeliveries, mergeTallies, percentileSorted, type Accounting, type ReceiveTally } from './accounting.js'
import { planClients, validateOptions, type BenchOptions } from './plan.js'
import type { FromWorker, LoadStats, PublisherResult, ToWorker, WorkerInit } from './worker.js'
import { BrokerHaError } from '../errors.js'

export interface BenchProgress {
  phase: 'connecting' | 'publishing' | 'draining'
  elapsedMs: number
  connected: number
  sent: number
  received: number
  duplicates: number
  /** Deliveries per second over the last interval. */
  rate: number
}

export interface BenchResult extends Accounting {
  options: Omit<BenchOptions, 'prefix'>
  connections: number
  /** Connections per second: connections over the longest worker's first CONNECT to last CONNACK (subscribes included). */
  connectRate: number
  /** From the start signal to the last delivery (or end of publishing when nothing was received). */
  publishSeconds: number
  /** Messages published per second, all publishers together. */
  sendRate: number
  /** Deliveries per second, all subscribers together. */
  receiveRate: number
  /** Publish to acknowledgement (QoS 1 PUBACK, QoS 2 PUBCOMP), ms; all zero at QoS 0. */
  ackLatency: { p50: number, p99: number, max: number, samples: number }
  generator: {
    workers: number
    maxEventLoopUtilization: number
    maxEventLoopDelayP99Ms: number
    /** True when a worker's event loop was near full: the figures are then a floor for the broker. */
    saturated: boolean
  }
}

/** ELU above this, or p99 loop delay above this many ms, means the generator itself was busy. */
const SATURATED_ELU = 0.9
const SATURATED_DELAY_MS = 100

export async function runBench (input: Omit<BenchOptions, 'prefix'> & { prefix?: string }, onProgress: (p: BenchProgress) => void = () => {}): Promise<BenchResult> {
  const options: BenchOptions = { ...input, prefix: input.prefix ?? `bench/${randomBytes(4).toString('hex')}` }
  validateOptions(options)
  const clients = planClients(options)
  const workerCount = Math.max(1, Math.min(options.workers, clients.length))
  const opts = { ...options, workers: workerCount }
  const perWorker = Array.from({ length: workerCount }, (_, w) => clients.filter((c) => c.worker % workerCount === w))
  const workerUrl = new URL('./worker.js', import.meta.url)
  const workers = perWorker.map((cs) => new Worker(workerUrl, { workerData: { options: opts, clients: cs } satisfies WorkerInit }))
  const progress = workers.map(() => ({ sent: 0, received: 0, duplicates: 0 }))
  let connected = 0
  let failure: Error | undefined
  let wake: () => void = () => {}
  const readies: Array<Array<{ startedAt: number, connackAt: number }>> = []
  const published: PublisherResult[][] = []
  const finals: Array<{ tally: ReceiveTally, load: LoadStats }> = []
  const t0 = performance.now()
  let lastDeliveryAt = 0
  let lastReceived = 0
  for (const [i, w] of workers.entries()) {
    w.on('message', (m: FromWorker) => {
      if (m.type === 'ready') { readies.push(m.connects); connected += m.connects.length } else if (m.type === 'progress') {
        progress[i] = m
        const total = progress.reduce((s, p) => s + p.received, 0)
        if (total > lastReceived) { lastReceived = total; lastDeliveryAt = performance.now() }
      } else if (m.type === 'published') published.push(m.publishers)
      else if (m.type === 'final') finals.push(m)
      else if (m.type === 'error') failure ??= new Error(m.message)
      wake()
    })
    w.on('error', (err) => { failure ??= err; wake() })
    w.on('exit', () => wake())
  }
  const until = async (cond: () => boolean, timeoutMs: number, what: string): Promise<void> => {
    const deadline = performance.now() + timeoutMs
    while (!cond()) {
      if (failure !== undefined) throw new BrokerHaError('INTERNAL', `bench: ${failure.message}`, { cause: failure })
      const left = deadline - performance.now()
      if (left <= 0) throw new BrokerHaError('INTERNAL', `bench: timed out ${what}`)
      await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, Math.min(left, 250)) })
    }
  }
  const send = (m: ToWorker): void => { for (const w of workers) w.postMessage(m) }
  let phase: BenchProgress['phase'] = 'connecting'
  let lastTick = { at: performance.now(), received: 0 }
  const ticker = setInterval(() => {
    const received = progress.reduce((s, p) => s + p.received, 0)
    const at = performance.now()
    onProgress({
      phase,
      elapsedMs: at - t0,
      connected,
      sent: progress.reduce((s, p) => s + p.sent, 0),
      received,
      duplicates: progress.reduce((s, p) => s + p.duplicates, 0),
      rate: (received - lastTick.received) / ((at - lastTick.at) / 1000)
    })
    lastTick = { at, received }
  }, 1000)
  try {
    await until(() => readies.length === workers.length, 60_000 + clients.length * 20, 'connecting')
    const connects = readies.flat()
    // Workers connect in parallel but start a few ms apart: the slowest worker's span, not the union.
    const connectSpan = Math.max(...readies.filter((r) => r.length > 0).map((r) => (Math.max(...r.map((c) => c.connackAt)) - Math.min(...r.map((c) => c.startedAt))) / 1000))
    if ((options.settleMs ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, options.settleMs))
    phase = 'publishing'
    const startedAt = performance.now()
    const startedAbs = performance.timeOrigin + startedAt
    lastDeliveryAt = startedAt
    send({ type: 'start', durationMs: options.durationMs, count: options.count })
    // Publishing is bounded by --duration, or by --count at no less than 1 msg/s per publisher... plus the drain.
    const publishBound = options.durationMs ?? Math.max(60_000, options.count! * 1000 / Math.max(1, options.rate || 1000))
    await until(() => published.length === workers.length, publishBound + options.drainMs + 10_000, 'publishing')
    const publishedAt = performance.now()
    phase = 'draining'
    const pubs = published.flat()
    const subscriberFilters = clients.filter((c) => c.role === 'sub').map((c) => c.topic)
    const expected = expectedDeliveries(pubs, subscriberFilters)
    // Drain: until everything owed arrived, or deliveries stopped moving for drainMs.
    await until(() => progress.reduce((s, p) => s + p.received, 0) >= expected || performance.now() - Math.max(lastDeliveryAt, publishedAt) > options.drainMs, 10 * 60_000, 'draining')
    send({ type: 'stop' })
    await until(() => finals.length === workers.length, 10_000, 'collecting results')
    const tally = mergeTallies(finals.map((f) => f.tally))
    const acc = account(pubs, subscriberFilters, tally)
    // The workers stamp the last delivery exactly; progress ticks are only 250 ms apart.
    const endAbs = tally.unique > 0 ? tally.lastAt : performance.timeOrigin + publishedAt
    const publishSeconds = Math.max(0.001, (endAbs - startedAbs) / 1000)
    const sendSeconds = Math.max(0.001, (publishedAt - startedAt) / 1000)
    const maxElu = Math.max(...finals.map((f) => f.load.elu))
    const maxDelay = Math.max(...finals.map((f) => f.load.delayP99))
    const ackSorted = finals.flatMap((f) => f.load.ackMs).sort((a, b) => a - b)
    const ackLatency = { p50: percentileSorted(ackSorted, 50), p99: percentileSorted(ackSorted, 99), max: Math.max(0, ...finals.map((f) => f.load.ackMax)), samples: finals.reduce((n, f) => n + f.load.ackCount, 0) }
    // The report (and --json) says whether a password was used, never which.
    const { prefix: _prefix, password, ca, ...shown } = options
    return {
      options: { ...shown, ...(password === undefined ? {} : { password: '********' }), ...(ca === undefined ? {} : { ca: 'given' }) },
      ...acc,
      connections: connects.length,
      connectRate: connects.length / Math.max(0.001, connectSpan),
      publishSeconds,
      sendRate: acc.sent / sendSeconds,
      receiveRate: acc.received / publishSeconds,
      ackLatency,
      generator: { workers: workerCount, maxEventLoopUtilization: maxElu, maxEventLoopDelayP99Ms: maxDelay, saturated: maxElu >= SATURATED_ELU || maxDelay >= SATURATED_DELAY_MS }
    }
  } finally {
    clearInterval(ticker)
    await Promise.all(workers.map(async (w) => await w.terminate()))
  }
}
