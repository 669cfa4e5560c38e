import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SessionStore, type StoredPacket } from '../../../src/server/mqtt/persistence.js'
import type { LimitName } from '../../../src/server/mqtt/metrics.js'

function make (limits: Partial<{ maxRetainedMessages: number, maxRetainedBytes: number, maxQueuedMessages: number }> = {}): { p: SessionStore, rejected: LimitName[] } {
  const rejected: LimitName[] = []
  const p = new SessionStore({
    limits: { maxRetainedMessages: 0, maxRetainedBytes: 0, maxQueuedMessages: 0, ...limits },
    onReject: (l) => rejected.push(l)
  })
  return { p, rejected }
}

const packet = (topic: string, payload: string, extra: Partial<StoredPacket> = {}): StoredPacket =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, ...extra })

async function retainedTopics (p: SessionStore): Promise<string[]> {
  const out: string[] = []
  for await (const r of p.createRetainedStream('#')) out.push(`${(r as StoredPacket).topic}=${(r as StoredPacket).payload.toString()}`)
  return out.sort()
}

test('setup is a native async function (aedes checks it)', () => {
  assert.equal(SessionStore.prototype.setup.constructor.name, 'AsyncFunction')
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

test('a message matching several subscriptions of one session is queued once', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  await p.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'c' }], packet('a/b', 'once', { brokerId: 'b', brokerCounter: 1 }))
  await p.outgoingEnqueueCombi([{ clientId: 'c' }], packet('a/b', 'next', { brokerId: 'b', brokerCounter: 2 }))
  assert.deepEqual(p.queue('c').map((e) => e.payload.toString()), ['once', 'next'])
  assert.equal(p.queuedCount, 2)
})

test('the ledger: a copy of a message queued lately is not queued again, also after it was acknowledged', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const c = { id: 'c' }
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'm', { brokerId: 'origin@1', brokerCounter: 5 }))
  assert.equal(p.enqueueFor('c', packet('t', 'm', { brokerId: 'origin@1', brokerCounter: 5 })).queued, false, 'a second copy')
  await p.outgoingUpdate(c, packet('t', 'm', { brokerId: 'origin@1', brokerCounter: 5, messageId: 1 }))
  await p.outgoingClearMessageId(c, { messageId: 1 })
  assert.equal(p.queuedFor('c'), 0)
  assert.equal(p.enqueueFor('c', packet('t', 'm', { brokerId: 'origin@1', brokerCounter: 5 })).queued, false, 'a late copy of a delivered message')
  assert.equal(p.enqueueFor('c', packet('t', 'm', { brokerId: 'origin@2', brokerCounter: 5 })).queued, true, 'another process, another message')
})

test('no-local: a session does not queue its own message unless another of its subscriptions wants it', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  await p.outgoingEnqueueCombi([{ clientId: 'me', nl: true } as never, { clientId: 'other' }], packet('t', 'x', { brokerId: 'b', brokerCounter: 1, clientId: 'me' }))
  assert.equal(p.queuedFor('me'), 0)
  assert.equal(p.queuedFor('other'), 1)
  await p.outgoingEnqueueCombi([{ clientId: 'me', nl: true } as never, { clientId: 'me' }], packet('t', 'y', { brokerId: 'b', brokerCounter: 2, clientId: 'me' }))
  assert.equal(p.queuedFor('me'), 1)
})

test('a message aedes will not send is cleared by its stamp, never as "the first one without a packet id"', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const c = { id: 'c' }
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'old', { retain: false, brokerId: 'b', brokerCounter: 1 }))
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'new', { retain: false, brokerId: 'b', brokerCounter: 2 }))
  const cleared = await p.outgoingClearMessageId(c, { brokerId: 'b', brokerCounter: 2 })
  assert.equal(cleared?.payload.toString(), 'new')
  assert.equal(await p.outgoingClearMessageId(c, {}), undefined)
  assert.deepEqual(p.exportQueue('c').queue.map((e) => e.payload.toString()), ['old'])
})

