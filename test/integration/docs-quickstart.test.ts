// Docs check: the shell commands of the README's "Quick start" section, taken
// from the README itself at test time, run where a test can run them:
// - the "try it" lines (mosquitto_sub / mosquitto_pub / curl) against a real
//   node, with its loopback address put in for 127.0.0.1 and localhost; the
//   mosquitto lines skip when mosquitto-clients is not installed;
// - `node bin/broker-ha.js serve ...` lines (later starts), on a free loopback
//   address put in for 127.0.0.1: the node must listen there (MQTT, API) and
//   stop cleanly on SIGTERM;
// - the three-node loop, verbatim but for the addresses: 127.0.0.$i becomes
//   127.B.C.$i on free addresses, and its last line (curl members) is retried
//   until the three nodes have formed, since a script reaches it before the
//   nodes listen;
// Lines a test cannot run are checked for what can be checked: `npm ci`,
// `npm start`, `npm test` are what CI runs (.ci/run); `npx broker-ha ...` is
// package.test.ts (the packed bin, installed); `docker ...` needs an engine (its
// Dockerfile must exist: deploy-dockerfile.test.ts checks it); `kubectl apply -k DIR`
// needs a cluster (DIR must be a kustomization: deploy-manifests.test.ts builds it);
// other `kubectl` lines need a cluster. Any other line fails this test, so a new
// quick-start command cannot go unchecked.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import { createSocket } from 'node:dgram'
import { ROOT } from '../helpers/node.js'
import { startProcessNode, type ProcessNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'

/** The sh code blocks of the README's "## Quick start" section, as lists of logical lines. */
function quickStartBlocks (): string[][] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf('\n## Quick start')
  assert.ok(start >= 0, 'README has a "## Quick start" section')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  const blocks: string[][] = []
  for (const m of section.matchAll(/```(?:sh|bash|shell|console)\n([\s\S]*?)```/g)) {
    const lines = m[1]!.replace(/\\\n/g, ' ').split('\n').map((l) => l.replace(/^\$ /, '').trim()).filter((l) => l !== '' && !l.startsWith('#'))
    blocks.push(lines)
  }
  return blocks
}

function hasTool (name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
}

/** Runs one line with bash in the repository root; resolves with its output. */
function sh (line: string, timeoutMs = 10_000): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', line], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

/** Starts a long-running line (its own process group, so every child can be stopped). */
function background (line: string, env: NodeJS.ProcessEnv = process.env): { child: ChildProcess, output: () => string, stop: () => Promise<void> } {
  const child = spawn('bash', ['-c', line], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { output += d.toString() })
  const exited = once(child, 'exit')
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        try { process.kill(-child.pid!, 'SIGTERM') } catch { /* already gone */ }
      }
      await exited
    }
  }
}

/** 127.B.C.x for each x in `last`, all with free MQTT, API and cluster ports. */
async function freeLoopbackPrefix (last: number[]): Promise<string> {
  const tcpFree = (host: string, port: number): Promise<boolean> => new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, host, () => s.close(() => resolve(true)))
  })
  const udpFree = (host: string, port: number): Promise<boolean> => new Promise((resolve) => {
    const s = createSocket('udp4')
    s.once('error', () => { s.close(); resolve(false) })
    s.bind(port, host, () => s.close(() => resolve(true)))
  })
  for (let attempt = 0; attempt < 50; attempt++) {
    // 127.200.0.0/16 and up: clear of the range test/helpers/loopback.ts hands out.
    const prefix = `127.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}.`
    const checks = await Promise.all(last.flatMap((x) => [...[1883, 8080, 7946].map((p) => tcpFree(prefix + x, p)), udpFree(prefix + x, 7946)]))
    if (checks.every(Boolean)) return prefix
  }
  throw new Error('no free loopback prefix')
}

type Kind = 'ci' | 'npx' | 'docker' | 'kubectl-apply' | 'kubectl' | 'try' | 'cluster' | 'serve'

