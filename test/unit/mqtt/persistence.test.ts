import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LimitedPersistence, type StoredPacket } from '../../../src/server/mqtt/persistence.js'
import type { LimitName } from '../../../src/server/mqtt/metrics.js'

function make (limits: Partial<{ maxRetainedMessages: number, maxRetainedBytes: number, maxQueuedMessages: number }> = {}): { p: LimitedPersistence, rejected: LimitName[] } {
  const rejected: LimitName[] = []
  const p = new LimitedPersistence({
    limits: { maxRetainedMessages: 0, maxRetainedBytes: 0, maxQueuedMessages: 0, ...limits },
    onReject: (l) => rejected.push(l)
  })
  return { p, rejected }
}

const packet = (topic: string, payload: string, extra: Partial<StoredPacket> = {}): StoredPacket =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, ...extra })

async function retainedTopics (p: LimitedPersistence): Promise<string[]> {
  const out: string[] = []
  for await (const r of p.createRetainedStream('#')) out.push(`${(r as StoredPacket).topic}=${(r as StoredPacket).payload.toString()}`)
  return out.sort()
}

test('setup is a native async function (aedes checks it)', () => {
  assert.equal(LimitedPersistence.prototype.setup.constructor.name, 'AsyncFunction')
})

test('retained count limit: new topics refused, replacements and clears always work', async () => {
  const { p, rejected } = make({ maxRetainedMessages: 2 })
  await p.setup({ id: 'b' })
  await p.storeRetained(packet('a', '1'))
  await p.storeRetained(packet('b', '1'))
  await p.storeRetained(packet('c', '1'))
  assert.deepEqual(rejected, ['retained_messages'])
  await p.storeRetained(packet('a', '2'))
  assert.deepEqual(await retainedTopics(p), ['a=2', 'b=1'])
  await p.storeRetained(packet('b', ''))
  await p.storeRetained(packet('c', '3'))
  assert.deepEqual(await retainedTopics(p), ['a=2', 'c=3'])
  assert.equal(p.retainedCount, 2)
})

test('retained byte limit counts payload bytes; replacement may grow past it', async () => {
  const { p, rejected } = make({ maxRetainedBytes: 10 })
  await p.setup({ id: 'b' })
  await p.storeRetained(packet('a', '123456'))
  await p.storeRetained(packet('b', '12345'))
  assert.deepEqual(rejected, ['retained_bytes'])
  await p.storeRetained(packet('b', '1234'))
  assert.equal(p.retainedBytes, 10)
  await p.storeRetained(packet('a', '123456789'))
  assert.equal(p.retainedBytes, 13)
  await p.storeRetained(packet('a', ''))
  assert.equal(p.retainedBytes, 4)
  assert.equal(p.retainedCount, 1)
  // Clearing a topic that was never stored changes nothing.
  await p.storeRetained(packet('zz', ''))
  assert.equal(p.retainedCount, 1)
})

test('queued messages: oldest dropped first per session, counted; update and clear by packet id', async () => {
  const { p, rejected } = make({ maxQueuedMessages: 2 })
  await p.setup({ id: 'b' })
  const client = { id: 'c1' }
  for (let i = 1; i <= 3; i++) await p.outgoingEnqueueCombi([{ clientId: 'c1' }, { clientId: 'c2' }], packet('t', `m${i}`, { brokerId: 'b', brokerCounter: i }))
  assert.deepEqual(rejected, ['queued_messages', 'queued_messages'])
  assert.equal(p.queuedFor('c1'), 2)
  assert.equal(p.queuedCount, 4)
  const queued: StoredPacket[] = []
  for await (const q of p.outgoingStream(client)) queued.push(q as StoredPacket)
  assert.deepEqual(queued.map((q) => q.payload.toString()), ['m2', 'm3'])
  // Entries are copies: a packet id given for c1 does not leak into c2's queue.
  await p.outgoingUpdate(client, { ...queued[0]!, messageId: 42 })
  const c2: StoredPacket[] = []
  for await (const q of p.outgoingStream({ id: 'c2' })) c2.push(q as StoredPacket)
  assert.equal(c2[0]!.messageId, undefined)
  const cleared = await p.outgoingClearMessageId(client, { messageId: 42 })
  assert.equal(cleared?.payload.toString(), 'm2')
  assert.equal(p.queuedFor('c1'), 1)
  await assert.rejects(p.outgoingUpdate(client, packet('t', 'x', { brokerId: 'other', brokerCounter: 9, messageId: 7 })), /no such packet/)
})

test('a PUBREL replaces its PUBLISH in the queue (QoS 2 second phase)', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const client = { id: 'c' }
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'x', { brokerId: 'b', brokerCounter: 1, qos: 2 }))
  await p.outgoingUpdate(client, packet('t', 'x', { brokerId: 'b', brokerCounter: 1, messageId: 5, qos: 2 }))
  await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 5, topic: '', payload: Buffer.alloc(0) })
  const q: StoredPacket[] = []
  for await (const e of p.outgoingStream(client)) q.push(e as StoredPacket)
  assert.deepEqual(q.map((e) => e.cmd), ['pubrel'])
  await p.outgoingClearMessageId(client, { messageId: 5 })
  assert.equal(p.queuedCount, 0)
})