test('a copy that came by a slower path takes its place in its sender\'s order among the waiting messages', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', '1', { brokerId: 'P@1', brokerCounter: 1 }))
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', '3', { brokerId: 'P@1', brokerCounter: 3 }))
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'q1', { brokerId: 'Q@1', brokerCounter: 1 }))
  p.enqueueFor('c', packet('t', '2', { brokerId: 'P@1', brokerCounter: 2 }))
  p.enqueueFor('c', packet('t', '4', { brokerId: 'P@1', brokerCounter: 4 }))
  assert.deepEqual(p.queue('c').map((e) => e.payload.toString()), ['1', '2', '3', 'q1', '4'])
  // In flight already: a later copy of an earlier message goes behind it.
  await p.assign('c', 'P@1\u00001', 1)
  await p.assign('c', 'P@1\u00002', 2)
  p.enqueueFor('c', packet('t', '0', { brokerId: 'P@1', brokerCounter: 0 }))
  assert.deepEqual(p.queue('c').map((e) => e.payload.toString()), ['1', '2', '0', '3', 'q1', '4'])
})

test('a session ends whole: a clean start drops its subscriptions, queue, ledger and incoming QoS 2 state', async () => {
  const { p } = make()
  await p.setup({ id: 'b' })
  const c = { id: 'c' }
  await p.addSubscriptions(c, [{ topic: 't', qos: 1 }])
  await p.outgoingEnqueue({ clientId: 'c' }, packet('t', 'm', { brokerId: 'b', brokerCounter: 1 }))
  await p.incomingStorePacket(c, { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 2, messageId: 4 })
  assert.equal(p.hasSession('c'), true)
  await p.cleanSubscriptions(c)
  assert.equal(p.hasSession('c'), false)
  assert.equal(p.queuedFor('c'), 0)
  await assert.rejects(p.incomingGetPacket(c, { messageId: 4 }), /no such packet/)
  assert.equal(p.enqueueFor('c', packet('t', 'm', { brokerId: 'b', brokerCounter: 1 })).queued, true, 'the ledger went with it')
})

test('a session exported and imported elsewhere keeps its queue state, ledger and incoming identifiers', async () => {
  const a = make().p
  const b = make().p
  await a.setup({ id: 'a@1' })
  await b.setup({ id: 'b@1' })
  const c = { id: 'c' }
  await a.addSubscriptions(c, [{ topic: 't/#', qos: 2 }])
  await a.outgoingEnqueue({ clientId: 'c' }, packet('t/x', 'sent', { brokerId: 'a@1', brokerCounter: 1, qos: 2 }))
  await a.outgoingEnqueue({ clientId: 'c' }, packet('t/x', 'waiting', { brokerId: 'a@1', brokerCounter: 2, qos: 2 }))
  await a.outgoingUpdate(c, packet('t/x', 'sent', { brokerId: 'a@1', brokerCounter: 1, qos: 2, messageId: 7 }))
  await a.incomingStorePacket(c, { cmd: 'publish', topic: 'u', payload: Buffer.from('x'), qos: 2, messageId: 9 })
  await b.importSession('c', await a.exportSession('c'))
  assert.deepEqual(b.queue('c').map((e) => `${e.payload.toString()}:${e.messageId ?? '-'}`), ['sent:7', 'waiting:-'])
  assert.deepEqual((await b.subscriptionsByClient(c)).map((s) => s.topic), ['t/#'])
  assert.equal((await b.incomingGetPacket(c, { cmd: 'pubrel', messageId: 9 })).messageId, 9, 'its PUBREL finds it')
  assert.equal(b.enqueueFor('c', packet('t/x', 'sent', { brokerId: 'a@1', brokerCounter: 1 })).queued, false, 'the ledger came along')
})

