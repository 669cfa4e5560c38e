// `broker-ha chaos`: start a local cluster of real nodes, break it on a
// seeded schedule while MQTT traffic flows, and check the guarantees.
// Exit status: 0 every enforced invariant held, 1 one failed (or a node
// crashed), 2 bad usage, 130 interrupted. With --network netns the process
// started by the user builds the namespaces and runs this same command again
// inside the hub namespace (hidden --inside-netns), relaying its status.
import { Command, Option } from 'commander'
import { writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { resolve } from 'node:path'
import { randomInt } from 'node:crypto'
import {
  runChaos, parseDuration, parseFaults, parseNodes, parseSeed, parseNetwork, parseMergeTiming, checkFaultsForNodes, MERGE_TIMINGS,
  runChaosInNamespaces, netnsSupport, netnsLayout, netnsRunId, isNetnsRunId, INSIDE_NETNS_FLAG, NETWORK_MODES,
  planSchedule, describeFault, formatReport, jsonReport, startLiveView, FAULT_KINDS, NAMED_FAULT_KINDS, FAULT_DESCRIPTIONS,
  type ChaosProgress
} from '../chaos/index.js'
import { BrokerHaError } from '../errors.js'
import { didYouMean } from '../did-you-mean.js'
import { letInkDrawOnThisTerminal } from './interactive-terminal.js'

const SCOPES = ['node', 'cluster', 'full'] as const
/** What the broker guarantees today decides what a run owes by default. */
const DEFAULT_SCOPE = 'full'

interface ChaosFlags {
  nodes: number
  duration: string
  faults: string
  seed?: string
  ci?: boolean
  json?: string
  history?: string
  keep?: boolean
  dryRun?: boolean
  baseAddress?: string
  scope?: string
  network: string
  storage?: boolean
  mergeTiming: string
  insideNetns?: string
}

export function chaosCommand (): Command {
  return new Command('chaos')
    .description('start a local cluster, inject failures and check the guarantees')
    .option('-n, --nodes <n>', 'nodes to start (real processes on loopback)', parseNodes, 3)
    .option('-d, --duration <time>', 'how long the workloads run (e.g. 60s, 10m)', '60s')
    .option('-f, --faults <list>', `comma-separated: ${[...FAULT_KINDS, ...NAMED_FAULT_KINDS].join(', ')} (or all: every kind but ${NAMED_FAULT_KINDS.join(', ')})`, 'all')
    .option('-s, --seed <n>', 'seed of the fault schedule and workload choices (default: random, printed)')
    .option('--ci', 'plain line output even on a terminal')
    .option('--json <file>', 'write the verdicts and history summary as JSON')
    .option('--history <file>', 'write the whole history as JSON lines')
    .option('--keep', 'keep the run folder (configs, node logs) even when the run passed')
    .option('--dry-run', 'print the fault schedule for this seed and exit')
    .option('--base-address <ip>', 'first loopback address tried for the nodes (Linux)', '127.0.0.2')
    .option('--scope <scope>', `what is owed: node (deliveries within one node), cluster (across nodes; persistent sessions per node) or full (every invariant, sessions across nodes too); default ${DEFAULT_SCOPE}`)
    .option('--storage', 'give every node durable storage (storage.dir in the run folder, sync always) even without restart-all: kill and stop then restart a node with its disk')
    .option('--merge-timing <timing>', `${MERGE_TIMINGS.join(', ')}: fast re-resolves the seeds every second and runs push/pull every 2 s, as a small local cluster; default leaves both at the serve defaults (30 s), as in production, so a healed partition must merge by the nodes' own means within the same bound`, 'fast')
    .option('--network <mode>', `${NETWORK_MODES.join(', ')}: where nodes run and how partitions are made; netns (root on Linux, iproute2) runs each node in its own network namespace and partitions with blackhole routes; auto picks netns when it can`, 'loopback')
    // Set by the --network netns outer process when it re-runs the command inside the hub namespace.
    .addOption(new Option(`${INSIDE_NETNS_FLAG} <run-id>`).hideHelp())
    .addHelpText('after', `\nFaults:\n${[...FAULT_KINDS, ...NAMED_FAULT_KINDS].map((k) => `  ${k.padEnd(17)} ${FAULT_DESCRIPTIONS[k]}`).join('\n')}\n`)
    .action(async (flags: ChaosFlags) => {
      const nodes = flags.nodes
      const durationMs = parseDuration(flags.duration)
      const faults = parseFaults(flags.faults)
      checkFaultsForNodes(faults, nodes)
      const scope = flags.scope ?? DEFAULT_SCOPE
      if (!(SCOPES as readonly string[]).includes(scope)) throw new BrokerHaError('USAGE', `--scope: ${SCOPES.join(', ')}; got ${scope}${didYouMean(scope, SCOPES)}`, { key: '--scope' })
      const dataPlane = scope !== 'node'
      const sessions = scope === 'full'
      const seed = flags.seed === undefined ? randomInt(0, 2 ** 31) : parseSeed(flags.seed)
      const network = parseNetwork(flags.network)
      const mergeTiming = parseMergeTiming(flags.mergeTiming)
      const inside = flags.insideNetns
      if (inside !== undefined && (!isNetnsRunId(inside) || network !== 'netns')) throw new BrokerHaError('USAGE', `${INSIDE_NETNS_FLAG} is internal to --network netns`, { key: INSIDE_NETNS_FLAG })
      if (flags.dryRun === true) {
        const names = Array.from({ length: nodes }, (_, i) => `chaos-${i + 1}`)
        for (const f of planSchedule({ seed, nodes, durationMs, kinds: faults })) {
          process.stdout.write(`#${f.id} +${(f.at / 1000).toFixed(1)}s ${describeFault(f, names)}\n`)
        }
        return
      }
      const print = (line: string): void => { process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`) }
      if (inside === undefined && network !== 'loopback') {
        const support = await netnsSupport()
        if (support.ok) {
          // The run itself happens in a second process inside the hub namespace: same choices, seed resolved, paths absolute.
          const args = ['chaos', '--nodes', String(nodes), '--duration', `${durationMs}ms`, '--faults', faults.join(',') || 'none', '--seed', String(seed), '--scope', scope, '--network', 'netns']
          if (flags.ci === true) args.push('--ci')
          if (flags.keep === true) args.push('--keep')
          if (flags.storage === true) args.push('--storage')
          args.push('--merge-timing', mergeTiming)
          if (flags.json !== undefined) args.push('--json', resolve(flags.json))
          if (flags.history !== undefined) args.push('--history', resolve(flags.history))
          process.exitCode = await runChaosInNamespaces({ layout: netnsLayout(netnsRunId(process.pid), nodes), args, print })
          return
        }
        if (network === 'netns') throw new BrokerHaError('USAGE', `--network netns: ${support.reason}`, { key: '--network' })
        print(`--network auto: netns not possible (${support.reason}); nodes on loopback, partitions by the in-process fault hook`)
      }
      const live = flags.ci !== true && process.stdout.isTTY === true
      if (live) letInkDrawOnThisTerminal()
      const view = live ? await startLiveView() : undefined
      let lastCounters = 0
      const onProgress = (p: ChaosProgress, line?: string): void => {
        if (view !== undefined) { view.update(p, line); return }
        if (line !== undefined) print(line)
        else if (p.phase === 'running' && Date.now() - lastCounters >= 5000) {
          lastCounters = Date.now()
          const c = p.counters
          print(`${Math.floor((Date.now() - p.startedAt) / 1000)}s faults ${p.faultsDone}/${p.faultsTotal} published ${c.published} acked ${c.acked} unacked ${c.failed} delivered ${c.delivered}`)
        }
      }
      const abort = new AbortController()
      const onSignal = (signal: NodeJS.Signals): void => {
        // A second Ctrl-C does not wait for the clean-up; the nodes still exit when our pipes close.
        if (abort.signal.aborted) process.exit(130)
        process.stderr.write(`\nbroker-ha chaos: ${signal}, stopping every node\n`)
        abort.abort()
      }
      // Inside the hub namespace a Ctrl-C reaches us and the outer process alike; only the SIGTERM it forwards counts, so one Ctrl-C is one stop request.
      const ignore = (): void => {}
      process.on('SIGINT', inside === undefined ? onSignal : ignore)
      process.on('SIGTERM', onSignal)
      const outer = inside === undefined ? undefined : watchOuterProcess(() => onSignal('SIGTERM'))
      const storage = flags.storage === true || faults.includes('restart-all')
      if (view === undefined) print(`broker-ha chaos: ${nodes} nodes, ${durationMs / 1000} s, faults ${faults.join(',') || 'none'}, seed ${seed}, scope ${scope}, network ${inside !== undefined ? 'netns' : 'loopback'}${storage ? ', storage' : ''}${mergeTiming === 'fast' ? '' : `, merge timing ${mergeTiming}`}`)
      let result
      try {
        result = await runChaos({ nodes, durationMs, faults, seed, keep: flags.keep, baseAddress: flags.baseAddress, dataPlane, sessions, storage, mergeTiming, signal: abort.signal, onProgress, netns: inside === undefined ? undefined : netnsLayout(inside, nodes) })
      } finally {
        view?.stop()
        outer?.()
        process.off('SIGINT', inside === undefined ? onSignal : ignore)
        process.off('SIGTERM', onSignal)
      }
      process.stdout.write(`\n${formatReport(result)}\nseed ${seed} (same seed, same fault schedule)\n`)
      if (flags.json !== undefined) writeFileSync(flags.json, JSON.stringify(jsonReport(result, { seed, nodes, durationMs, faults, scope, storage, mergeTiming }), null, 2) + '\n')
      if (flags.history !== undefined) writeFileSync(flags.history, result.events.map((e) => JSON.stringify(e)).join('\n') + '\n')
      process.exitCode = result.interrupted ? 130 : result.ok ? 0 : 1
    })
}

/**
 * Inside the hub namespace: the outer process holds the other end of a pipe
 * on our fd 3. When it closes (outer killed with -9), stop as on SIGTERM, so
 * no run outlives the process that removes its namespaces.
 */
function watchOuterProcess (onGone: () => void): (() => void) | undefined {
  try {
    const pipe = new Socket({ fd: 3, readable: true, writable: false })
    pipe.on('error', () => {})
    pipe.once('close', onGone)
    pipe.resume()
    pipe.unref()
    return () => { pipe.off('close', onGone); pipe.destroy() }
  } catch {
    return undefined
  }
}
