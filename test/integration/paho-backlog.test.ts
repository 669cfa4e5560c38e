// Debian's Paho 1.6.1 as a QoS 2 publisher whose node is killed while it has
// more queued than our Receive Maximum (test/conformance/paho-backlog.py): on
// the next node it sends its whole backlog at once, which is held and handed
// on as its PUBRELs free the window. One connection gets everything out, and
// each message is delivered once. Two `broker-ha serve` processes.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { startProcessCluster, FAST } from '../helpers/cluster.js'
import type { ProcessNode } from '../helpers/node.js'
import { runCommand, PAHO_PYTHON } from '../helpers/run.js'

const SCRIPT = fileURLToPath(new URL('../../../test/conformance/paho-backlog.py', import.meta.url))
const COUNT = 300

const nodes: ProcessNode[] = []
after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })

const hostPort = (n: ProcessNode): string => n.mqttUrl.slice('mqtt://'.length)

interface Report { error?: string, acked: number, delivered: number, duplicates: number, connacks: Array<[number, string]>, disconnects: string[] }

test('a Paho QoS 2 publisher whose node is killed with a backlog over Receive Maximum gets it all out on the next node, each message once', { skip: PAHO_PYTHON === undefined ? 'python3-paho-mqtt is not installed' : false }, async (t) => {
  nodes.push(...await startProcessCluster(2, { cluster: { config: FAST } } as never))
  const [a, b] = nodes as [ProcessNode, ProcessNode]
  const run = await runCommand(PAHO_PYTHON!, [SCRIPT, '--first', hostPort(a), '--then', hostPort(b), '--kill-pid', String(a.child.pid), '--count', String(COUNT)])
  const line = run.stdout.trim().split('\n').at(-1) ?? ''
  const why = `exit ${run.code}\n${run.stdout}\n${run.stderr}`
  assert.ok(line.startsWith('{'), why)
  const r = JSON.parse(line) as Report
  t.diagnostic(line)
  assert.equal(r.error, undefined, why)
  assert.equal(r.connacks.length, 2, `connected to A, then once to B (no DISCONNECT 0x93 loop)\n${why}`)
  assert.equal(r.acked, COUNT, `every message acknowledged (PUBCOMP)\n${why}`)
  assert.equal(r.delivered, COUNT, `every message delivered\n${why}`)
  assert.equal(r.duplicates, 0, `no QoS 2 message twice\n${why}`)
})
