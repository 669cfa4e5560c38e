// The MQTT 5 conformance matrix: every row of the MQTT 5 table in
// docs/mqtt.md, run by client stacks other than mqtt.js (Eclipse Paho's
// Python client, mosquitto_pub/sub: test/conformance/matrix.py) against one
// node and against a three-node cluster where consecutive connections of a
// row go to different nodes. It prints the matrix (feature x stack x single
// node / cluster) and fails on any red cell. A stack that is not installed
// is reported and skipped (.ci/run installs both).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startNode, ROOT, type TestNode, type ConfigOverrides } from '../helpers/node.js'
import { startCluster } from '../helpers/dataplane-cluster.js'

const SCRIPT = join(ROOT, 'test', 'conformance', 'matrix.py')
const STACKS = ['paho', 'mosquitto'] as const
type Stack = typeof STACKS[number]
type Target = 'single' | 'cluster'

/** What the rows expect of the nodes: values they check in CONNACK, and an ACL that refuses `refused/#`. */
const MATRIX_CONFIG: ConfigOverrides = {
  mqtt: {
    server_keep_alive: 60,
    max_inflight: 20,
    // The receive-maximum row checks the DISCONNECT 0x93; what is held past
    // the window by default is shown by mqtt-limits and dataplane-qos2-backlog.
    max_inflight_excess: 0,
    max_packet_size: 65_536,
    acl: [{ filters: { 'refused/#': 0, '#': 3 } }]
  }
}

interface RowResult { row: string, stack: Stack, ok: boolean, detail: string, ms: number, target?: Target }

/** A Python 3 with Paho (Debian's is /usr/bin/python3; `python3` on PATH may be another one). */
function pythonWithPaho (): string | undefined {
  for (const python of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(python, ['-c', 'import paho.mqtt.client'], { stdio: 'ignore' }).status === 0) return python
  }
  return undefined
}

function hasMosquittoClients (): boolean {
  return ['mosquitto_pub', 'mosquitto_sub'].every((cmd) => spawnSync(cmd, ['--help'], { stdio: 'ignore' }).error === undefined)
}

/** Python to run the script with for a stack, or why the stack is absent. */
function runnerFor (stack: Stack): { python: string } | { absent: string } {
  const python = pythonWithPaho() ?? (spawnSync('python3', ['--version'], { stdio: 'ignore' }).status === 0 ? 'python3' : undefined)
  if (python === undefined) return { absent: 'no python3' }
  if (stack === 'paho' && pythonWithPaho() === undefined) return { absent: 'python3-paho-mqtt is not installed' }
  if (stack === 'mosquitto' && !hasMosquittoClients()) return { absent: 'mosquitto-clients is not installed' }
  return { python }
}

/** The row ids of the MQTT 5 table in docs/mqtt.md (its last column). */
function documentedRows (): string[] {
  const doc = readFileSync(join(ROOT, 'docs', 'mqtt.md'), 'utf8')
  const rows: string[] = []
  for (const line of doc.split('\n')) {
    const cells = line.split('|').map((c) => c.trim())
    const id = /^`([a-z0-9-]+)`$/.exec(cells[cells.length - 2] ?? '')?.[1]
    if (line.startsWith('|') && id !== undefined) rows.push(id)
  }
  return rows
}

async function runMatrix (python: string, stack: Stack, hosts: string[]): Promise<RowResult[]> {
  const child = spawn(python, [SCRIPT, '--stack', stack, '--hosts', hosts.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  assert.equal(code, 0, `matrix.py --stack ${stack} exited ${String(code)}:\n${err}`)
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as RowResult)
}

function stackRows (python: string, stack: Stack): string[] {
  const listed = spawnSync(python, [SCRIPT, '--stack', stack, '--hosts', '-', '--list'], { encoding: 'utf8' })
  return JSON.parse(listed.stdout) as string[]
}

let single: TestNode
let cluster: TestNode[]

before(async () => {
  single = await startNode(MATRIX_CONFIG)
  cluster = await startCluster(3, MATRIX_CONFIG)
})

after(async () => {
  await Promise.all([single, ...cluster].map(async (n) => await n.stop()))
})

test('MQTT 5 conformance matrix: every row of docs/mqtt.md, Paho and mosquitto clients, one node and three', async (t) => {
  const documented = documentedRows()
  assert.ok(documented.length > 20, 'the MQTT 5 table of docs/mqtt.md lists its rows')
  const results = new Map<string, RowResult>()
  const absent = new Map<Stack, string>()
  const runs: Array<Promise<void>> = []
  for (const stack of STACKS) {
    const runner = runnerFor(stack)
    if ('absent' in runner) { absent.set(stack, runner.absent); continue }
    const rows = stackRows(runner.python, stack)
    for (const row of rows) assert.ok(documented.includes(row), `${stack} runs ${row}, which docs/mqtt.md does not list`)
    for (const [target, hosts] of [['single', [single.host]], ['cluster', cluster.map((n) => n.host)]] as Array<[Target, string[]]>) {
      runs.push(runMatrix(runner.python, stack, hosts).then((got) => {
        for (const r of got) results.set(`${r.row} ${stack} ${target}`, { ...r, target })
      }))
    }
  }
  if (absent.size === STACKS.length) {
    t.skip(`no client stack: ${[...absent.values()].join('; ')}`)
    return
  }
  await Promise.all(runs)

  const cell = (row: string, stack: Stack, target: Target): string => {
    if (absent.has(stack)) return 'absent'
    const r = results.get(`${row} ${stack} ${target}`)
    return r === undefined ? '-' : r.ok ? 'ok' : 'FAIL'
  }
  const columns = STACKS.flatMap((s) => (['single', 'cluster'] as Target[]).map((tg) => [s, tg] as const))
  const width = Math.max(...documented.map((r) => r.length))
  const lines = [
    `${'feature'.padEnd(width)}  ${columns.map(([s, tg]) => `${s}/${tg}`.padEnd(17)).join('')}`,
    ...documented.map((row) => `${row.padEnd(width)}  ${columns.map(([s, tg]) => cell(row, s, tg).padEnd(17)).join('')}`)
  ]
  for (const [stack, why] of absent) lines.push(`${stack}: absent (${why})`)
  console.log(`\nMQTT 5 conformance matrix\n${lines.join('\n')}\n`)
  for (const line of lines) t.diagnostic(line)

  const failed = [...results.values()].filter((r) => !r.ok)
  assert.deepEqual(failed.map((r) => `${r.row} (${r.stack}, ${String(r.target)}): ${r.detail}`), [])
  for (const row of documented) {
    for (const target of ['single', 'cluster'] as Target[]) {
      assert.ok(STACKS.some((s) => results.get(`${row} ${s} ${target}`)?.ok === true), `${row} was not shown on ${target} by any stack`)
    }
  }
})
