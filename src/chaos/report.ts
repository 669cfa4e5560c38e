// The end of a run in words: the invariant table (plain text, the same in a
// terminal and in CI logs) and the JSON report for --json.
import { INVARIANTS } from './invariants.js'
import type { ChaosResult } from './runner.js'
import type { PartitionMechanism } from './launcher.js'
import type { Verdict } from './checker.js'

/** How a run made its partitions, in words. */
export const PARTITION_MECHANISM_TEXT: Record<PartitionMechanism, string> = {
  'fault-hook': 'in-process fault hook (nodes on loopback)',
  'netns-routes': 'blackhole routes between network namespaces'
}

const RESULT_TEXT: Record<Verdict['status'], string> = { pass: 'PASS', fail: 'FAIL', skip: 'skip', info: 'info' }

/** Pads cells to the widest in each column. */
export function formatTable (rows: readonly string[][]): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map((row) => row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

export function verdictTable (verdicts: readonly Verdict[]): string {
  const design = new Map<string, number>(INVARIANTS.map((i) => [i.id, i.design]))
  const rows = [['inv', 'check', 'figure', 'result']]
  for (const v of verdicts) {
    const d = design.get(v.id) ?? 0
    rows.push([d === 0 ? '-' : String(d), v.title, v.figure, RESULT_TEXT[v.status]])
  }
  return formatTable(rows)
}

/** The closing text of a run: table, failure details, counts, where the logs are. */
export function formatReport (result: ChaosResult): string {
  const out: string[] = []
  if (result.interrupted) {
    out.push('chaos run interrupted: nothing checked; every node process was stopped')
    return out.join('\n')
  }
  const check = result.check!
  out.push(verdictTable(check.verdicts))
  for (const v of check.verdicts) {
    if ((v.status === 'fail' || v.status === 'skip') && v.details.length > 0) {
      out.push('', `${v.status === 'fail' ? 'FAILED' : 'not enforced yet'}: ${v.title}`)
      for (const d of v.details.slice(0, v.status === 'fail' ? 10 : 3)) out.push(`  - ${d}`)
    }
  }
  for (const c of result.crashes) out.push('', `CRASH: ${c}`)
  const s = check.summary
  out.push('',
    `faults: ${Object.entries(s.faults).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}; ` +
    `published ${s.published[0]}/${s.published[1]}/${s.published[2]} (QoS 0/1/2), acknowledged ${s.acknowledged[0]}/${s.acknowledged[1]}/${s.acknowledged[2]}, ` +
    `unacknowledged ${s.publishFailed}, deliveries ${s.deliveries}, connections ${s.connections}, retained ops ${s.retainedOps}, ${(s.durationMs / 1000).toFixed(0)} s`)
  out.push(`network: ${result.network}; partitions: ${PARTITION_MECHANISM_TEXT[result.partitions]}`)
  out.push(result.ok ? 'chaos: every enforced invariant held' : 'chaos: FAILED')
  if (result.kept) out.push(`run folder (configs, node logs, history.jsonl): ${result.runDir}`)
  return out.join('\n')
}

/** The run's flags: with the seed, what reruns it (`--scope`, `--storage`, `--merge-timing` change what it does). */
export interface JsonReportContext { seed: number, nodes: number, durationMs: number, faults: readonly string[], scope: string, storage: boolean, mergeTiming: string }

/** What --json writes: the run's parameters, plan, verdicts and history summary. */
export function jsonReport (result: ChaosResult, ctx: JsonReportContext): Record<string, unknown> {
  return {
    ok: result.ok,
    interrupted: result.interrupted,
    seed: ctx.seed,
    nodes: ctx.nodes,
    duration_ms: ctx.durationMs,
    faults: ctx.faults,
    scope: ctx.scope,
    storage: ctx.storage,
    merge_timing: ctx.mergeTiming,
    plan: result.planText,
    network: result.network,
    partitions: result.partitions,
    convergence_bound_ms: result.convergenceBoundMs,
    invariants: result.check?.verdicts ?? [],
    summary: result.check?.summary ?? null,
    crashes: result.crashes,
    run_dir: result.kept ? result.runDir : null
  }
}
