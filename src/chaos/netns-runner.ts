// The outer process of `broker-ha chaos --network netns`. Servers and traffic
// must stay inside namespaces the run creates, so this process only builds
// the namespaces, runs the real chaos command again inside the hub namespace
// (where the runner's MQTT clients and API calls reach every node over the
// bridge, as clients behind a Service would), relays its exit status (its
// output goes straight to our stdio), and removes the namespaces whatever
// happens: normal end, failure, Ctrl-C or SIGTERM.
//
// Signals: a Ctrl-C reaches both processes (one process group); the inner
// one ignores SIGINT and stops only on the SIGTERM we forward, so it sees
// exactly one stop request. A second signal here kills it outright (the
// nodes then exit when their stdin pipes close). If this process dies with
// -9, the inner one notices its fd 3 pipe closing and stops by itself; the
// namespaces are left and the next run sweeps them.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { constants } from 'node:os'
import { insideNamespace, layoutNamespaces, NetnsNetwork, INSIDE_NETNS_FLAG, type NetnsLayout } from './netns.js'
import { BROKER_BIN } from './launcher.js'

export interface NetnsRunOptions {
  layout: NetnsLayout
  /** Arguments of the chaos command itself (after `broker-ha`), without the hidden flag. */
  args: readonly string[]
  print: (line: string) => void
  bin?: string
}

/** Builds the namespaces, runs the chaos command in the hub, removes them; resolves with the exit status. */
export async function runInNamespaces (options: NetnsRunOptions): Promise<number> {
  const { layout, print } = options
  const network = new NetnsNetwork(layout)
  let child: ReturnType<typeof spawn> | undefined
  let signals = 0
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++
    if (child === undefined) return
    if (signals === 1) print(`${signal}: stopping the run in ${layout.hub}`)
    child.kill(signals === 1 ? 'SIGTERM' : 'SIGKILL')
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    await network.start()
    if (network.swept.length > 0) print(`removed namespaces left by earlier runs: ${network.swept.join(', ')}`)
    print(`network namespaces ${layout.runId}-*: hub ${layout.hub} (${layout.hubAddress}), ${layout.nodes.map((n) => `${n.namespace} ${n.address}`).join(', ')}`)
    if (signals > 0) return 130
    const command = [...insideNamespace(layout.hub), process.execPath, options.bin ?? BROKER_BIN, ...options.args, INSIDE_NETNS_FLAG, layout.runId]
    const started = spawn(command[0]!, command.slice(1), { stdio: ['inherit', 'inherit', 'inherit', 'pipe'] })
    child = started
    const [code, signal] = await once(started, 'exit') as [number | null, NodeJS.Signals | null]
    if (code !== null) return code
    return 128 + (signal === null ? 0 : constants.signals[signal] ?? 0)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (await network.stop()) print(`removed network namespaces ${layoutNamespaces(layout).join(', ')}`)
  }
}
