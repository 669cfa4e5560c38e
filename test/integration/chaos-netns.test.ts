// `broker-ha chaos --network netns`: real partitions. Each node runs in its
// own network namespace, partitions are blackhole routes, and the runner's
// clients reach the nodes from a hub namespace. Needs root on Linux with
// iproute2 and `ip netns add` allowed; skipped with the reason otherwise.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { alive, childrenOf } from '../helpers/chaos.js'
import { netnsSupport } from '../../src/chaos/netns.js'
import type { HistoryEvent } from '../../src/chaos/history.js'

const support = await netnsSupport()
const skip = support.ok ? false : `network namespaces not available: ${support.reason}`

const namespaces = (): string[] => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n !== '')
const ofRun = (pid: number): string[] => namespaces().filter((n) => n.startsWith(`bhchaos-${pid}-`))

function startRunner (cwd: string, args: string[]) {
  const child = spawn(process.execPath, [BIN, 'chaos', '--network', 'netns', '--ci', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>
  return { child, pid: child.pid!, exited, output: () => output }
}

/** Views recorded by a node of one side that call a node of the other side suspect or dead. */
function crossViews (events: readonly HistoryEvent[], from: ReadonlySet<string>, to: ReadonlySet<string>, t0: number, t1: number): string[] {
  const out: string[] = []
  for (const e of events) {
    if (e.type !== 'view' || e.members === null || e.t < t0 || e.t > t1 || !from.has(e.node)) continue
    for (const [peer, state] of Object.entries(e.members)) if (to.has(peer) && (state === 'suspect' || state === 'dead')) out.push(`${e.node} saw ${peer} ${state}`)
  }
  return out
}

test('a netns run partitions with routes, the sides see each other fail, and every namespace is removed', { skip, timeout: 60_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'chaos-netns-'))
  // A namespace left by a runner that died with -9: its owner pid is gone (an exited child of ours).
  const gone = spawnSync(process.execPath, ['-e', '']).pid
  const stale = `bhchaos-${gone}-hub`
  execFileSync('ip', ['netns', 'add', stale])
  try {
    const runner = startRunner(cwd, ['--nodes', '3', '--duration', '15s', '--faults', 'partition', '--seed', '7', '--json', 'run.json', '--history', 'history.jsonl'])
    await waitFor(() => runner.output().includes('workloads running') || runner.child.exitCode !== null, { timeout: 20_000, message: 'nodes up in their namespaces' })
    // Hub plus one namespace per node, named after the outer runner's pid.
    assert.deepEqual(ofRun(runner.pid).sort(), [`bhchaos-${runner.pid}-hub`, `bhchaos-${runner.pid}-n1`, `bhchaos-${runner.pid}-n2`, `bhchaos-${runner.pid}-n3`], runner.output())
    assert.ok(!namespaces().includes(stale), 'the stale namespace was swept')
    const [code] = await runner.exited
    assert.equal(code, 0, runner.output())
    assert.match(runner.output(), new RegExp(`removed namespaces left by earlier runs: .*\\b${stale}\\b`))
    assert.match(runner.output(), /network: netns; partitions: blackhole routes between network namespaces/)

    const report = JSON.parse(readFileSync(join(cwd, 'run.json'), 'utf8')) as { ok: boolean, network: string, partitions: string, summary: { faults: Record<string, number> } }
    assert.equal(report.ok, true)
    assert.equal(report.network, 'netns')
    assert.equal(report.partitions, 'netns-routes')
    assert.ok(report.summary.faults.partition! >= 1, JSON.stringify(report.summary.faults))

    // The partition was real: during each one, nodes on either side saw the other side suspect or dead.
    const events = readFileSync(join(cwd, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as HistoryEvent)
    const all = new Set((events.find((e) => e.type === 'run-start') as { nodes: string[] }).nodes)
    const partitions = events.filter((e) => e.type === 'fault-start' && e.kind === 'partition') as Array<Extract<HistoryEvent, { type: 'fault-start' }>>
    assert.ok(partitions.length >= 1)
    for (const p of partitions) {
      const end = (events.find((e) => e.type === 'fault-end' && e.id === p.id) as { t: number }).t
      const side = new Set(p.targets)
      const rest = new Set([...all].filter((n) => !side.has(n)))
      // One observer sample interval (250 ms) and some slack past the heal: a view taken then still shows the partition's effect.
      assert.ok(crossViews(events, side, rest, p.t, end + 1000).length > 0, `${p.description}: ${[...side].join(',')} never saw the other side fail`)
      assert.ok(crossViews(events, rest, side, p.t, end + 1000).length > 0, `${p.description}: the other side never saw ${[...side].join(',')} fail`)
    }
    // Before the first partition nobody declared anybody dead: the failures above are the partition's doing.
    // (A probe timing out on a loaded machine may make a member suspect for a moment; it is refuted, not a failure.)
    assert.deepEqual(crossViews(events, all, all, 0, partitions[0]!.t).filter((v) => v.endsWith(' dead')), [])

    assert.deepEqual(ofRun(runner.pid), [], 'no namespace of the run is left')
    assert.deepEqual(readdirSync(join(cwd, '.chaos-runs')), [])
  } finally {
    spawnSync('ip', ['netns', 'del', stale])
    rmSync(cwd, { recursive: true, force: true })
  }
})

test('SIGINT during a netns run stops every node and removes every namespace', { skip, timeout: 60_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'chaos-netns-int-'))
  try {
    const runner = startRunner(cwd, ['--nodes', '2', '--duration', '60s', '--faults', 'partition', '--seed', '3'])
    await waitFor(() => runner.output().includes('workloads running') || runner.child.exitCode !== null, { timeout: 20_000, message: 'nodes up in their namespaces' })
    // outer runner -> inner runner (in the hub namespace) -> two nodes
    const inner = childrenOf(runner.pid)
    assert.equal(inner.length, 1, runner.output())
    const nodes = childrenOf(inner[0]!)
    assert.equal(nodes.length, 2, runner.output())
    assert.equal(ofRun(runner.pid).length, 3)
    runner.child.kill('SIGINT')
    const [code] = await runner.exited
    assert.equal(code, 130, runner.output())
    assert.match(runner.output(), /interrupted/)
    assert.deepEqual([...inner, ...nodes].filter(alive), [])
    assert.deepEqual(ofRun(runner.pid), [])
    assert.deepEqual(readdirSync(join(cwd, '.chaos-runs')), [])
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
})

test('--network takes loopback, netns or auto; anything else exits 2', async () => {
  const r = spawnSync(process.execPath, [BIN, 'chaos', '--network', 'docker', '--dry-run'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } })
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /--network: loopback, netns, auto; got docker/)
  const ok = spawnSync(process.execPath, [BIN, 'chaos', '--network', 'auto', '--dry-run', '--seed', '1', '--duration', '20s'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } })
  assert.equal(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, /^#1 /m)
  // The internal flag is not for people.
  const inside = spawnSync(process.execPath, [BIN, 'chaos', '--inside-netns', 'bhchaos-1', '--network', 'loopback'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } })
  assert.equal(inside.status, 2, inside.stderr)
})