/** Two stores stamping as nodes a@1 and b@1 from one counter, a persistent client, and a QoS 2 PUBLISH of it. */
function twoStampingNodes () {
  const a = make().p
  const b = make().p
  let counter = 0
  a.stamp = (p) => { p.brokerId = 'a@1'; p.brokerCounter = ++counter }
  b.stamp = (p) => { p.brokerId = 'b@1'; p.brokerCounter = ++counter }
  return { a, b, c: { id: 'c', clean: false }, sent: { cmd: 'publish', topic: 'u', payload: Buffer.from('x'), qos: 2 as const, messageId: 9 } }
}

test('a QoS 2 PUBLISH that came with its session is published again under its stamp when the client resends it', async () => {
  const { a, b, c, sent } = twoStampingNodes()
  await a.incomingStorePacket(c, { ...sent })
  const moved = await a.exportSession('c')
  assert.deepEqual(moved.incoming.map((p) => [p.messageId, p.brokerId, p.brokerCounter]), [[9, 'a@1', 1]], 'the stamp travels')
  await b.importSession('c', moved)
  // The node that took it may have died before passing it on: to aedes it is not here, so it is published again...
  await assert.rejects(b.incomingGetPacket(c, { cmd: 'publish', messageId: 9 }), /no such packet/)
  const resent: StoredPacket = { ...sent, dup: true }
  await b.incomingStorePacket(c, resent)
  assert.deepEqual([resent.brokerId, resent.brokerCounter], ['a@1', 1], '...under the stamp it had, which the ledgers know')
  // ...once: a further resend is only acknowledged.
  assert.equal((await b.incomingGetPacket(c, { cmd: 'publish', messageId: 9 })).brokerCounter, 1)
  // A new message under the same identifier (not a resend) is a new message.
  const b2 = make().p
  b2.stamp = (p) => { p.brokerId = 'b2@1'; p.brokerCounter = 77 }
  await b2.importSession('c', moved)
  const other: StoredPacket = { ...sent, payload: Buffer.from('another'), dup: false }
  await b2.incomingStorePacket(c, other)
  assert.deepEqual([other.brokerId, other.brokerCounter], ['b2@1', 77])
})

test('a copy replaced by a newer one keeps what was queued into it only: queued again, once, in order', async () => {
  const here = make().p
  const c = { id: 'c' }
  await here.addSubscriptions(c, [{ topic: 't/#', qos: 1 }])
  // A stale copy here got two messages while the newer copy, made elsewhere, got only the first.
  here.enqueueFor('c', packet('t/x', 'both', { brokerId: 'p@1', brokerCounter: 1 }))
  here.enqueueFor('c', packet('t/x', 'only-here', { brokerId: 'p@1', brokerCounter: 2 }))
  const newer = { subscriptions: [{ topic: 't/#', qos: 1 }], queue: [packet('t/x', 'both', { brokerId: 'p@1', brokerCounter: 1 })], ledger: ['p@1\u00001'], incoming: [] }
  await here.importSession('c', newer)
  assert.deepEqual(here.queue('c').map((e) => String(e.payload)), ['both', 'only-here'])
})

