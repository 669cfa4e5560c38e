// The sessions guarantee as a second client stack sees it (test/conformance/
// failover.py): Paho subscribers with persistent sessions (MQTT 3.1.1 at
// QoS 1, MQTT 5 at QoS 1 and 2) on a node that is SIGKILLed while a Paho
// publisher on another node sends QoS 2; they reconnect to a third node, get
// their session back and every acknowledged message, the QoS 2 subscriber
// exactly once. Three `broker-ha serve` processes.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { startProcessCluster, FAST } from '../helpers/cluster.js'
import type { ProcessNode } from '../helpers/node.js'
import { runCommand, PAHO_PYTHON } from '../helpers/run.js'

const SCRIPT = fileURLToPath(new URL('../../../test/conformance/failover.py', import.meta.url))

const nodes: ProcessNode[] = []
after(async () => { await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))) })

const hostPort = (n: ProcessNode): string => n.mqttUrl.slice('mqtt://'.length)

interface Report {
  error?: string
  acked: number
  subscribers: Array<{ version: number, qos: number, sessionPresent: boolean, rc: number, reconnectSeconds: number, missing: number, firstMissing: number[], duplicates: number }>
}

test('Paho persistent subscribers (3.1.1, 5, QoS 1 and 2) on a killed node get their session and every acknowledged message on another node, QoS 2 once', { skip: PAHO_PYTHON === undefined ? 'python3-paho-mqtt is not installed' : false }, async (t) => {
  nodes.push(...await startProcessCluster(3, { cluster: { config: FAST } } as never))
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]
  const run = await runCommand(PAHO_PYTHON!, [SCRIPT, '--first', hostPort(a), '--publisher', hostPort(b), '--then', hostPort(c), '--kill-pid', String(a.child.pid)])
  const line = run.stdout.trim().split('\n').at(-1) ?? ''
  const why = `exit ${run.code}\n${run.stdout}\n${run.stderr}\nB: ${b.output().split('\n').filter((l) => l.includes('"level":"error"') || l.includes('"level":"warn"')).slice(-10).join('\n')}`
  assert.ok(line.startsWith('{'), why)
  const r = JSON.parse(line) as Report
  t.diagnostic(line)
  assert.equal(r.error, undefined, why)
  assert.ok(r.acked > 500, `the publisher's messages were acknowledged\n${why}`)
  assert.equal(r.subscribers.length, 3)
  for (const s of r.subscribers) {
    assert.equal(s.rc, 0, `MQTT ${s.version} QoS ${s.qos}: CONNACK on the third node\n${why}`)
    assert.equal(s.sessionPresent, true, `MQTT ${s.version} QoS ${s.qos}: session present\n${why}`)
    assert.equal(s.missing, 0, `MQTT ${s.version} QoS ${s.qos}: acknowledged, never delivered: ${s.firstMissing.join(', ')}\n${why}`)
    if (s.qos === 2) assert.equal(s.duplicates, 0, `MQTT ${s.version} QoS 2: delivered twice\n${why}`)
  }
})
