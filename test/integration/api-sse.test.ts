// /api/sse over real HTTP: bus events for a real MQTT publish, filters, the
// subscription removed when the HTTP client goes away, and a client that
// never reads costing the broker nothing but its own dropped events.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect as tcpConnect } from 'node:net'
import mqtt from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { ApiClient, type SseEvent } from '../../src/client/index.js'

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

test('a publish arrives as a cluster:message_to event; the subscription goes with the client', async () => {
  const abort = new AbortController()
  const events: SseEvent[] = []
  const reading = (async () => {
    for await (const event of api.events({ filters: ['cluster:message_to'], signal: abort.signal })) events.push(event)
  })()
  await waitFor(() => n.node.bus.subscriberCount() === 1, { message: 'SSE bus subscription' })
  assert.equal(n.node.api.sseStreams, 1)
  const publisher = await mqtt.connectAsync(n.mqttUrl, { clientId: 'sse-pub', reconnectPeriod: 0 })
  try {
    await publisher.publishAsync('sse/topic', 'payload-1', { qos: 1 })
    const event = await waitFor(() => events.find((e) => e.event === 'cluster:message_to'), { message: 'message_to event' })
    const data = event.data as Record<string, unknown>
    assert.equal(data.Topic, 'sse/topic')
    assert.equal(Buffer.from(data.Payload as string, 'base64').toString(), 'payload-1')
    assert.equal(data.Qos, 1)
    assert.equal(data.Retain, false)
    assert.deepEqual(data.Node, ['all'])
  } finally {
    await publisher.endAsync()
  }
  abort.abort()
  await reading
  await waitFor(() => n.node.bus.subscriberCount() === 0, { message: 'bus subscription removed after the client left' })
  assert.equal(n.node.api.sseStreams, 0)
})

test('GET with a filter list; other channels are not sent', async () => {
  const abort = new AbortController()
  const res = await fetch(`${n.apiUrl}/api/sse?filters=cluster:new_member&channel_size=5`, { signal: abort.signal })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
  await waitFor(() => n.node.bus.subscriberCount() === 1, { message: 'SSE bus subscription' })
  n.node.bus.publish('cluster:message_to', { Topic: 'not/for/you' })
  n.node.bus.publish('cluster:new_member', { name: 'm2' })
  const reader = res.body!.getReader()
  let text = ''
  while (!text.includes('cluster:new_member')) {
    const { value, done } = await reader.read()
    if (done) break
    text += Buffer.from(value).toString()
  }
  assert.match(text, /event: cluster:new_member\ndata: \{"name":"m2"\}\n\n/)
  assert.doesNotMatch(text, /not\/for\/you/)
  abort.abort()
  await waitFor(() => n.node.bus.subscriberCount() === 0, { message: 'subscription removed' })
})

test('a client that never reads: its events are dropped and counted, publishing never waits', async () => {
  const socket = tcpConnect({ host: n.host, port: n.config.api.port })
  const body = JSON.stringify({ filters: ['cluster:message_to'], channel_size: 10 })
  socket.write(`POST /api/sse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  socket.pause() // never read: the kernel buffers fill, then the server's writes stall
  try {
    await waitFor(() => n.node.bus.subscriberCount() === 1, { message: 'SSE bus subscription' })
    const droppedBefore = n.node.bus.dropped.get('cluster:message_to') ?? 0
    const big = 'x'.repeat(64 * 1024)
    const started = process.hrtime.bigint()
    for (let i = 0; i < 2000; i++) n.node.bus.publish('cluster:message_to', { Payload: big, i })
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6
    // 2000 events x 64 KiB = 128 MiB offered; publish is a bounded queue push, never I/O.
    assert.ok(elapsedMs < 500, `publishing took ${elapsedMs} ms`)
    await waitFor(() => (n.node.bus.dropped.get('cluster:message_to') ?? 0) - droppedBefore > 1000, { message: 'drops counted' })
    const metrics = await api.metrics()
    const dropped = Number(/^broker_bus_dropped_total\{channel="cluster:message_to"\} (\d+)/m.exec(metrics)![1])
    assert.ok(dropped > 1000, `broker_bus_dropped_total ${dropped}`)
  } finally {
    socket.destroy()
  }
  await waitFor(() => n.node.bus.subscriberCount() === 0, { message: 'subscription removed after the socket closed' })
})

test('stopping the node ends open streams', async () => {
  const other = await startNode()
  const client = new ApiClient({ baseUrl: other.apiUrl })
  try {
    const events = client.events()
    const first = events.next() // the stream opens; nothing published
    await waitFor(() => other.node.bus.subscriberCount() === 1, { message: 'SSE bus subscription' })
    await other.stop()
    assert.deepEqual(await first, { done: true, value: undefined })
    assert.equal(other.node.bus.subscriberCount(), 0)
  } finally {
    await client.close()
    await other.stop()
  }
})
