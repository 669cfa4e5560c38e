import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RoutingTable, type RouteDelta } from '../../../../src/server/cluster/dataplane/routing-table.js'
import { seededRandom } from '../../../../src/server/cluster/membership/clock.js'

test('two local subscribers of one filter make one route, removed with the last', () => {
  const t = new RoutingTable('a')
  const d1 = t.subscribe('x/+')
  assert.deepEqual(d1, { version: 1, filter: 'x/+', count: 1 })
  assert.equal(t.subscribe('x/+'), undefined, 'the second subscriber changes nothing for peers')
  assert.equal(t.unsubscribe('x/+'), undefined)
  assert.deepEqual(t.unsubscribe('x/+'), { version: 2, filter: 'x/+', count: 0 })
  assert.equal(t.unsubscribe('x/+'), undefined, 'an extra unsubscribe is harmless')
  assert.deepEqual(t.localTable(), { version: 2, filters: [] })
})

test('a peer table built from deltas answers peersFor; a full table replaces it', () => {
  const a = new RoutingTable('a')
  const b = new RoutingTable('b')
  a.applyTable('b', b.localTable())
  for (const f of ['s/+/t', 'x/#', 'exact']) assert.equal(a.applyDelta('b', b.subscribe(f)!), 'applied')
  assert.deepEqual(a.peersFor('s/1/t'), ['b'])
  assert.deepEqual(a.peersFor('x'), ['b'])
  assert.deepEqual(a.peersFor('exact'), ['b'])
  assert.deepEqual(a.peersFor('other'), [])
  assert.equal(a.applyDelta('b', b.unsubscribe('x/#')!), 'applied')
  assert.deepEqual(a.peersFor('x/y'), [], 'the cached answer was invalidated')
  // A full table on reconnect replaces whatever was known.
  b.subscribe('new/+')
  b.unsubscribe('exact')
  a.applyTable('b', b.localTable())
  assert.deepEqual(a.peersFor('exact'), [])
  assert.deepEqual(a.peersFor('new/1'), ['b'])
  assert.deepEqual(a.peersFor('s/2/t'), ['b'])
  assert.equal(a.peerVersion('b'), b.localTable().version)
  a.removePeer('b')
  assert.deepEqual(a.peersFor('new/1'), [])
  assert.equal(a.size, 0)
})

test('stale and out-of-order deltas are detected', () => {
  const a = new RoutingTable('a')
  const b = new RoutingTable('b')
  const d1 = b.subscribe('one')!
  const d2 = b.subscribe('two')!
  const d3 = b.subscribe('three')!
  assert.equal(a.applyDelta('b', d1), 'gap', 'no table yet')
  a.applyTable('b', { version: 0, filters: [] })
  assert.equal(a.applyDelta('b', d2), 'gap', 'd1 is missing')
  assert.equal(a.applyDelta('b', d1), 'applied')
  assert.equal(a.applyDelta('b', d1), 'stale', 'a retransmission')
  assert.equal(a.applyDelta('b', d2), 'applied')
  a.applyTable('b', b.localTable())
  assert.equal(a.applyDelta('b', d3), 'stale', 'already contained in the full table')
  assert.deepEqual(a.peersFor('three'), ['b'])
})

test('random subscribe/unsubscribe sequences: deltas applied in order give the same routes as the full table', () => {
  const random = seededRandom(7)
  const filters = ['a/+', 'a/b', '#', 'c/#', '$share/g/a/+', '$share/h/#', 'd']
  const b = new RoutingTable('b')
  const viaDeltas = new RoutingTable('a')
  viaDeltas.applyTable('b', b.localTable())
  for (let i = 0; i < 2000; i++) {
    const f = filters[Math.floor(random() * filters.length)]!
    const d: RouteDelta | undefined = random() < 0.55 ? b.subscribe(f) : b.unsubscribe(f)
    if (d !== undefined) assert.equal(viaDeltas.applyDelta('b', d), 'applied')
  }
  const viaTable = new RoutingTable('a')
  viaTable.applyTable('b', b.localTable())
  for (const topic of ['a/b', 'a/c', 'c', 'c/d/e', 'd', 'zz']) {
    assert.deepEqual(viaDeltas.peersFor(topic), viaTable.peersFor(topic), topic)
    assert.deepEqual(viaDeltas.pickShared(topic), viaTable.pickShared(topic), topic)
  }
  assert.equal(viaDeltas.size, viaTable.size)
})

