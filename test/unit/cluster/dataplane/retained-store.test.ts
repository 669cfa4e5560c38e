import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HybridLogicalClock } from '../../../../src/server/cluster/dataplane/hlc.js'
import { RetainedStore, diffBuckets, type RetainedEntry } from '../../../../src/server/cluster/dataplane/retained-store.js'
import { seededRandom, shuffle, type Random } from '../../../../src/server/cluster/membership/clock.js'

const T0 = 1_700_000_000_000

interface Node { store: RetainedStore, wall: { t: number } }

function node (name: string, options: { start?: number, ttl?: number, maxCount?: number, maxBytes?: number, buckets?: number } = {}): Node {
  const wall = { t: options.start ?? T0 }
  const clock = new HybridLogicalClock(name, { now: () => wall.t })
  const store = new RetainedStore({
    clock,
    now: () => wall.t,
    tombstoneTtlMs: options.ttl ?? 3600_000,
    maxCount: options.maxCount ?? 0,
    maxBytes: options.maxBytes ?? 0,
    buckets: options.buckets ?? 64
  })
  return { store, wall }
}

/** One anti-entropy round between a and b, as two nodes would run it over the wire; returns the topics exchanged. */
function sync (a: RetainedStore, b: RetainedStore): string[] {
  const buckets = diffBuckets(a.digest(), b.digest())
  const { push, pull } = a.reconcile(buckets, b.summarize(buckets))
  for (const e of push) b.merge(e)
  for (const e of b.entriesFor(pull)) a.merge(e)
  return [...push.map((e) => e.topic), ...pull]
}

function snapshot (s: RetainedStore): Map<string, string> {
  const m = new Map<string, string>()
  for (const e of s.all()) m.set(e.topic, `${e.payload.toString('hex')}@${e.stamp.wall}.${e.stamp.logical}.${e.stamp.node}`)
  return m
}

/** Random writes by three nodes with skewed, sometimes backwards-stepping wall clocks that also see some of each other's writes. */
function randomHistory (random: Random, ops: number, topics: number): RetainedEntry[] {
  const writers = [node('w1', { start: T0 }), node('w2', { start: T0 - 5000 }), node('w3', { start: T0 + 3000 })]
  const produced: RetainedEntry[] = []
  for (let i = 0; i < ops; i++) {
    const w = writers[Math.floor(random() * writers.length)]!
    w.wall.t += random() < 0.1 ? -Math.floor(random() * 2000) : Math.floor(random() * 3)
    if (produced.length > 0 && random() < 0.3) w.store.merge(produced[Math.floor(random() * produced.length)]!)
    const topic = `t/${Math.floor(random() * topics)}`
    const entry = random() < 0.25
      ? w.store.clear(topic)
      : w.store.set(topic, { payload: Buffer.from(`v${i}`), qos: (i % 3) as 0 | 1 | 2 })!
    produced.push(entry)
  }
  return produced
}

test('replicas that merge the same entries in any order converge (random histories)', () => {
  for (let seed = 1; seed <= 30; seed++) {
    const random = seededRandom(seed)
    const history = randomHistory(random, 300, 25)
    const r1 = node('r1').store
    const r2 = node('r2').store
    for (const e of history) r1.merge(e)
    for (const e of shuffle([...history], random)) r2.merge(e)
    assert.deepEqual(snapshot(r2), snapshot(r1), `seed ${seed}`)
    assert.ok(r1.digest().equals(r2.digest()), `seed ${seed}: equal contents give equal digests`)
    // A third replica that saw only part of the history catches up by anti-entropy alone.
    const r3 = node('r3').store
    for (const e of history) if (random() < 0.3) r3.merge(e)
    sync(r3, r1)
    assert.deepEqual(snapshot(r3), snapshot(r1), `seed ${seed}: after sync`)
    assert.deepEqual(sync(r3, r1), [], 'a second round finds nothing')
  }
})

