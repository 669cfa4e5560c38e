// Observing membership in cluster integration tests. Child-process nodes are
// watched through their JSON logs (each state change is logged at info with
// the member name), in-process nodes through node.membership directly.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ProcessNode, ConfigOverrides } from './node.js'
import { startProcessNode } from './node.js'
import { freeLoopbackAddress } from './loopback.js'
import { waitFor } from './wait.js'
import { afterEach } from 'node:test'
import type { MqttClient } from 'mqtt'
import type { MemberState } from '../../src/server/cluster/membership/membership.js'

export interface MemberLogEvent { time: number, state: MemberState, member: string, msg: string }

const STATE_OF_MSG: Record<string, MemberState> = {
  'cluster member joined': 'alive',
  'cluster member alive again': 'alive',
  'cluster member suspected': 'suspect',
  'cluster member dead': 'dead',
  'cluster member left': 'left'
}

export function logLines (node: ProcessNode): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = []
  for (const line of node.output().split('\n')) {
    if (!line.startsWith('{')) continue
    try { out.push(JSON.parse(line) as Record<string, unknown>) } catch { /* partial line */ }
  }
  return out
}

export function memberEvents (node: ProcessNode): MemberLogEvent[] {
  const out: MemberLogEvent[] = []
  for (const j of logLines(node)) {
    const state = STATE_OF_MSG[String(j.msg)]
    if (state !== undefined && typeof j.member === 'string') out.push({ time: Number(j.time), state, member: j.member, msg: String(j.msg) })
  }
  return out
}

/** What `node` currently believes about each other member, from its log. */
export function viewOf (node: ProcessNode): Map<string, MemberState> {
  const view = new Map<string, MemberState>()
  for (const e of memberEvents(node)) view.set(e.member, e.state)
  return view
}

export const nameOf = (node: { host: string }): string => `node-${node.host}`

/** Waits until every observer sees every one of `targets` in `state`. */
export async function waitForView (observers: ProcessNode[], targets: Array<{ host: string }>, state: MemberState, timeout: number): Promise<void> {
  await waitFor(() => observers.every((o) => targets.every((t) => t.host === o.host || viewOf(o).get(nameOf(t)) === state)), {
    timeout,
    message: `${targets.map(nameOf).join(', ')} ${state} on ${observers.map(nameOf).join(', ')}`
  })
}

/** Starts `n` nodes as child processes that find each other through a shared seed list. */
export async function startProcessCluster (n: number, overrides: ConfigOverrides = {}, options: { env?: Record<string, string> } = {}): Promise<ProcessNode[]> {
  const hosts: string[] = []
  for (let i = 0; i < n; i++) hosts.push(await freeLoopbackAddress())
  const seeds = hosts.map((h) => `${h}:7946`)
  const withSeeds = { ...overrides, discovery: { seeds, formation_wait_min: 200, formation_wait_max: 800, resolve_interval: 1000, ...overrides.discovery } }
  const nodes = await Promise.all(hosts.map((host) => startProcessNode(withSeeds, { host, ...(options.env === undefined ? {} : { env: options.env }) })))
  try {
    await waitForView(nodes, nodes, 'alive', 15_000)
  } catch (err) {
    await Promise.all(nodes.map((node) => node.stop('SIGKILL')))
    throw err
  }
  return nodes
}

/** Fast timings for tests that do not measure the defaults (LOCAL-like profile). */
export const FAST = { probe_interval: 200, probe_timeout: 100, gossip_interval: 50, suspicion_mult: 3, push_pull_interval: 5000, tcp_timeout: 1000 }

/** What a test's `t.after` takes. */
export interface AfterHook { after: (fn: () => void | Promise<void>) => void }

/**
 * Three `broker-ha serve` processes seeding each other, each storing in its
 * own directory (`storage.sync: always`), removed after the test; `cluster`
 * is merged into each node's `cluster` config, `storage` into its storage. `start(i)` starts node i again
 * on its address and directory (after a kill) and puts it in `nodes`.
 */
export async function startStoringCluster (t: AfterHook, cluster: ConfigOverrides['cluster'], storage: ConfigOverrides['storage'] = {}): Promise<{ nodes: ProcessNode[], dirs: string[], start: (i: number) => Promise<ProcessNode> }> {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const dirs = hosts.map(() => {
    const dir = mkdtempSync(join(tmpdir(), 'broker-ha-storing-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    return dir
  })
  const seeds = hosts.map((h) => `${h}:7946`)
  const overridesOf = (i: number): ConfigOverrides => ({
    storage: { dir: dirs[i]!, sync: 'always', ...storage },
    discovery: { seeds, formation_wait_min: 200, formation_wait_max: 800, resolve_interval: 1000 },
    cluster
  })
  const nodes: ProcessNode[] = await Promise.all(hosts.map(async (host, i) => await startProcessNode(overridesOf(i), { host })))
  t.after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })
  await waitForView(nodes, nodes, 'alive', 20_000)
  return { nodes, dirs, start: async (i) => { nodes[i] = await startProcessNode(overridesOf(i), { host: hosts[i] }); return nodes[i] } }
}

/**
 * Encrypted process clusters, one per test of the calling file: `start(n)`
 * starts n nodes (FAST timings, a cluster key). After each test its nodes
 * are SIGKILLed (a SIGSTOPped one too) and the clients pushed into
 * `clients` are ended. Call at the top level of a test file.
 */
export function keyedClusterPerTest (): { start: (n: number) => Promise<ProcessNode[]>, clients: MqttClient[] } {
  const key = '0123456789abcdef0123456789abcdef'
  let nodes: ProcessNode[] = []
  const clients: MqttClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {})
    await Promise.all(nodes.splice(0).map(async (n) => await n.stop('SIGKILL')))
  })
  return { clients, start: async (n) => (nodes = await startProcessCluster(n, { cluster: { config: { ...FAST, secret_key: key } } })) }
}