test('a shared subscription gets exactly one node per message, weighted by member count', () => {
  // Cluster of three: a has 1 member of $share/g/s/+, b has 2, c has 1; c also has a plain subscriber.
  const tables = new Map<string, RoutingTable>()
  for (const n of ['a', 'b', 'c']) tables.set(n, new RoutingTable(n))
  const a = tables.get('a')!
  const b = tables.get('b')!
  const c = tables.get('c')!
  a.subscribe('$share/g/s/+')
  b.subscribe('$share/g/s/+')
  b.subscribe('$share/g/s/+')
  c.subscribe('$share/g/s/+')
  c.subscribe('s/#')
  for (const [name, t] of tables) for (const [peer, p] of tables) if (peer !== name) t.applyTable(peer, p.localTable())

  const picks = new Map<string, number>()
  for (let i = 0; i < 400; i++) {
    const targets = a.pickShared('s/1')
    assert.equal(targets.length, 1, 'one copy per message for the group, cluster-wide')
    assert.equal(targets[0]!.group, 'g')
    assert.equal(targets[0]!.filter, 's/+')
    picks.set(targets[0]!.node, (picks.get(targets[0]!.node) ?? 0) + 1)
  }
  assert.deepEqual(Object.fromEntries(picks), { a: 100, b: 200, c: 100 }, 'exactly proportional to members')
  assert.deepEqual(a.peersFor('s/1'), ['c'], 'plain subscriptions route separately from the group')
  assert.deepEqual(a.pickShared('t/1'), [])

  // A node that loses its last member leaves the rotation.
  const d = b.unsubscribe('$share/g/s/+')!
  a.applyDelta('b', d)
  a.applyDelta('b', b.unsubscribe('$share/g/s/+')!)
  const seen = new Set<string>()
  for (let i = 0; i < 20; i++) seen.add(a.pickShared('s/x')[0]!.node)
  assert.deepEqual([...seen].sort(), ['a', 'c'])
  assert.deepEqual(d, { version: 3, filter: '$share/g/s/+', count: 1 }, 'member count changes are deltas too')
})

test('two groups on one filter each get one copy', () => {
  const a = new RoutingTable('a')
  const b = new RoutingTable('b')
  b.subscribe('$share/g1/t')
  b.subscribe('$share/g2/t')
  a.applyTable('b', b.localTable())
  a.subscribe('$share/g1/t')
  const targets = a.pickShared('t')
  assert.deepEqual(targets.map((t) => t.group).sort(), ['g1', 'g2'])
  assert.equal(a.peersFor('t').length, 0)
})

test('peersFor over many peers and filters stays fast (cached and uncached)', () => {
  const a = new RoutingTable('a')
  for (let p = 0; p < 20; p++) {
    const filters: Array<[string, number]> = []
    for (let i = 0; i < 5000; i++) filters.push([`dev/${p}-${i}/+/state`, 1])
    filters.push(['alerts/#', 1])
    a.applyTable(`peer-${String(p).padStart(2, '0')}`, { version: 1, filters })
  }
  const start = performance.now()
  let n = 0
  for (let i = 0; i < 20_000; i++) n += a.peersFor(`dev/${i % 20}-${i % 5000}/x/state`).length
  const ms = performance.now() - start
  console.log(`# peersFor: 20,000 lookups over ${a.size} routes in ${ms.toFixed(1)} ms`)
  assert.equal(n, 20_000)
  assert.deepEqual(a.peersFor('alerts/fire').length, 20)
  assert.ok(ms < 2000, `took ${ms} ms`)
})
