// The chaos harness's public surface, for src/commands/chaos.ts and tests.
import type { ChaosOptions, ChaosResult } from './runner.js'
import type { LiveView } from './live-view.js'

export type { ChaosOptions, ChaosProgress, ChaosResult } from './runner.js'
export { checkHistory, DEFAULT_CHECK_OPTIONS, type CheckOptions, type CheckResult, type Verdict } from './checker.js'
export { DATA_PLANE_INTEGRATED, SESSIONS_CROSS_NODE, INVARIANTS, defaultScope, type InvariantId } from './invariants.js'
export { FAULT_KINDS, FAULT_DESCRIPTIONS, planSchedule, describeFault, type FaultKind, type PlannedFault } from './schedule.js'
export { History, type HistoryEvent } from './history.js'
export { parseDuration, parseFaults, parseNodes, parseSeed, checkFaultsForNodes } from './options.js'
export { formatReport, jsonReport, verdictTable } from './report.js'
export { convergenceBoundMs } from './cluster-config.js'

// The runner (mqtt.js, the launcher) and the live view (Ink, React) load only
// when a run starts, so `broker-ha --help` and the other subcommands stay quick.
export async function runChaos (options: ChaosOptions): Promise<ChaosResult> {
  const runner = await import('./runner.js')
  return await runner.runChaos(options)
}

export async function startLiveView (): Promise<LiveView> {
  const view = await import('./live-view.js')
  return view.startLiveView()
}