test('a released QoS 2 PUBLISH sent again on a later connection (Paho 1.6 after a failed reconnect) is published under its stamp; on the same connection, or changed, it is new', async () => {
  const a = make().p
  let counter = 0
  a.stamp = (p) => { p.brokerId = 'a@1'; p.brokerCounter = ++counter }
  const first = { id: 'c', clean: false }
  const sent = { cmd: 'publish', topic: 'u', payload: Buffer.from('x'), qos: 2 as const, messageId: 9 }
  await a.incomingStorePacket(first, { ...sent })
  await a.incomingDelPacket(first, { messageId: 9 }) // its PUBREL
  assert.equal(a.hasSession('c'), false, 'a released entry is no session state')
  assert.deepEqual(a.incomingIds('c'), [])
  await assert.rejects(a.incomingGetPacket(first, { cmd: 'pubrel', messageId: 9 }), /no such packet/, 'a PUBREL again finds nothing to release')
  const [kept] = a.incomingPackets('c')
  assert.equal(typeof kept?.released, 'number')
  assert.equal(kept?.payload.length, 32, 'its payload is kept as a digest')
  // The same connection using the identifier again: a new message.
  const again: StoredPacket = { ...sent }
  await a.incomingStorePacket(first, again)
  assert.equal(again.brokerCounter, 2)
  await a.incomingDelPacket(first, { messageId: 9 })
  // A later connection, the same message under the released identifier: the released message.
  const second = { id: 'c', clean: false }
  const resent: StoredPacket = { ...sent }
  await a.incomingStorePacket(second, resent)
  assert.deepEqual([resent.brokerId, resent.brokerCounter], ['a@1', 2], 'under the stamp it had')
  assert.deepEqual(a.incomingIds('c'), [9], 'awaiting its PUBREL again')
  await a.incomingDelPacket(second, { messageId: 9 })
  // Another payload under the identifier: new.
  const third = { id: 'c', clean: false }
  const changed: StoredPacket = { ...sent, payload: Buffer.from('y') }
  await a.incomingStorePacket(third, changed)
  assert.equal(changed.brokerCounter, 3)
})

test('a released QoS 2 PUBLISH travels with its session: sent again to the node the session moved to, it keeps its stamp', async () => {
  const { a, b, c, sent } = twoStampingNodes()
  await a.incomingStorePacket(c, { ...sent })
  await a.incomingDelPacket(c, { messageId: 9 })
  await b.importSession('c', await a.exportSession('c'))
  const onB = { id: 'c', clean: false }
  await assert.rejects(b.incomingGetPacket(onB, { cmd: 'publish', messageId: 9 }), /no such packet/)
  const resent: StoredPacket = { ...sent }
  await b.incomingStorePacket(onB, resent)
  assert.deepEqual([resent.brokerId, resent.brokerCounter], ['a@1', 1])
})

test('released QoS 2 PUBLISHes are remembered for a bounded number per session, oldest forgotten first, and the observer is told', async () => {
  const { RELEASED_MEMORY_MAX } = await import('../../../src/server/mqtt/persistence.js')
  const a = make().p
  let counter = 0
  a.stamp = (p) => { p.brokerId = 'a@1'; p.brokerCounter = ++counter }
  const told: Array<[number, boolean]> = []
  a.observer = {
    incomingStored: () => undefined,
    incomingReleased: (_id: string, messageId: number, kept?: StoredPacket) => { told.push([messageId, kept !== undefined]) }
  } as never
  const c = { id: 'c', clean: false }
  for (let id = 1; id <= RELEASED_MEMORY_MAX + 5; id++) {
    await a.incomingStorePacket(c, { cmd: 'publish', topic: 'u', payload: Buffer.from(String(id)), qos: 2, messageId: id })
    await a.incomingDelPacket(c, { messageId: id })
  }
  assert.equal(a.incomingPackets('c').length, RELEASED_MEMORY_MAX)
  assert.equal(a.incomingPackets('c')[0]?.messageId, 6, 'the five oldest forgotten')
  assert.deepEqual(told.filter(([, k]) => !k).map(([id]) => id), [1, 2, 3, 4, 5])
})

test('a PUBLISH that came with its session, resent without DUP (Paho 1.6 after a failed reconnect attempt), is still the same message until its PUBREL', async () => {
  const { a, b, c, sent } = twoStampingNodes()
  await a.incomingStorePacket(c, { ...sent })
  await b.importSession('c', await a.exportSession('c'))
  const resent: StoredPacket = { ...sent, dup: false }
  await b.incomingStorePacket(c, resent)
  assert.deepEqual([resent.brokerId, resent.brokerCounter], ['a@1', 1])
})