test('a cleared topic never comes back after merging an older write, whatever the clocks say', () => {
  // B's wall clock is a minute behind A's, yet its clear follows A's write causally.
  const a = node('a', { start: T0 })
  const b = node('b', { start: T0 - 60_000 })
  const write = a.store.set('lamp', { payload: Buffer.from('on'), qos: 1 })!
  b.store.merge(write)
  const clear = b.store.clear('lamp')
  assert.equal(b.store.get('lamp'), undefined)
  // A third node sees the clear first, then the older write (e.g. from a node that missed the clear).
  const c = node('c')
  assert.equal(c.store.merge(clear), 'applied')
  assert.equal(c.store.merge(write), 'stale')
  assert.equal(c.store.get('lamp'), undefined)
  assert.equal(c.store.tombstones, 1)
  // A still holds the write (it missed the clear); anti-entropy hands it the clear, not the other way round.
  sync(a.store, c.store)
  assert.equal(a.store.get('lamp'), undefined)
  assert.equal(c.store.get('lamp'), undefined)
})

test('digest comparison finds exactly the topics that differ', () => {
  const random = seededRandom(99)
  for (let round = 0; round < 10; round++) {
    const a = node('a', { buckets: 256 })
    const b = node('b', { buckets: 256 })
    for (let i = 0; i < 2000; i++) b.store.merge(a.store.set(`base/${i}`, { payload: Buffer.from(`p${i}`), qos: 0 })!)
    const changed = new Set<string>()
    for (let k = 0; k < 1 + Math.floor(random() * 40); k++) {
      const which = Math.floor(random() * 3)
      const side = random() < 0.5 ? a : b
      side.wall.t += 1
      if (which === 0) { const t = `base/${Math.floor(random() * 2000)}`; side.store.set(t, { payload: Buffer.from('new'), qos: 1 }); changed.add(t) }
      if (which === 1) { const t = `base/${Math.floor(random() * 2000)}`; side.store.clear(t); changed.add(t) }
      if (which === 2) { const t = `only/${round}/${k}`; side.store.set(t, { payload: Buffer.from('x'), qos: 0 }); changed.add(t) }
    }
    const exchanged = sync(a.store, b.store)
    assert.deepEqual(new Set(exchanged), changed, `round ${round}`)
    assert.deepEqual(snapshot(a.store), snapshot(b.store))
  }
})

test('100,000 entries: digest, diff and reconcile of a few differences is fast', () => {
  const a = node('a', { buckets: 1024 })
  const b = node('b', { buckets: 1024 })
  const payload = Buffer.alloc(100, 1)
  const t0 = performance.now()
  for (let i = 0; i < 100_000; i++) b.store.merge(a.store.set(`sensor/${i}/state`, { payload, qos: 0 })!)
  const built = performance.now() - t0
  for (let i = 0; i < 100; i++) { a.wall.t++; a.store.set(`sensor/${i * 997}/state`, { payload: Buffer.from('changed'), qos: 0 }) }
  const start = performance.now()
  const digestA = a.store.digest()
  const digestB = b.store.digest()
  const buckets = diffBuckets(digestA, digestB)
  const summary = b.store.summarize(buckets)
  const { push, pull } = a.store.reconcile(buckets, summary)
  const ms = performance.now() - start
  console.log(`# retained anti-entropy: 100,000 entries per side (built both in ${built.toFixed(0)} ms), ${buckets.length} of 1024 buckets differ, ` +
    `summary ${summary.length} topics, found ${push.length} to push / ${pull.length} to pull in ${ms.toFixed(1)} ms; digest ${digestA.length} bytes`)
  assert.equal(push.length, 100)
  assert.equal(pull.length, 0)
  assert.ok(ms < 1000, `took ${ms} ms`)
})

test('tombstones are collected after the TTL, and an expired tombstone is not merged back', () => {
  const a = node('a', { ttl: 10_000 })
  const b = node('b', { ttl: 10_000 })
  b.store.merge(a.store.set('t', { payload: Buffer.from('x'), qos: 0 })!)
  a.wall.t += 1
  const clear = a.store.clear('t')
  assert.equal(a.store.gc(), 0, 'young tombstones stay')
  a.wall.t += 10_002
  b.wall.t += 10_002
  assert.equal(a.store.gc(), 1)
  assert.equal(a.store.getEntry('t'), undefined)
  assert.equal(a.store.merge(clear), 'stale', 'an expired tombstone is not resurrected')
  // b missed the clear but its live value is older than the (expired) tombstone: the clear still applies there.
  assert.equal(b.store.merge(clear), 'applied')
  assert.equal(b.store.get('t'), undefined)
  b.store.gc()
  assert.ok(a.store.digest().equals(b.store.digest()))
})

