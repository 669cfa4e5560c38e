// One chaos run from start to verdict: launch the cluster, start the
// observer and the workloads, let the nemesis work through its plan, settle,
// take the final retained sets, check the history, and clean up whatever
// happens (also when aborted by Ctrl-C).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { History, type HistoryEvent, type NodeState } from './history.js'
import { ChaosCluster, type PartitionMechanism } from './launcher.js'
import type { NetnsLayout } from './netns.js'
import { PARTITION_MECHANISM_TEXT } from './report.js'
import { Observer } from './observer.js'
import { Nemesis } from './nemesis.js'
import { Workloads, RETAINED_FILTER } from './workloads.js'
import { planSchedule, describeFault, type FaultKind, type PlannedFault } from './schedule.js'
import { checkHistory, DEFAULT_CHECK_OPTIONS, type CheckResult } from './checker.js'
import { defaultScope } from './invariants.js'
import { convergenceBoundMs, type MergeTiming } from './cluster-config.js'
import { seededRandom } from '../random.js'

export interface ChaosOptions {
  nodes: number
  durationMs: number
  faults: readonly FaultKind[]
  seed: number
  /** Where run folders go (default ./.chaos-runs). */
  runRoot?: string
  /** Keep the run folder (configs, node logs) even when the run passed. */
  keep?: boolean
  /** First loopback address tried for nodes (default 127.0.0.2). */
  baseAddress?: string
  /** The broker-ha executable (default: this package's bin/broker-ha.js). */
  bin?: string
  /** Check guarantees across nodes (default true; false: `--scope node`). */
  dataPlane?: boolean
  /** Owe persistent sessions across nodes (default true; false: `--scope cluster`). */
  sessions?: boolean
  /** Every node gets durable storage (`--storage`; always with restart-all): a killed node restarts with its disk. */
  storage?: boolean
  /** Discovery re-resolution and push/pull of the nodes (`--merge-timing`, see MERGE_TIMINGS; default fast). */
  mergeTiming?: MergeTiming
  /**
   * Run the nodes in these (already built) network namespaces and make
   * partitions with blackhole routes; the caller must itself run inside the
   * layout's hub namespace to reach them. Default: loopback and the fault hook.
   */
  netns?: NetnsLayout
  signal?: AbortSignal
  /** Called on every change worth showing (live view, plain lines). */
  onProgress?: (progress: ChaosProgress, line?: string) => void
  /** Extra test hook: called once the cluster is up, with the process ids. */
  onLaunched?: (pids: number[], runDir: string) => void
}

export interface ChaosProgress {
  phase: 'starting' | 'running' | 'settling' | 'checking' | 'done' | 'interrupted'
  startedAt: number
  durationMs: number
  nodes: Array<{ name: string, host: string, state: NodeState, mqttPort: number }>
  fault: string | undefined
  faultsDone: number
  faultsTotal: number
  counters: { published: number, acked: number, failed: number, delivered: number, retained: number, connects: number }
}

export interface ChaosResult {
  /** Undefined when the run was interrupted before it could be checked. */
  check: CheckResult | undefined
  ok: boolean
  interrupted: boolean
  plan: PlannedFault[]
  planText: string[]
  /** Nodes that exited without being told to (crashes): always a failure. */
  crashes: string[]
  runDir: string
  kept: boolean
  convergenceBoundMs: number
  events: readonly HistoryEvent[]
  /** Every node process id the run spawned (all gone when runChaos returns). */
  pids: number[]
  /** Where the nodes ran and how partitions were made. */
  network: 'loopback' | 'netns'
  partitions: PartitionMechanism
}

export function runFolderName (seed: number, now = new Date()): string {
  return `${now.toISOString().replace(/[:.]/g, '-')}-seed${seed}`
}

