// The chaos harness's public surface, for src/commands/chaos.ts and tests.
import type { ChaosOptions, ChaosResult } from './runner.js'
import type { LiveView } from './live-view.js'
import type { NetnsRunOptions } from './netns-runner.js'

export type { ChaosOptions, ChaosProgress, ChaosResult } from './runner.js'
export { checkHistory, DEFAULT_CHECK_OPTIONS, type CheckOptions, type CheckResult, type Verdict } from './checker.js'
export { INVARIANTS, defaultScope, type InvariantId } from './invariants.js'
export { FAULT_KINDS, NAMED_FAULT_KINDS, FAULT_DESCRIPTIONS, planSchedule, describeFault, type FaultKind, type PlannedFault } from './schedule.js'
export { History, type HistoryEvent } from './history.js'
export { parseDuration, parseFaults, parseNodes, parseSeed, parseNetwork, parseMergeTiming, checkFaultsForNodes, NETWORK_MODES, type NetworkMode } from './options.js'
export { formatReport, jsonReport, verdictTable, PARTITION_MECHANISM_TEXT } from './report.js'
export { netnsSupport, netnsLayout, netnsRunId, isNetnsRunId, INSIDE_NETNS_FLAG, type NetnsLayout } from './netns.js'
export type { NetnsRunOptions } from './netns-runner.js'
export { convergenceBoundMs, MERGE_TIMINGS, type MergeTiming } from './cluster-config.js'

// The runner (mqtt.js, the launcher) and the live view (Ink, React) load only
// when a run starts, so `broker-ha --help` and the other subcommands stay quick.
export async function runChaos (options: ChaosOptions): Promise<ChaosResult> {
  const runner = await import('./runner.js')
  return await runner.runChaos(options)
}

/** `--network netns`: builds the namespaces and runs the chaos command inside the hub (netns-runner.ts). */
export async function runChaosInNamespaces (options: NetnsRunOptions): Promise<number> {
  const outer = await import('./netns-runner.js')
  return await outer.runInNamespaces(options)
}

export async function startLiveView (): Promise<LiveView> {
  const view = await import('./live-view.js')
  return view.startLiveView()
}