function kindOf (line: string, block: string[]): Kind | undefined {
  if (block.some((l) => /^for i in\b/.test(l))) return 'cluster'
  if (/^(mosquitto_(sub|pub)|curl)\b/.test(line)) return 'try'
  if (/^node bin\/broker-ha\.js serve\b/.test(line)) return 'serve'
  if (/^npm (ci|start|test)\b/.test(line) && line.split('&&').every((p) => /^\s*npm (ci|start|test)\s*$/.test(p))) return 'ci'
  if (/^npx broker-ha\b/.test(line)) return 'npx'
  if (/^docker\b/.test(line)) return 'docker'
  if (/^kubectl apply -k\b/.test(line)) return 'kubectl-apply'
  if (/^kubectl\b/.test(line)) return 'kubectl'
  return undefined
}

const blocks = quickStartBlocks()
const lines = blocks.flatMap((block) => block.map((line) => ({ line, block, kind: kindOf(line, block) })))

test('every quick-start command is one this docs check knows how to run or check', () => {
  assert.ok(lines.length > 0, 'the quick start has shell commands')
  const unknown = lines.filter((l) => l.kind === undefined).map((l) => l.line)
  assert.deepEqual(unknown, [], 'teach test/integration/docs-quickstart.test.ts to run these README quick-start lines')
})

test('npm ci / npm start / npm test lines are what CI runs', () => {
  const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8')
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  for (const { line } of lines.filter((l) => l.kind === 'ci')) {
    for (const part of line.split('&&').map((p) => p.trim())) {
      if (part === 'npm ci' || part === 'npm test') assert.match(ci, new RegExp(`^${part}\\b`, 'm'), `.ci/run runs ${part}`)
      if (part === 'npm start') assert.match(pkg.scripts.start ?? '', /broker-ha\.js serve/)
    }
  }
})

test('docker and kubectl lines point at files that exist', () => {
  for (const { line, kind } of lines) {
    if (kind === 'docker') {
      const file = /-f\s+(\S+)/.exec(line)?.[1]
      if (file !== undefined) assert.ok(existsSync(join(ROOT, file)), `${line}: ${file} exists`)
    }
    if (kind === 'kubectl-apply') {
      const dir = /-k\s+(\S+)/.exec(line)![1]!
      assert.ok(existsSync(join(ROOT, dir, 'kustomization.yaml')), `${line}: ${dir} is a kustomization`)
    }
  }
})

let node: ProcessNode | undefined

before(async () => {
  if (lines.some((l) => l.kind === 'try')) node = await startProcessNode({ log: { level: 'info' } })
})
after(async () => { await node?.stop() })