test('limits refuse new topics only; replacements and clears are always accepted', () => {
  const n = node('a', { maxCount: 2, maxBytes: 10 })
  assert.ok(n.store.set('a', { payload: Buffer.from('1234'), qos: 0 }))
  assert.ok(n.store.set('b', { payload: Buffer.from('1234'), qos: 0 }))
  assert.equal(n.store.set('c', { payload: Buffer.from('1'), qos: 0 }), undefined, 'count limit')
  assert.equal(n.store.refused, 1)
  assert.ok(n.store.set('a', { payload: Buffer.from('123456789'), qos: 0 }), 'a replacement passes even over the byte limit')
  assert.equal(n.store.bytes, 13)
  n.store.clear('b')
  assert.equal(n.store.count, 1)
  assert.equal(n.store.set('d', { payload: Buffer.from('12'), qos: 0 }), undefined, 'byte limit: 9 + 2 > 10')
  const other = node('o')
  const remote = other.store.set('e', { payload: Buffer.from('12'), qos: 0 })!
  assert.equal(n.store.merge(remote), 'refused', 'merges obey the limits too')
  assert.equal(n.store.refused, 3)
  n.store.clear('a')
  assert.ok(n.store.set('d', { payload: Buffer.from('12'), qos: 0 }), 'room again after a clear')
})

test('MQTT 5 properties and QoS are kept with the entry; match() serves retained delivery', () => {
  const n = node('a')
  const properties = { userProperties: { k: 'v' }, contentType: 'application/json', messageExpiryInterval: 60, payloadFormatIndicator: true }
  n.store.set('home/kitchen/temp', { payload: Buffer.from('{"c":21}'), qos: 2, properties })
  n.store.set('home/hall/temp', { payload: Buffer.from('19'), qos: 0 })
  n.store.clear('home/hall/temp')
  const got = n.store.get('home/kitchen/temp')!
  assert.equal(got.qos, 2)
  assert.deepEqual(got.properties, properties)
  assert.deepEqual([...n.store.match('home/+/temp')].map((e) => e.topic), ['home/kitchen/temp'], 'tombstones are not delivered')
})

test('an entry stamped beyond the maximum clock drift is refused and counted: it cannot win forever', () => {
  const wall = { t: T0 }
  const store = new RetainedStore({ clock: new HybridLogicalClock('a', { now: () => wall.t, maxForwardDriftMs: 60_000 }), now: () => wall.t })
  // A peer (skewed clock, or forged) stamps an entry a year ahead.
  const future: RetainedEntry = { topic: 'home/alarm', stamp: { wall: T0 + 365 * 86_400_000, logical: 0, node: 'rogue' }, payload: Buffer.from('off'), qos: 0 }
  assert.equal(store.merge(future), 'future')
  assert.equal(store.future, 1)
  assert.equal(store.get('home/alarm'), undefined)
  // A later local write is what holds.
  wall.t += 1000
  store.set('home/alarm', { payload: Buffer.from('on'), qos: 0 })
  assert.equal(store.get('home/alarm')!.payload.toString(), 'on')
  assert.equal(store.merge(future), 'future')
  assert.equal(store.get('home/alarm')!.payload.toString(), 'on')
  // Within the drift bound, an entry from a clock a little ahead still merges (and our clock follows it).
  const ahead: RetainedEntry = { topic: 'home/alarm', stamp: { wall: wall.t + 30_000, logical: 0, node: 'b' }, payload: Buffer.from('armed'), qos: 0 }
  assert.equal(store.merge(ahead), 'applied')
  assert.equal(store.get('home/alarm')!.payload.toString(), 'armed')
})