test('two PUBRELs in a row each replace their own PUBLISH (aedes-persistence rewrote the first one)', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const client = { id: 'c' }
  for (const [counter, id] of [[1, 7], [2, 8]] as const) {
    await p.outgoingEnqueue({ clientId: 'c' }, packet('t', `m${counter}`, { brokerId: 'b', brokerCounter: counter, qos: 2 }))
    await p.outgoingUpdate(client, packet('t', `m${counter}`, { brokerId: 'b', brokerCounter: counter, messageId: id, qos: 2 }))
  }
  const first = { cmd: 'pubrel', messageId: 7, topic: '', payload: Buffer.alloc(0) }
  await p.outgoingUpdate(client, first)
  await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 8, topic: '', payload: Buffer.alloc(0) })
  const q: StoredPacket[] = []
  for await (const e of p.outgoingStream(client)) q.push(e as StoredPacket)
  assert.deepEqual(q.map((e) => `${e.cmd}:${e.messageId}`), ['pubrel:7', 'pubrel:8'])
  assert.equal(first.messageId, 7, 'the first PUBREL (whose write may still be pending) keeps its identifier')
})

test('a PUBREL replayed on reconnect, stamped with a broker id by aedes, still matches by identifier', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const client = { id: 'c' }
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'x', { brokerId: 'b', brokerCounter: 1, qos: 2 }))
  await p.outgoingUpdate(client, packet('t', 'x', { brokerId: 'b', brokerCounter: 1, messageId: 3, qos: 2 }))
  await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 3, topic: '', payload: Buffer.alloc(0) })
  // aedes' QoSPacket stamps its id and a new counter on the stored PUBREL it resends.
  await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 3, brokerId: 'b', brokerCounter: 99, topic: '', payload: Buffer.alloc(0) })
  const q: StoredPacket[] = []
  for await (const e of p.outgoingStream(client)) q.push(e as StoredPacket)
  assert.deepEqual(q.map((e) => `${e.cmd}:${e.messageId}`), ['pubrel:3'])
})

test('replay drops unsent duplicate entries of one message (overlapping subscriptions)', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const client = { id: 'c' }
  // aedes enqueues once per matching subscription of the session.
  await p.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'c' }], packet('a/b', 'once', { brokerId: 'b', brokerCounter: 1 }))
  await p.outgoingEnqueueCombi([{ clientId: 'c' }], packet('a/b', 'next', { brokerId: 'b', brokerCounter: 2 }))
  assert.equal(p.queuedFor('c'), 3)
  const replay: StoredPacket[] = []
  for await (const e of p.outgoingStream(client)) replay.push(e as StoredPacket)
  assert.deepEqual(replay.map((e) => e.payload.toString()), ['once', 'next'])
  assert.equal(p.queuedFor('c'), 2)
  assert.equal(p.queuedCount, 2)
})

test('a message aedes will not send is cleared by its stamp, never as "the first one without a packet id"', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const c = { id: 'c' }
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'old', { retain: false, brokerId: 'b', brokerCounter: 1 }))
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'new', { retain: false, brokerId: 'b', brokerCounter: 2 }))
  // aedes' deliverQoS when authorizeForward says no: the live packet, no packet id.
  const cleared = await p.outgoingClearMessageId(c, { brokerId: 'b', brokerCounter: 2 })
  assert.equal(cleared?.payload.toString(), 'new')
  assert.equal(await p.outgoingClearMessageId(c, {}), undefined)
  assert.deepEqual(p.exportQueue('c').map((e) => e.payload.toString()), ['old'])
  assert.equal(p.waitingAt('c', { brokerId: 'b', brokerCounter: 1 }), 0)
  await p.outgoingUpdate(c, { ...packet('t', 'old', { retain: false, brokerId: 'b', brokerCounter: 1 }), messageId: 9 })
  assert.equal(p.waitingAt('c', { brokerId: 'b', brokerCounter: 1 }), -1, 'sent: no longer waiting')
})

test('a message queued before the first entry a predicate picks keeps the publisher order; its name (msgId) is kept', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', '1', { brokerId: 'b', brokerCounter: 1, msgId: 'P/1' }))
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', '3', { brokerId: 'b', brokerCounter: 3, msgId: 'P/3' }))
  p.enqueueBefore('c', packet('t', '2', { brokerId: 'x', brokerCounter: 7, msgId: 'P/2' }), (e) => e.msgId === 'P/3')
  p.enqueueBefore('c', packet('t', '4', { brokerId: 'x', brokerCounter: 8, msgId: 'P/4' }), () => false)
  assert.deepEqual(p.exportQueue('c').map((e) => `${e.payload.toString()}:${e.msgId}`), ['1:P/1', '2:P/2', '3:P/3', '4:P/4'])
})
