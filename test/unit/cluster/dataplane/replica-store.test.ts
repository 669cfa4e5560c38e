import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ReplicaStore, sessionExpiresAt, willDueAt, type ClientReplicaOp } from '../../../../src/server/cluster/dataplane/replica-store.js'

const stamp = (wall: number): { wall: number, logical: number, node: string } => ({ wall, logical: 0, node: 'a' })
const pub = (topic: string, counter: number): { cmd: string, topic: string, payload: Buffer, qos: number, brokerId: string, brokerCounter: number } =>
  ({ cmd: 'publish', topic, payload: Buffer.from(topic), qos: 1, brokerId: 'b1', brokerCounter: counter })

function snapshot (clientId: string, wall: number): ClientReplicaOp {
  return { clientId, op: 'snapshot', snapshot: { stamp: stamp(wall), connected: true, subscriptions: [{ topic: 't/#', qos: 1 }], queue: [], ledger: [], incoming: [], will: null } }
}

test('a replica follows its home: queue operations as the home applied them, in order, with the ledger', () => {
  const store = new ReplicaStore(0)
  store.apply('home', snapshot('c', 1))
  store.apply('home', { clientId: 'c', op: 'enqueue', packet: pub('t/1', 1) })
  store.apply('home', { clientId: 'c', op: 'enqueue', packet: pub('t/3', 3) })
  // A late copy the home put before its publisher's later message: the same place here.
  store.apply('home', { clientId: 'c', op: 'enqueue', packet: pub('t/2', 2), at: 1 })
  store.apply('home', { clientId: 'c', op: 'sent', stamp: 'b1\u00001', messageId: 7, qos: 1 })
  store.apply('home', { clientId: 'c', op: 'release', messageId: 7 })
  store.apply('home', { clientId: 'c', op: 'sent', stamp: 'b1\u00002', messageId: 8, qos: 1 })
  store.apply('home', { clientId: 'c', op: 'clear', messageId: 8 })
  store.apply('home', { clientId: 'c', op: 'clear', stamp: 'b1\u00003' })
  store.apply('home', { clientId: 'c', op: 'incoming', messageId: 4, packet: { cmd: 'publish', topic: 'q', payload: Buffer.from('z'), qos: 2, messageId: 4, brokerId: 'b@1', brokerCounter: 5 } })
  store.apply('home', { clientId: 'c', op: 'subscribe', subscriptions: [{ topic: 'u', qos: 2 }] })
  store.apply('home', { clientId: 'c', op: 'unsubscribe', topics: ['t/#'] })
  const r = store.peek('c')!
  assert.deepEqual(r.session.queue.map((p) => [p.cmd, p.messageId]), [['pubrel', 7]], 'the first at PUBREL, the second acknowledged, the third dropped')
  assert.deepEqual(r.session.subscriptions, [{ topic: 'u', qos: 2 }])
  assert.deepEqual([...r.session.ledger].sort(), ['b1\u00001', 'b1\u00002', 'b1\u00003'], 'the ledger keeps what was queued, delivered or not')
  assert.deepEqual(r.session.incoming.map((p) => [p.messageId, p.brokerCounter]), [[4, 5]])
  assert.equal(r.session.rescueFrom, 'home')
  assert.equal(store.queued, 1)
  assert.equal(store.ignored, 0)
})

test('only the home changes a replica; a late snapshot from an older home does not replace a newer one', () => {
  const store = new ReplicaStore(0)
  store.apply('b', snapshot('c', 5))
  store.apply('a', { clientId: 'c', op: 'drop' })
  store.apply('a', { clientId: 'c', op: 'enqueue', packet: pub('t/1', 1) })
  assert.equal(store.ignored, 2)
  assert.equal(store.ownerOf('c'), 'b')
  store.apply('a', snapshot('c', 4))
  assert.equal(store.ownerOf('c'), 'b', 'older snapshot from another home ignored')
  store.apply('a', snapshot('c', 6))
  assert.equal(store.ownerOf('c'), 'a', 'a newer one takes over')
  assert.deepEqual(store.ownedBy('a'), ['c'])
  store.apply('a', { clientId: 'c', op: 'drop' })
  assert.equal(store.has('c'), false)
})

test('a copy taken over from a node believed dead does not replace the replica of the original session', () => {
  const store = new ReplicaStore(0)
  store.apply('home', snapshot('c', 5))
  const promoted = snapshot('c', 5)
  if (promoted.op === 'snapshot') promoted.snapshot.promoted = true
  store.apply('taker', promoted)
  assert.equal(store.ownerOf('c'), 'home', 'same session, and the original wins')
  store.apply('taker', { clientId: 'c', op: 'drop' })
  assert.equal(store.ownerOf('c'), 'home', 'the taker giving it back drops nothing here')
  // The same copy where no replica is held: kept (the home may be dead).
  store.apply('taker', { ...promoted, clientId: 'd' })
  assert.equal(store.ownerOf('d'), 'taker')
})

