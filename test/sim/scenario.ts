// Simulated workloads with faults, and their verdicts: the chaos tool's
// workload shapes (numbered publishers, persistent and clean subscribers
// that follow their node's death to another node, client-id takeovers) and
// the chaos checker's invariants, run on the simulated cluster (world.ts).
// A scenario is a function of its seed alone.
import { createHash } from 'node:crypto'
import { checkHistory, DEFAULT_CHECK_OPTIONS, type Verdict } from '../../src/chaos/checker.js'
import type { InvariantId } from '../../src/chaos/invariants.js'
import type { Qos } from '../../src/chaos/history.js'
import { pick, randomInt, seededRandom, shuffled, type Random } from '../../src/random.js'
import { World, type WorldOptions } from './world.js'
import type { SimClient } from './client.js'

export const FAULTS = ['kill', 'stop', 'pause', 'partition', 'links', 'move', 'takeover'] as const
export type SimFault = typeof FAULTS[number]

export interface ScenarioOptions {
  seed: number
  nodes?: number
  /** Virtual ms of publishing with faults. */
  durationMs?: number
  faults?: readonly SimFault[]
  /** Persistent subscribers (QoS 1 and 2 alternating) and clean ones. */
  persistentSubscribers?: number
  cleanSubscribers?: number
  publishers?: number
  /** Virtual ms between two publishes of one publisher. */
  publishEveryMs?: number
  world?: Partial<WorldOptions>
}

export interface ScenarioResult {
  seed: number
  ok: boolean
  verdicts: Verdict[]
  /** Longest time a connected subscriber waited for a message it was owed (ms). */
  maxWaitMs: number
  faults: string[]
  acked: number
  deliveries: number
  /** Where a failure was seen, for the report. */
  problems: string[]
  /** A hash of the whole history: the same seed must give the same one (replay is exact). */
  digest: string
  /** Publish to acknowledgement (QoS 1/2), ms: the median, the 99th percentile and the longest. */
  ackMs: { p50: number, p99: number, max: number }
}

/** The invariants a simulated run owes (membership and retained state are checked elsewhere). */
const OWED: InvariantId[] = ['lost-acked', 'qos2-stalled', 'qos2-duplicates', 'order', 'stall']

export const TOPIC_FILTER = 'sim/d/#'


export async function runScenario (options: ScenarioOptions): Promise<ScenarioResult> {
  const random: Random = seededRandom(options.seed * 7919 + 1)
  const nodes = options.nodes ?? 3
  const world = new World({ seed: options.seed, nodes, ...options.world })
  const faults: string[] = []
  try {
    await world.start()
    const subs: SimClient[] = []
    const pubs: SimClient[] = []
    const nPersistent = options.persistentSubscribers ?? 3
    for (let i = 0; i < nPersistent; i++) {
      subs.push(world.client({ id: `sp${i}`, role: 'subscriber', protocol: i % 2 === 0 ? 5 : 4, clean: false, expiry: 600 }))
    }
    for (let i = 0; i < (options.cleanSubscribers ?? 1); i++) {
      subs.push(world.client({ id: `sc${i}`, role: 'subscriber', protocol: 5, clean: true }))
    }
    for (let i = 0; i < (options.publishers ?? 2); i++) {
      pubs.push(world.client({ id: `p${i}`, role: 'publisher', protocol: i % 2 === 0 ? 4 : 5, clean: true, window: 8 }))
    }
    const qosOf = (c: SimClient): Qos => (Number(c.opts.id.slice(2)) % 2 === 0 ? 2 : 1) as Qos
    const running = { on: true }
    const loops: Array<Promise<void>> = []
    // Each client keeps itself connected to some live node, as behind a Kubernetes Service.
    for (const c of [...subs, ...pubs]) loops.push(keepConnected(world, c, random, running, c.opts.role === 'subscriber' ? qosOf(c) : undefined))
    await world.run(300)
    // Publishers: numbered messages on their own topic.
    const every = options.publishEveryMs ?? 10
    const seqs = new Map<SimClient, number>()
    const publishing = { on: true }
    for (const [i, p] of pubs.entries()) {
      const qos: Qos = i % 2 === 0 ? 1 : 2
      loops.push((async () => {
        while (publishing.on) {
          if (p.connected) {
            const seq = (seqs.get(p) ?? 0) + 1
            if (p.publish(`sim/d/${p.opts.id}`, seq, qos)) seqs.set(p, seq)
          }
          await sleep(every)
        }
      })())
    }
    // Faults, one at a time.
    const kinds = options.faults ?? FAULTS
    const end = world.now + (options.durationMs ?? 6000)
    while (kinds.length > 0 && world.now < end - 500) {
      await world.run(randomInt(random, 200, 800))
      const kind = pick(random, kinds)
      const id = faults.length + 1
      world.history.record({ type: 'fault-start', id, kind, targets: [], description: kind })
      faults.push(`${world.now}:${await inject(world, kind, random, subs)}`)
      world.history.record({ type: 'fault-end', id })
    }
    while (world.now < end) await world.run(50)
    publishing.on = false
    // Heal whatever is left, then let the cluster settle and the subscribers catch up.
    for (const n of world.names) if (world.node(n) === undefined) await world.restart(n)
    await world.run(3000)
    await world.until(() => subs.every((s) => s.connected), 5000)
    await world.run(4000)
    running.on = false
    world.history.record({ type: 'run-end' })
    const result = checkHistory(world.history.events, {
      ...DEFAULT_CHECK_OPTIONS,
      scope: { crossNode: true, sessions: true, enabled: new Set(OWED) },
      convergenceBoundMs: 10_000
    })
    const verdicts = result.verdicts.filter((v) => OWED.includes(v.id))
    const maxWaitMs = verdicts.find((v) => v.id === 'stall')?.value ?? 0
    const problems = verdicts.filter((v) => v.status === 'fail').flatMap((v) => [`${v.id}: ${v.figure}`, ...v.details.map((d) => `  ${d}`)])
    return {
      seed: options.seed,
      ok: problems.length === 0,
      verdicts,
      maxWaitMs,
      faults,
      acked: result.summary.acknowledged[1] + result.summary.acknowledged[2],
      deliveries: result.summary.deliveries,
      problems,
      ackMs: ackLatency(world),
      digest: createHash('sha256').update(JSON.stringify(world.history.events)).digest('hex').slice(0, 16)
    }
  } finally {
    await world.close()
  }
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function keepConnected (world: World, c: SimClient, random: Random, running: { on: boolean }, subQos: Qos | undefined): Promise<void> {
  let subscribed = false
  while (running.on) {
    if (c.socket === undefined) {
      const up = world.upNodes().map((n) => n.name)
      if (up.length === 0) { await sleep(100); continue }
      const target = pick(random, up)
      try {
        const present = await withTimeout(world.connect(c, target), 3000)
        if (subQos !== undefined && (!subscribed || !present || c.opts.clean)) {
          c.subscribe(TOPIC_FILTER, subQos)
          subscribed = true
        }
      } catch {
        c.drop()
      }
    }
    await sleep(randomInt(random, 20, 120))
  }
}

async function withTimeout<T> (p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error('timeout')), ms) })
  try {
    return await Promise.race([p, t])
  } finally {
    clearTimeout(timer)
  }
}

