// /debug: runtime summary, a CPU profile that DevTools can load, one profile
// at a time, and a streamed heap snapshot.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { ApiClient, type ApiClientError } from '../../src/client/index.js'

let n: TestNode
let api: ApiClient

before(async () => {
  n = await startNode()
  api = new ApiClient({ baseUrl: n.apiUrl })
})
after(async () => {
  await api.close()
  await n.stop()
})

test('GET /debug summarises the runtime', async () => {
  const s = await api.runtime()
  assert.equal(s.node, n.config.cluster.name)
  assert.equal(s.pid, process.pid)
  assert.equal(s.node_version, process.version)
  for (const key of ['min', 'mean', 'p50', 'p99', 'max'] as const) assert.equal(typeof s.event_loop_delay_ms[key], 'number')
  assert.ok(s.memory.heap_used > 0 && s.memory.rss >= s.memory.heap_used)
  assert.ok((s.active_resources.TCPServerWrap ?? 0) >= 2, 'MQTT and HTTP listeners are active handles')
  assert.ok(s.event_loop_utilization >= 0 && s.event_loop_utilization <= 1)
  assert.equal(s.cpu_profile_running, false)
})

test('a CPU profile parses as a .cpuprofile; a second one at the same time is refused', async () => {
  const started = Date.now()
  const profiling = api.cpuProfile(1)
  // The first request has claimed the profiler by the time the summary says so.
  await waitFor(async () => (await api.runtime()).cpu_profile_running, { interval: 5, message: 'profile running' })
  await assert.rejects(api.cpuProfile(1), (err: ApiClientError) => {
    assert.equal(err.status, 409)
    assert.match(err.serverMessage!, /already running/)
    return true
  })
  const profile = await profiling
  assert.ok(Date.now() - started >= 1000, 'profiled for the requested second')
  assert.ok(Array.isArray(profile.nodes) && profile.nodes.length > 0)
  assert.equal(typeof profile.nodes[0]!.callFrame.functionName, 'string')
  assert.ok(profile.endTime > profile.startTime)
  assert.ok(Array.isArray(profile.samples) && Array.isArray(profile.timeDeltas))
  assert.equal((await api.runtime()).cpu_profile_running, false)
})

test('the profile is served as a download', async () => {
  const res = await fetch(`${n.apiUrl}/debug/pprof/profile?seconds=1`)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename="broker-ha-.*\.cpuprofile"/)
  assert.ok(Array.isArray((await res.json() as { nodes: unknown[] }).nodes))
})

test('GET /debug/pprof/heap streams a V8 heap snapshot', async () => {
  const stream = await api.heapSnapshot()
  let head = ''
  let bytes = 0
  for await (const chunk of stream) {
    if (head.length < 100) head += (chunk as Buffer).toString()
    bytes += (chunk as Buffer).length
  }
  assert.match(head, /^\{"snapshot":\{"meta":/)
  assert.ok(bytes > 1_000_000, `${bytes} bytes`)
})
