// The nemesis schedule, planned up front from the seed alone: the same seed,
// node count, duration and fault kinds give the same list of faults (kinds,
// targets, hold times, pauses between them). Execution may stretch the gaps
// (a fault starts only after the cluster recovered from the previous one),
// but never changes what is done to which node.
import { pick, randomInt, seededRandom, shuffled, type Random } from '../random.js'

/** The kinds `--faults all` runs. */
export const FAULT_KINDS = ['kill', 'stop', 'pause', 'restart', 'partition', 'links', 'gossip', 'udp'] as const
/**
 * Kinds run only when named: `restart-all` kills every node at once, which
 * only a cluster with storage survives (the launcher then gives every node
 * a storage.dir with storage.sync always).
 */
export const NAMED_FAULT_KINDS = ['restart-all', 'restart-all-late'] as const
export type FaultKind = typeof FAULT_KINDS[number] | typeof NAMED_FAULT_KINDS[number]

/** Kinds that split the cluster in two sides, so need two nodes at least. */
export const TWO_SIDED: readonly FaultKind[] = ['partition', 'links', 'gossip', 'udp']

export const FAULT_DESCRIPTIONS: Record<FaultKind, string> = {
  kill: 'kill -9 a node, restart it after the hold',
  stop: 'SIGTERM a node (graceful), restart it after the hold',
  pause: 'SIGSTOP a node, SIGCONT after the hold',
  restart: 'rolling restart of every node, one at a time',
  partition: 'split the cluster in two (gossip and data plane dropped between the sides), heal after the hold',
  links: 'cut the data-plane peer links between two sides (membership untouched), restore after the hold',
  gossip: 'drop the membership traffic between two sides (links stay up: false deaths), restore after the hold',
  udp: 'drop only the UDP between two sides (a firewall open for TCP only): nobody may be declared dead, restore after the hold',
  'restart-all': 'kill -9 every node, start them all after the hold (nodes get storage.dir, sync always; not part of all)',
  'restart-all-late': 'as restart-all, but one node comes back only after the others\' start window (storage.peers_wait): its sessions are taken over first (not part of all)'
}

export interface PlannedFault {
  id: number
  kind: FaultKind
  /** Node indices the fault acts on (for partition: one side; the rest is the other). */
  targets: number[]
  /** How long the fault lasts before it is undone (kill, stop, pause, partition, links). */
  holdMs: number
  /** Quiet time before the fault starts, after the previous one recovered. */
  gapMs: number
  /** restart-all-late: the node that comes back after the others' start window. */
  late?: number
  /** Nominal start, ms after the workloads started, assuming instant recovery. */
  at: number
}

export interface ScheduleOptions {
  seed: number
  nodes: number
  durationMs: number
  kinds: readonly FaultKind[]
  holdMs?: [number, number]
  gapMs?: [number, number]
  /** Quiet time at the start (workloads warm up) and at the end (the cluster settles). */
  warmupMs?: number
  cooldownMs?: number
}

/**
 * Rough time a fault takes besides its hold (restarts, convergence), so the
 * plan does not put more faults into the duration than fit.
 */
export function recoveryEstimateMs (kind: FaultKind, nodes: number): number {
  switch (kind) {
    case 'kill':
    case 'stop':
      return 2500
    case 'restart':
      return nodes * 3000
    case 'restart-all':
      return 6000
    case 'restart-all-late':
      return 14_000
    case 'partition':
      return 2500
    default:
      return 500
  }
}

/**
 * Hold and gap ranges by run length: a short (CI) run holds faults just long
 * enough for detection so that every kind fits; a long run holds them longer.
 */
export function defaultTimings (durationMs: number): { holdMs: [number, number], gapMs: [number, number] } {
  return durationMs < 90_000
    ? { holdMs: [1000, 2000], gapMs: [500, 1000] }
    : { holdMs: [2000, 6000], gapMs: [1000, 4000] }
}

export function planSchedule (options: ScheduleOptions): PlannedFault[] {
  const random: Random = seededRandom(options.seed)
  const timings = defaultTimings(options.durationMs)
  const [holdMin, holdMax] = options.holdMs ?? timings.holdMs
  const [gapMin, gapMax] = options.gapMs ?? timings.gapMs
  const warmup = options.warmupMs ?? 3000
  const end = options.durationMs - (options.cooldownMs ?? 3000)
  const kinds = options.kinds.filter((k) => options.nodes >= 2 || !TWO_SIDED.includes(k))
  if (kinds.length === 0) return []
  const plan: PlannedFault[] = []
  // First every kind once in a seeded order, so a short run still covers them all.
  const queue = shuffled(random, kinds)
  let at = warmup
  for (let id = 1; ; id++) {
    const kind = queue.length > 0 ? queue.shift()! : pick(random, kinds)
    const holdMs = kind === 'restart' ? 0 : randomInt(random, holdMin, holdMax)
    const gapMs = id === 1 ? 0 : randomInt(random, gapMin, gapMax)
    const targets = targetsFor(kind, options.nodes, random)
    const late = kind === 'restart-all-late' ? pick(random, targets) : undefined
    const start = at + gapMs
    const finish = start + holdMs + recoveryEstimateMs(kind, options.nodes)
    if (finish > end) break
    plan.push({ id, kind, targets, holdMs, gapMs, at: start, ...(late === undefined ? {} : { late }) })
    at = finish
  }
  return plan
}

function targetsFor (kind: FaultKind, nodes: number, random: Random): number[] {
  const all = Array.from({ length: nodes }, (_, i) => i)
  switch (kind) {
    case 'restart':
    case 'restart-all':
    case 'restart-all-late':
      return all
    case 'partition':
    case 'links':
    case 'gossip':
    case 'udp': {
      // A minority side of 1..floor(n/2) nodes; the majority keeps serving too (availability over refusal).
      const size = randomInt(random, 1, Math.max(1, Math.floor(nodes / 2)))
      return shuffled(random, all).slice(0, size).sort((a, b) => a - b)
    }
    default:
      return [pick(random, all)]
  }
}

/** One line per fault, for --dry-run and the report. */
export function describeFault (f: PlannedFault, names: readonly string[]): string {
  const who = f.targets.map((i) => names[i] ?? `#${i}`).join(',')
  switch (f.kind) {
    case 'partition': return `partition {${who}} | rest for ${f.holdMs} ms`
    case 'links': return `cut peer links of {${who}} for ${f.holdMs} ms`
    case 'gossip': return `drop membership traffic of {${who}} for ${f.holdMs} ms (links stay up)`
    case 'udp': return `drop UDP of {${who}} for ${f.holdMs} ms (TCP open)`
    case 'restart': return 'rolling restart of every node'
    case 'restart-all': return `kill -9 every node, start them all after ${f.holdMs} ms`
    case 'restart-all-late': return `kill -9 every node, start them after ${f.holdMs} ms, ${names[f.late ?? 0] ?? '?'} only after the others' start window`
    default: return `${f.kind} ${who} for ${f.holdMs} ms`
  }
}