export async function runChaos (options: ChaosOptions): Promise<ChaosResult> {
  const signal = options.signal ?? new AbortController().signal
  const dataPlane = options.dataPlane ?? true
  const runDir = resolve(options.runRoot ?? '.chaos-runs', runFolderName(options.seed))
  mkdirSync(runDir, { recursive: true })
  const history = new History()
  const plan = planSchedule({ seed: options.seed, nodes: options.nodes, durationMs: options.durationMs, kinds: options.faults })
  const bound = convergenceBoundMs(options.nodes)
  const crashes: string[] = []
  const progress: ChaosProgress = {
    phase: 'starting',
    startedAt: Date.now(),
    durationMs: options.durationMs,
    nodes: [],
    fault: undefined,
    faultsDone: 0,
    faultsTotal: plan.length,
    counters: { published: 0, acked: 0, failed: 0, delivered: 0, retained: 0, connects: 0 }
  }
  const emit = (line?: string): void => options.onProgress?.(progress, line)
  history.onEvent((e) => {
    const c = progress.counters
    if (e.type === 'publish') c.published++
    else if (e.type === 'ack') c.acked++
    else if (e.type === 'publish-failed') c.failed++
    else if (e.type === 'deliver') c.delivered++
    else if (e.type === 'retained') c.retained++
    else if (e.type === 'connect') c.connects++
  })

  const restartsAll = options.faults.includes('restart-all') || options.faults.includes('restart-all-late')
  const cluster = new ChaosCluster({
    nodes: options.nodes,
    runDir,
    baseAddress: options.baseAddress,
    bin: options.bin,
    netns: options.netns,
    storage: options.storage === true || restartsAll,
    ...(options.mergeTiming === undefined ? {} : { mergeTiming: options.mergeTiming }),
    // restart-all starts every node at once, each reading and verifying its store: on a
    // small shared machine that takes longer than one node's start.
    ...(restartsAll ? { startTimeoutMs: 60_000 } : {}),
    onState: (node, state) => {
      history.record({ type: 'node', node: node.name, state })
      const shown = progress.nodes.find((n) => n.name === node.name)
      if (shown !== undefined) shown.state = state
      emit(`${node.name} (${node.host}) ${state}`)
    },
    onUnexpectedExit: (node, code, sig) => {
      crashes.push(`${node.name} exited on its own (${sig ?? `code ${code}`}), see ${node.logPath}`)
      emit(`${node.name} EXITED UNEXPECTEDLY (${sig ?? `code ${code}`})`)
    }
  })
  const observer = new Observer({ nodes: cluster.nodes, history })
  let workloads: Workloads | undefined
  let check: CheckResult | undefined
  let interrupted = false
  const waitConverged = async (timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs
    while (!signal.aborted && Date.now() < deadline) {
      if (observer.converged()) return true
      await sleep(100)
    }
    return observer.converged()
  }
  try {
    emit(`starting ${options.nodes} nodes in ${runDir}; partitions: ${PARTITION_MECHANISM_TEXT[cluster.partitionMechanism]}`)
    await cluster.start()
    progress.nodes = cluster.nodes.map((n) => ({ name: n.name, host: n.host, state: n.state, mqttPort: n.mqttPort }))
    options.onLaunched?.(cluster.livePids(), runDir)
    observer.start()
    if (!await waitConverged(30_000)) {
      if (signal.aborted) throw new Interrupted()
      throw new Error(`the cluster did not form within 30 s (logs in ${runDir})`)
    }
    history.record({ type: 'run-start', seed: options.seed, nodes: cluster.nodes.map((n) => n.name), faults: [...options.faults], durationMs: options.durationMs })
    workloads = new Workloads({ history, nodes: cluster.nodes, crossNode: dataPlane, random: seededRandom(options.seed ^ 0x5eed) })
    workloads.startSubscribers()
    await waitUntil(() => workloads!.subscribers.every((s) => s.connectedTo !== undefined), 10_000, signal)
    workloads.startWriters()
    progress.phase = 'running'
    progress.startedAt = Date.now()
    emit(`workloads running; ${plan.length} faults planned (seed ${options.seed})`)
    const nemesis = new Nemesis({
      cluster,
      history,
      plan,
      signal,
      waitRecovered: async () => { await waitConverged(bound) },
      onFault: (f, description) => {
        progress.fault = f === undefined ? undefined : description
        progress.faultsDone = nemesis.done + (f === undefined ? 1 : 0)
        emit(f === undefined ? description : `fault #${f.id}: ${description}`)
      }
    })
    const t0 = Date.now()
    const ticker = setInterval(() => emit(), 1000)
    try {
      await Promise.all([nemesis.run(t0, t0 + options.durationMs), abortableSleep(options.durationMs, signal)])
    } finally {
      clearInterval(ticker)
    }
    if (signal.aborted) throw new Interrupted()

    progress.phase = 'settling'
    progress.fault = undefined
    emit('settling: waiting for membership to converge, stopping writers, draining deliveries')
    await cluster.setFaults().catch(() => {})
    for (const n of cluster.nodes) if (n.state === 'paused') cluster.resume(n.index)
    await waitConverged(bound)
    await workloads.stopWriters()
    await drain(history, signal)
    for (const n of cluster.nodes) {
      let topics: Record<string, string> | null = null
      if (n.state === 'up') {
        try {
          topics = {}
          for (const m of await n.api.topicMessages(RETAINED_FILTER)) topics[m.TopicName] = Buffer.from(m.Payload, 'base64').toString()
        } catch { topics = null }
      }
      history.record({ type: 'retained-final', node: n.name, topics })
    }
    await workloads.stopSubscribers()
    await observer.stop()
    history.record({ type: 'run-end' })
    if (signal.aborted) throw new Interrupted()

    progress.phase = 'checking'
    emit()
    check = checkHistory(history.events, { ...DEFAULT_CHECK_OPTIONS, scope: defaultScope(dataPlane, options.sessions), convergenceBoundMs: bound })
  } catch (err) {
    // A failed start keeps its folder (the node logs say why); the finally below stops the processes.
    if (!(err instanceof Interrupted) && !signal.aborted) throw err
    interrupted = true
  } finally {
    // Everything started is stopped, whatever happened above.
    await Promise.allSettled([workloads?.stopWriters(), workloads?.stopSubscribers(), observer.stop()])
    await cluster.stop()
  }
  const ok = !interrupted && check !== undefined && check.ok && crashes.length === 0
  const kept = options.keep === true || (!ok && !interrupted)
  if (!kept) rmSync(runDir, { recursive: true, force: true })
  else writeFileSync(join(runDir, 'history.jsonl'), history.events.map((e) => JSON.stringify(e)).join('\n') + '\n')
  progress.phase = interrupted ? 'interrupted' : 'done'
  emit()
  return {
    check,
    ok,
    interrupted,
    plan,
    planText: plan.map((f) => `#${f.id} +${(f.at / 1000).toFixed(1)}s ${describeFault(f, cluster.nodes.map((n) => n.name))}`),
    crashes,
    runDir,
    kept,
    convergenceBoundMs: bound,
    events: history.events,
    pids: [...cluster.spawned],
    network: options.netns === undefined ? 'loopback' : 'netns',
    partitions: cluster.partitionMechanism
  }

}

class Interrupted extends Error {}

async function abortableSleep (ms: number, signal: AbortSignal): Promise<void> {
  try { await sleep(ms, undefined, { signal }) } catch { /* aborted */ }
}

async function waitUntil (condition: () => boolean, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition() && Date.now() < deadline && !signal.aborted) await sleep(50)
}

/** Waits until no delivery arrived for a second (at most 5 s), so late deliveries are not counted lost. */
async function drain (history: History, signal: AbortSignal): Promise<void> {
  let last = Date.now()
  const off = history.onEvent((e) => { if (e.type === 'deliver') last = Date.now() })
  const deadline = Date.now() + 5000
  try {
    while (Date.now() - last < 1000 && Date.now() < deadline && !signal.aborted) await sleep(100)
  } finally {
    off()
  }
}
