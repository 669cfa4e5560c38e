// What `broker-ha serve` says when it starts: one line per listener (no
// fastify banner repeating "HTTP API listening"), and in pretty mode the same
// `LEVEL (component):` prefix on every line.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startProcessNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'

test('JSON: one HTTP API listening line, no fastify "Server listening at" banner', async () => {
  const node = await startProcessNode({ log: { level: 'debug', format: 'json' } })
  try {
    await waitFor(() => node.output().includes('broker-ha node started'), { message: 'the node to start' })
    const lines = node.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string, component?: string, bind?: string, port?: number })
    assert.deepEqual(lines.filter((l) => /listening/i.test(l.msg)).map((l) => `${l.component} ${l.msg}`).sort(), ['api HTTP API listening', 'cluster cluster membership listening', 'mqtt MQTT listening'])
    assert.ok(!node.output().includes('Server listening at'), node.output())
    // The API's own debug lines still come through at debug (fastify's logger is quieter, ours is not).
    await fetch(`${node.apiUrl}/api/mqtt/topic/messages`, { method: 'POST', body: '{"topic": "a/#/b"}', headers: { 'content-type': 'application/json' } })
    await waitFor(() => node.output().includes('API request refused'), { message: 'the API debug line for a refused request' })
  } finally {
    await node.stop()
  }
})

test('pretty: every line is "[time] LEVEL (component): message", whoever logs it', async () => {
  const node = await startProcessNode({ log: { level: 'info', format: 'pretty' } })
  let output: string
  try {
    await waitFor(() => node.output().includes('broker-ha node started'), { message: 'the node to start' })
  } finally {
    await node.stop()
    output = node.output()
  }
  const heads = output.split('\n').filter((l) => l.startsWith('['))
  assert.ok(heads.length >= 6, output)
  for (const line of heads) assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR) \((broker-ha|mqtt|cluster|api|dataplane)\): \S/, line)
  assert.match(output, /INFO \(api\): HTTP API listening/)
  assert.match(output, /INFO \(cluster\): cluster membership listening\n(\s{4}.*\n)*\s{4}node: "node-/, 'a line\'s own name field is shown as node')
  assert.doesNotMatch(output, /Server listening at/)
})
