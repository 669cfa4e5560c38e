// Runs simulated scenarios from the command line: a range of seeds, or one
// seed again with the nodes' logs (SIM_LOG=debug) to see what happened.
//
//   npm run sim -- [--seeds 1-200] [--nodes 3] [--faults kill,stop] [--duration 6000] [--every 10]
//                  [--persistent 3] [--publishers 2]
import { parseArgs } from 'node:util'
import { runScenario, FAULTS, type SimFault } from '../test/sim/scenario.js'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1-20' },
    nodes: { type: 'string', default: '3' },
    faults: { type: 'string', default: FAULTS.join(',') },
    duration: { type: 'string', default: '6000' },
    every: { type: 'string', default: '10' },
    persistent: { type: 'string', default: '3' },
    publishers: { type: 'string', default: '2' },
    verbose: { type: 'boolean', default: false }
  }
})
const [from, to] = values.seeds.split('-').map(Number) as [number, number?]
let failed = 0
const started = Date.now()
for (let seed = from; seed <= (to ?? from); seed++) {
  const t0 = Date.now()
  const r = await runScenario({ seed, nodes: Number(values.nodes), faults: values.faults.split(',') as SimFault[], durationMs: Number(values.duration), publishEveryMs: Number(values.every), persistentSubscribers: Number(values.persistent), publishers: Number(values.publishers) })
  if (!r.ok) failed++
  console.log(`seed ${seed}: ${r.ok ? 'ok  ' : 'FAIL'} acked ${r.acked} deliveries ${r.deliveries} max wait ${r.maxWaitMs} ms ack p50/p99/max ${r.ackMs.p50}/${r.ackMs.p99}/${r.ackMs.max} ms history ${r.digest} (${Date.now() - t0} ms real)`)
  if (!r.ok || values.verbose) {
    console.log(`  faults: ${r.faults.join('; ')}`)
    for (const p of r.problems) console.log(`  ${p}`)
  }
}
console.log(`${failed} of ${(to ?? from) - from + 1} seeds failed in ${Date.now() - started} ms`)
process.exitCode = failed > 0 ? 1 : 0
