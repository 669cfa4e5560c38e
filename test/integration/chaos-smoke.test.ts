// The CI chaos run: three real nodes, every fault kind at least once, real
// MQTT traffic, and the checker's verdict in the default scope (full):
// deliveries, retained sets, client ids and persistent sessions across
// nodes, no stall, membership.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runChaos, FAULT_KINDS, formatReport, planSchedule } from '../../src/chaos/index.js'
import { randomBaseAddress, alive } from '../helpers/chaos.js'

const SEED = 42
const DURATION_MS = 45_000

test('chaos smoke run: 3 nodes, every fault kind, every enforced invariant holds and nothing is left behind', { timeout: 180_000 }, async (t) => {
  // The plan for this seed covers every kind (the schedule tests show why it is stable).
  const plan = planSchedule({ seed: SEED, nodes: 3, durationMs: DURATION_MS, kinds: FAULT_KINDS })
  assert.deepEqual(new Set(plan.map((f) => f.kind)), new Set(FAULT_KINDS))
  const root = mkdtempSync(join(tmpdir(), 'chaos-smoke-'))
  try {
    const result = await runChaos({ nodes: 3, durationMs: DURATION_MS, faults: FAULT_KINDS, seed: SEED, runRoot: root, baseAddress: randomBaseAddress() })
    const report = formatReport(result)
    for (const line of report.split('\n')) t.diagnostic(line)
    assert.equal(result.interrupted, false)
    assert.deepEqual(result.crashes, [])
    const check = result.check!
    assert.ok(result.ok, report)
    // Every fault kind really happened.
    const started = new Set(result.events.filter((e) => e.type === 'fault-start').map((e) => (e as { kind: string }).kind))
    assert.deepEqual(started, new Set(FAULT_KINDS))
    // The run checked something: acknowledged messages were owed and counted, membership was judged after each fault.
    const lost = check.verdicts.find((v) => v.id === 'lost-acked')!
    assert.equal(lost.status, 'pass')
    assert.match(lost.figure, /^0 of (\d+)/)
    assert.ok(Number(/^0 of (\d+)/.exec(lost.figure)![1]) > 500, lost.figure)
    assert.equal(check.verdicts.find((v) => v.id === 'membership-convergence')!.status, 'pass')
    assert.ok(check.summary.deliveries > 1000)
    // Clean-up: no node process, no run folder.
    assert.ok(result.pids.length >= 3 + 2 + 3, 'restarts spawned new processes')
    assert.deepEqual(result.pids.filter(alive), [])
    assert.deepEqual(readdirSync(root), [])
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
})