test('take hands a replica out once, with its will and connection state', () => {
  const store = new ReplicaStore(0)
  store.apply('h', snapshot('c', 1))
  store.apply('h', { clientId: 'c', op: 'will', will: { cmd: 'publish', topic: 'w', payload: Buffer.from('bye'), properties: { willDelayInterval: 5 } } })
  store.apply('h', { clientId: 'c', op: 'connection', connection: { connected: false, disconnectedAt: 1000, expiry: 30 } })
  const t = store.take('c')!
  assert.equal(t.owner, 'h')
  assert.equal(t.will?.topic, 'w')
  assert.equal(store.take('c'), undefined)
  // Will: at the smaller of will delay (5 s) and expiry (30 s) after the disconnect; expiry 30 s after it.
  assert.equal(willDueAt(t, 99_999), 6000)
  assert.equal(sessionExpiresAt(t, 99_999), 31_000)
  // Connected when its home died: timed from the death.
  assert.equal(willDueAt({ ...t, connected: true }, 50_000), 55_000)
  assert.equal(sessionExpiresAt({ connected: false, expiry: 0xFFFFFFFF }, 1), undefined)
  assert.equal(willDueAt({ connected: true, will: null }, 1), undefined)
})

test('a replica read back from disk is unconfirmed until its home refreshes it, keeps its home identity, and tells every change', async () => {
  const { replicaRecord, takenReplica } = await import('../../../../src/server/storage/replica-records.js')
  const home = new ReplicaStore(0)
  const changed: string[] = []
  home.changed = (id) => changed.push(id)
  const s = snapshot('c', 3)
  if (s.op === 'snapshot') s.snapshot.home = 'store:abc'
  home.apply('h', s)
  home.apply('h', { clientId: 'c', op: 'enqueue', packet: pub('t/1', 1) })
  home.apply('h', { clientId: 'x', op: 'drop' })
  assert.deepEqual(changed, ['c', 'c', 'x'], 'each operation is told (storage writes the replica, or erases it)')

  // What storage writes and reads back (the disk round trip: storage-replicas.test.ts).
  const record = takenReplica(replicaRecord(home.peek('c')!))
  const holder = new ReplicaStore(0)
  holder.restore('c', record)
  assert.equal(holder.isUnconfirmed('c'), true)
  assert.deepEqual(holder.unconfirmedOf('h'), [{ clientId: 'c', home: 'store:abc' }])
  assert.deepEqual(holder.peek('c')!.session.queue.map((p) => p.topic), ['t/1'], 'its queue is back')
  assert.equal(holder.peek('c')!.session.stamp.wall, 3)
  assert.throws(() => takenReplica({ ...replicaRecord(home.peek('c')!), s: 'no' }), /bad replica stamp/)

  // Its home sends a snapshot again: confirmed, and no longer listed.
  holder.apply('h', snapshot('c', 4))
  assert.equal(holder.isUnconfirmed('c'), false)
  assert.deepEqual(holder.unconfirmedOf('h'), [])
})

test('a will as aedes stores it (its broker\'s id, no counter) survives the replica\'s disk round trip', async () => {
  const { replicaRecord, takenReplica } = await import('../../../../src/server/storage/replica-records.js')
  const aedesWill = { cmd: 'publish' as const, topic: 'status/dev', payload: Buffer.from('offline'), qos: 1 as const, retain: true, brokerId: 'n3@3c239e37', clientId: 'dev' }
  const holder = new ReplicaStore(0)
  holder.apply('h', snapshot('dev', 1))
  // A home of the previous version sent those fields with the will op; the holder's record carries them.
  holder.apply('h', { clientId: 'dev', op: 'will', will: aedesWill })
  const record = replicaRecord(holder.peek('dev')!)
  const back = takenReplica(JSON.parse(JSON.stringify(record), (_k, v) => v?.type === 'Buffer' ? Buffer.from(v.data) : v))
  assert.deepEqual(back.will, { cmd: 'publish', topic: 'status/dev', payload: Buffer.from('offline'), qos: 1, retain: true })
  // A record written before (the will with its stamp fields, which used to fail the check and be deleted) reads back too.
  const old = { ...record, will: aedesWill }
  assert.equal(takenReplica(old).will?.brokerId, undefined)
})
