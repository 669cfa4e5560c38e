// The simulation in CI: seeded runs of a cluster with every fault kind
// (kill, graceful stop, pause, partition, cut peer links, client moves and
// client-id takeovers), each checked for what the data plane owes: no
// acknowledged QoS 1/2 message lost, no QoS 2 message twice, per-publisher
// order, no QoS 2 flow left without its PUBLISH's PUBREL, no persistent
// session lost, and no connected subscriber waiting more than 2 s for an
// owed message outside partitions, link cuts and pauses (src/chaos/checker.ts).
// One file per cluster size, so the two sizes run side by side.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { runScenario } from './scenario.js'

/** Seeds per cluster size; SIM_SEEDS overrides (a longer local sweep). */
const SEEDS = Number(process.env.SIM_SEEDS ?? 125)
/** Simulated time with faults per run (then the cluster heals and settles). */
const DURATION_MS = 2000
/** Each publisher's interval. */
const EVERY_MS = 20

export function sweep (nodes: number): void {
  const replay = `npm run sim -- --seeds N --nodes ${nodes} --duration ${DURATION_MS} --every ${EVERY_MS}`
  test(`${SEEDS} seeds of a ${nodes}-node cluster under every fault kind owe nothing (replay one: ${replay})`, async (t) => {
    const failed: string[] = []
    let acked = 0
    let maxWait = 0
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runScenario({ seed, nodes, durationMs: DURATION_MS, publishEveryMs: EVERY_MS })
      acked += r.acked
      maxWait = Math.max(maxWait, r.maxWaitMs)
      if (!r.ok) failed.push(`seed ${r.seed}: faults ${r.faults.join('; ')}\n${r.problems.slice(0, 12).join('\n')}`)
    }
    assert.deepEqual(failed, [], failed.join('\n\n'))
    // The runs did real work: messages were acknowledged and checked.
    assert.ok(acked > SEEDS * 50, `only ${acked} acknowledged messages in ${SEEDS} runs`)
    t.diagnostic(`${nodes} nodes: ${SEEDS} seeds, ${acked} acknowledged QoS 1/2 messages checked, longest wait of a connected subscriber ${maxWait} ms`)
  })
}
