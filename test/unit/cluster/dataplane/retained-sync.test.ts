import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { HybridLogicalClock } from '../../../../src/server/cluster/dataplane/hlc.js'
import { RetainedStore } from '../../../../src/server/cluster/dataplane/retained-store.js'
import { RetainedSync } from '../../../../src/server/cluster/dataplane/retained-sync.js'
import { decodeMessage, encodeMessage, type DataPlaneMessage } from '../../../../src/server/cluster/dataplane/messages.js'
import { PeerLink } from '../../../../src/server/cluster/dataplane/peer-link.js'
import { LinkAcceptor, LinkListener } from '../../../../src/server/cluster/dataplane/link-acceptor.js'
import { NO_KEY } from '../../../../src/server/cluster/dataplane/link-handshake.js'
import { waitFor } from '../../../helpers/wait.js'

type Sync = Parameters<RetainedSync['handle']>[0]

function store (name: string, wall: { t: number }): RetainedStore {
  return new RetainedStore({ clock: new HybridLogicalClock(name, { now: () => wall.t }), now: () => wall.t, buckets: 256 })
}

/** Runs one round from `a` against `b` in memory, every message through the codec; returns the messages exchanged. */
function round (a: RetainedSync, b: RetainedSync): number {
  let count = 0
  const wire = (m: Sync): Sync => { count++; return decodeMessage(encodeMessage(m)) as Sync }
  let toB: Sync[] = [wire(a.begin())]
  while (toB.length > 0) {
    const toA = toB.flatMap((m) => b.handle(m)).map(wire)
    toB = toA.flatMap((m) => a.handle(m)).map(wire)
  }
  return count
}

const contents = (s: RetainedStore): Array<[string, string]> => [...s.all()].map((e): [string, string] => [e.topic, e.payload.toString()]).sort((x, y) => (x[0] < y[0] ? -1 : 1))

test('after a partition heals one round converges both sides, and a cleared topic stays cleared', () => {
  const wall = { t: 1_700_000_000_000 }
  const a = store('a', wall)
  const b = store('b', wall)
  for (let i = 0; i < 500; i++) b.merge(a.set(`t/${i}`, { payload: Buffer.from(`v${i}`), qos: 1 })!)
  // Partition: each side writes; a clears t/1 and t/2; b (behind) updates t/3 later.
  wall.t += 10
  a.clear('t/1')
  a.clear('t/2')
  a.set('only-a', { payload: Buffer.from('A'), qos: 0 })
  wall.t += 10
  b.set('t/3', { payload: Buffer.from('B3'), qos: 0 })
  b.set('only-b', { payload: Buffer.from('B'), qos: 0 })
  const sa = new RetainedSync(a)
  const sb = new RetainedSync(b)
  round(sa, sb)
  assert.deepEqual(contents(a), contents(b))
  assert.equal(b.get('t/1'), undefined)
  assert.equal(a.get('t/3')?.payload.toString(), 'B3')
  assert.equal(a.get('only-b')?.payload.toString(), 'B')
  assert.equal(sa.stats.repaired + sb.stats.repaired, 5)
  assert.ok(a.digest().equals(b.digest()))
  assert.equal(round(sb, sa), 1, 'in sync: one digest, no reply')
})

test('a new node receives 100,000 retained messages of 100 bytes over a real peer link (time printed)', async () => {
  const wall = { t: Date.now() }
  const source = new RetainedStore({ clock: new HybridLogicalClock('a', { now: () => wall.t }), buckets: 1024 })
  const payload = Buffer.alloc(100, 0x61)
  for (let i = 0; i < 100_000; i++) source.set(`sensor/${i}/state`, { payload, qos: 1 })
  const fresh = new RetainedStore({ clock: new HybridLogicalClock('b'), buckets: 1024 })
  const syncA = new RetainedSync(source)
  const syncB = new RetainedSync(fresh)
  const deliver = (link: () => PeerLink, sync: RetainedSync) => (payload: Buffer): void => {
    const m = decodeMessage(payload) as DataPlaneMessage
    void sendAll(link(), sync.handle(m as Sync))
  }
  // What integration must do too: hold replies while the link reports backpressure.
  const sendAll = async (link: PeerLink, messages: Sync[]): Promise<void> => {
    for (const m of messages) {
      const bytes = encodeMessage(m)
      while (link.send(bytes, 'reliable') === 'backpressure') await link.whenWritable()
    }
  }
  const linkB: PeerLink = new PeerLink({ localName: 'b', peerName: 'a', keys: NO_KEY, onMessage: deliver(() => linkB, syncB) })
  const listener = new LinkListener(new LinkAcceptor({ localName: 'b', keys: NO_KEY, lookup: (n) => (n === 'a' ? linkB : undefined) }))
  const { port } = await listener.start('127.0.0.1', 0)
  const linkA: PeerLink = new PeerLink({ localName: 'a', peerName: 'b', keys: NO_KEY, connect: () => connect({ host: '127.0.0.1', port }), onMessage: deliver(() => linkA, syncA) })
  try {
    linkB.start()
    linkA.start()
    await waitFor(() => linkA.state === 'up', { message: 'link up' })
    // The joining node opens the round: the source sees zero digests and streams whole buckets.
    const t = performance.now()
    linkB.send(encodeMessage(syncB.begin()), 'reliable')
    await waitFor(() => fresh.count === 100_000, { timeout: 20_000, interval: 5, message: '100,000 entries' })
    const ms = performance.now() - t
    console.log(`# retained transfer: 100,000 messages of 100 bytes to a new node in ${ms.toFixed(0)} ms over a loopback peer link ` +
      `(${linkA.stats().bytesSent} bytes, ${linkA.stats().frames} frames)`)
    assert.ok(fresh.digest().equals(source.digest()))
    assert.equal(syncB.stats.repaired, 100_000)
    assert.ok(ms < 15_000)
  } finally {
    linkA.stop()
    linkB.stop()
    await listener.stop()
  }
})