test('the "try it" lines work against a node', async (t) => {
  const tries = lines.filter((l) => l.kind === 'try').map((l) => l.line)
  if (tries.length === 0) return t.skip('no such lines')
  const local = (line: string): string => line.replace(/127\.0\.0\.1|localhost/g, node!.host).replace(/\s*&\s*(#.*)?$/, '')
  const subs: Array<ReturnType<typeof background>> = []
  try {
    for (const raw of tries) {
      const line = local(raw)
      const tool = line.split(/\s+/)[0]!
      if (!hasTool(tool)) {
        t.diagnostic(`skipped (${tool} not installed): ${raw}`)
        continue
      }
      if (/&\s*(#.*)?$/.test(raw)) {
        // A background subscriber: started, then waited for until its subscription is in place.
        const sub = background(line)
        subs.push(sub)
        await waitFor(async () => {
          const clients = await (await fetch(`${node!.apiUrl}/api/mqtt/clients`)).json() as Array<{ Subscriptions?: Record<string, unknown> }>
          return clients.some((c) => Object.keys(c.Subscriptions ?? {}).length > 0)
        }, { timeout: 10_000, message: `${tool} to subscribe` })
        continue
      }
      const r = await sh(line)
      assert.equal(r.code, 0, `${raw}\n${r.stderr}`)
      if (/^curl .*\/api\/mqtt\/clients/.test(line)) assert.match(r.stdout, /^\[/, 'a JSON list of clients')
      if (/^curl .*\/metrics/.test(line)) assert.match(r.stdout, /^broker_clients_connected \d+/m)
    }
    // What the subscriber printed: the published message (`-v`: topic and payload).
    const pubs = tries.filter((l) => l.startsWith('mosquitto_pub'))
    if (subs.length > 0 && pubs.length > 0) {
      const topic = /-t\s+(\S+)/.exec(pubs[0]!)![1]!.replace(/'/g, '')
      const message = /-m\s+(\S+)/.exec(pubs[0]!)![1]!.replace(/'/g, '')
      await waitFor(() => subs.some((s) => s.output().includes(`${topic} ${message}`)), { timeout: 5000, message: `the subscriber to print "${topic} ${message}"` })
    }
  } finally {
    for (const s of subs) await s.stop()
  }
})

test('the "later starts" serve lines start a node where they say and stop it cleanly', async (t) => {
  const serves = lines.filter((l) => l.kind === 'serve').map((l) => l.line)
  if (serves.length === 0) return t.skip('no such lines')
  for (const raw of serves) {
    const host = (await freeLoopbackPrefix([1])) + '1'
    // The line's own addresses moved to a free one; without --bind, the environment puts the node there.
    const line = raw.replace(/127\.0\.0\.1/g, host)
    const env = { ...process.env, BROKER_LOG_FORMAT: 'json', ...(line.includes('--bind') ? {} : { BROKER_MQTT_BIND: host, BROKER_API_BIND: host, BROKER_CLUSTER_BIND: host }) }
    const node = background(line, env)
    try {
      await waitFor(() => node.output().includes('HTTP API listening') || node.child.exitCode !== null, { timeout: 20_000, message: `${raw} to listen\n${node.output()}` })
      assert.equal(node.child.exitCode, null, node.output())
      const ready = await fetch(`http://${host}:8080/ready`)
      assert.equal(ready.status, 200, `${raw}: the API answers on ${host}`)
      const mqttOpen = await new Promise<boolean>((resolve) => {
        const socket = createConnection(1883, host)
        socket.once('connect', () => { socket.destroy(); resolve(true) })
        socket.once('error', () => resolve(false))
      })
      assert.ok(mqttOpen, `${raw}: MQTT listens on ${host}`)
    } finally {
      await node.stop()
    }
    assert.match(node.output(), /"msg":"stopped"/, 'a clean stop')
  }
})

test('the three-node loop forms a cluster of three', async (t) => {
  const block = lines.find((l) => l.kind === 'cluster')?.block
  if (block === undefined) return t.skip('no such block')
  const text = block.join('\n')
  const loopLast = /for i in ([\d ]+);/.exec(text)
  assert.ok(loopLast !== null, 'for i in N N N; do ... done')
  const lasts = loopLast[1]!.trim().split(/\s+/).map(Number)
  const prefix = await freeLoopbackPrefix(lasts)
  const local = (s: string): string => s.replace(/127\.0\.0\./g, prefix)
  const loopEnd = text.indexOf('done') + 'done'.length
  // The loop verbatim, then `wait`, so the group lives as long as the nodes.
  const nodes = background(`${local(text.slice(0, loopEnd))}\nwait`, { ...process.env, BROKER_LOG_LEVEL: 'warn' })
  try {
    const rest = text.slice(loopEnd).split('\n').map((l) => l.trim()).filter((l) => l !== '')
    assert.ok(rest.length > 0, 'a command to look at the cluster follows the loop')
    for (const raw of rest) {
      const members = await waitFor(async () => {
        const r = await sh(local(raw))
        if (r.code !== 0) return undefined
        const list = JSON.parse(r.stdout) as Array<{ Name: string, State: number }>
        return list.filter((m) => m.State === 0).length === lasts.length ? list : undefined
      }, { timeout: 30_000, message: `${raw} to list ${lasts.length} alive members\n${nodes.output()}` })
      assert.deepEqual(members.map((m) => m.Name).sort(), lasts.map((i) => `node-${i}`).sort())
    }
  } finally {
    await nodes.stop()
  }
})
