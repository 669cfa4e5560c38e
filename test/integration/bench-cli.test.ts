// `broker-ha bench` against a real node: what it sends arrives, the figures
// add up, --json has its shape; bad usage exits 2.
import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { BIN, startNode, type TestNode } from '../helpers/node.js'

const run = (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => runWithEnv({}, ...args)
const runWithEnv = async (env: Record<string, string>, ...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'bench', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

let node: TestNode
let secured: TestNode
before(async () => {
  node = await startNode()
  secured = await startNode({ mqtt: { auth: [{ username: 'bench', password: 's3cret', allow: true }] } })
})
after(async () => { await node?.stop(); await secured?.stop() })

test('QoS 1 one-to-one: sends N, receives N, no loss or duplicate, --json shape', async () => {
  const r = await run('--url', node.mqttUrl, '--url', node.mqttUrl, '-p', '2', '-s', '2', '--qos', '1', '--count', '500', '--workers', '2', '--json', '--no-progress')
  assert.equal(r.code, 0, r.stderr)
  const j = JSON.parse(r.stdout) as Record<string, unknown> & { latency: Record<string, number>, generator: Record<string, unknown>, options: Record<string, unknown> }
  assert.equal(j.sent, 1000)
  assert.equal(j.expected, 1000)
  assert.equal(j.received, 1000)
  assert.equal(j.lost, 0)
  assert.equal(j.duplicated, 0)
  assert.equal(j.connections, 4)
  for (const k of ['p50', 'p90', 'p99', 'max']) assert.equal(typeof j.latency[k], 'number', k)
  assert.ok(j.latency.p50! <= j.latency.p99! && j.latency.p99! <= j.latency.max!)
  assert.equal(j.latency.samples, 1000)
  for (const k of ['connectRate', 'sendRate', 'receiveRate', 'publishSeconds']) assert.ok((j[k] as number) > 0, k)
  assert.equal(typeof j.generator.saturated, 'boolean')
  assert.equal(j.options.qos, 1)
})

test('QoS 2 (PUBREC, PUBREL, PUBCOMP both ways) with a user name and password: exactly once, nothing lost', async () => {
  // The password from the environment, as the help suggests, so it stays out of ps.
  const r = await runWithEnv({ BROKER_BENCH_PASSWORD: 's3cret' }, '--url', secured.mqttUrl, '-p', '2', '-s', '2', '--qos', '2', '--count', '300', '--username', 'bench', '--protocol', '5', '--json', '--no-progress')
  assert.equal(r.code, 0, r.stderr)
  const j = JSON.parse(r.stdout) as { sent: number, expected: number, received: number, lost: number, duplicated: number, options: { qos: number, username: string, password: string } }
  assert.deepEqual([j.sent, j.expected, j.received, j.lost, j.duplicated], [600, 600, 600, 0, 0])
  assert.equal(j.options.qos, 2)
  assert.equal(j.options.username, 'bench')
  assert.equal(j.options.password, '********', 'the report says a password was used, never which')
  assert.ok(!r.stdout.includes('s3cret'))
  // Without the password the broker refuses the connection: exit 1, not a hang.
  const refused = await run('--url', secured.mqttUrl, '--count', '10', '--username', 'bench', '--no-progress')
  assert.equal(refused.code, 1, refused.stderr)
  assert.match(refused.stderr, /refused/)
})

test('numeric defaults show as numbers in --help', async () => {
  const r = await run('--help')
  assert.equal(r.code, 0)
  assert.match(r.stdout, /--publishers <n>\s+publishing clients \(default: 1\)/)
  assert.match(r.stdout, /\(default: 100\)/)
  assert.doesNotMatch(r.stdout, /default: "\d+"/)
})

test('fan-out over MQTT 5 with a wildcard: every subscriber gets every message; the table is printed', async () => {
  const r = await run('--url', node.mqttUrl, '-p', '1', '-s', '3', '--pattern', 'fan-out', '--wildcard', '--protocol', '5', '--count', '200', '--rate', '2000', '--no-progress')
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^expected\s+600$/m)
  assert.match(r.stdout, /^received\s+600 /m)
  assert.match(r.stdout, /^lost\s+0 /m)
  assert.match(r.stdout, /^latency\s+p50 [\d.]+ ms {2}p90 [\d.]+ ms {2}p99 [\d.]+ ms {2}max [\d.]+ ms$/m)
})

test('bad usage exits 2 and names the flag; an unreachable broker exits 1', async () => {
  for (const [args, message] of [
    [['--count', '10'], /--url/],
    [['--url', node.mqttUrl], /--duration or --count/],
    [['--url', node.mqttUrl, '--count', '10', '--duration', '1s'], /not both/],
    [['--url', node.mqttUrl, '--count', '10', '--qos', '3'], /--qos: an integer from 0 to 2/],
    [['--url', node.mqttUrl, '--count', '10', '--password', 'x'], /--password: needs --username/],
    [['--url', node.mqttUrl, '--count', '10', '--size', '8'], /--size/],
    [['--url', node.mqttUrl, '--count', '10', '--pattern', 'star'], /--pattern/],
    [['--url', node.mqttUrl, '--count', '10', '--pattern', 'fan-ot'], /\(Did you mean fan-out\?\)/],
    [['--url', 'http://x', '--count', '10'], /--url/]
  ] as const) {
    const r = await run(...args)
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, message)
  }
  // Port 1 on the node's address: nothing listens there.
  const r = await run('--url', `mqtt://${node.host}:1`, '--count', '10', '--no-progress')
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /ECONNREFUSED/)
})