/** Injects one fault and undoes it after its hold; returns its description. */
async function inject (world: World, kind: string, random: Random, subs: SimClient[]): Promise<string> {
  const up = world.upNodes().map((n) => n.name)
  if (up.length < 2) return 'skip'
  const target = pick(random, up)
  const hold = randomInt(random, 500, 2500)
  switch (kind) {
    case 'kill':
      world.kill(target)
      await world.run(hold)
      await world.restart(target)
      return `kill ${target} ${hold} ms`
    case 'stop':
      await world.stopNode(target)
      await world.run(hold)
      await world.restart(target)
      return `stop ${target} ${hold} ms`
    case 'pause':
      world.pause(target)
      await world.run(hold)
      world.resume(target)
      return `pause ${target} ${hold} ms`
    case 'partition': {
      const side = shuffled(random, up).slice(0, Math.max(1, Math.floor(up.length / 2)))
      world.split(side)
      await world.run(hold)
      world.heal()
      return `partition ${side.join(',')} ${hold} ms`
    }
    case 'links': {
      const side = shuffled(random, up).slice(0, Math.max(1, Math.floor(up.length / 2)))
      world.cutLinks(side)
      await world.run(hold)
      world.restoreLinks()
      return `links ${side.join(',')} ${hold} ms`
    }
    case 'move': {
      // A subscriber's connection drops; it reconnects to another node.
      const s = pick(random, subs)
      s.drop()
      return `move ${s.opts.id}`
    }
    case 'takeover': {
      // The same client id connects on another node while connected: the older connection is closed.
      const s = pick(random, subs.filter((x) => x.connected))
      if (s === undefined) return 'skip'
      const other = pick(random, up.filter((n) => n !== s.node))
      if (other === undefined) return 'skip'
      s.drop()
      await world.drive(withTimeout(world.connect(s, other), 3000)).catch(() => s.drop())
      return `takeover ${s.opts.id} -> ${other}`
    }
  }
  return 'skip'
}

function ackLatency (world: World): { p50: number, p99: number, max: number } {
  const sent = new Map<string, number>()
  const lat: number[] = []
  for (const e of world.history.events) {
    if (e.type === 'publish' && e.qos > 0) sent.set(`${e.client}|${e.seq}`, e.t)
    else if (e.type === 'ack' && e.qos > 0) {
      const t = sent.get(`${e.client}|${e.seq}`)
      if (t !== undefined) lat.push(e.t - t)
    }
  }
  lat.sort((a, b) => a - b)
  const at = (q: number): number => lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!
  return { p50: at(0.5), p99: at(0.99), max: lat.at(-1) ?? 0 }
}
