import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ClockDriftError, HybridLogicalClock, compareStamps, decodeStamp, encodeStamp, type Stamp } from '../../../../src/server/cluster/dataplane/hlc.js'

function fakeWall (start = 1_700_000_000_000): { now: () => number, set: (t: number) => void } {
  let t = start
  return { now: () => t, set: (v) => { t = v } }
}

test('stamps from one clock strictly increase, also within one millisecond', () => {
  const wall = fakeWall()
  const c = new HybridLogicalClock('a', { now: wall.now })
  let prev = c.now()
  for (let i = 0; i < 1000; i++) {
    if (i % 100 === 0) wall.set(wall.now() + 1)
    const s = c.now()
    assert.equal(compareStamps(prev, s), -1)
    prev = s
  }
})

test('a wall clock stepped backwards does not make stamps go backwards', () => {
  const wall = fakeWall()
  const c = new HybridLogicalClock('a', { now: wall.now })
  const before = c.now()
  wall.set(wall.now() - 60_000)
  const after = c.now()
  assert.equal(compareStamps(before, after), -1)
  assert.equal(after.wall, before.wall, 'the wall part holds at the highest time seen')
  wall.set(before.wall + 5)
  assert.deepEqual(c.now(), { wall: before.wall + 5, logical: 0, node: 'a' }, 'and follows the wall clock again once it catches up')
})

test('observe() moves the clock past a remote stamp, even one from a clock ahead of ours', () => {
  const wallA = fakeWall(1000)
  const wallB = fakeWall(5000)
  const a = new HybridLogicalClock('a', { now: wallA.now })
  const b = new HybridLogicalClock('b', { now: wallB.now })
  const fromB = b.now()
  a.observe(fromB)
  const next = a.now()
  assert.equal(compareStamps(fromB, next), -1, 'a write after seeing B orders after B')
  assert.equal(next.wall, 5000)
  // Same wall on both: logical takes the max and ticks.
  const x = new HybridLogicalClock('x', { now: () => 7 })
  x.observe({ wall: 7, logical: 41, node: 'y' })
  assert.deepEqual(x.peek(), { wall: 7, logical: 42, node: 'x' })
})

test('the node name breaks ties, so the order is total', () => {
  const s1: Stamp = { wall: 10, logical: 3, node: 'a' }
  const s2: Stamp = { wall: 10, logical: 3, node: 'b' }
  assert.equal(compareStamps(s1, s2), -1)
  assert.equal(compareStamps(s2, s1), 1)
  assert.equal(compareStamps(s1, { ...s1 }), 0)
})

test('a stamp too far in the future is refused and leaves the clock alone', () => {
  const c = new HybridLogicalClock('a', { now: () => 1000, maxForwardDriftMs: 500 })
  c.now()
  assert.throws(() => c.observe({ wall: 2000, logical: 0, node: 'b' }), ClockDriftError)
  assert.equal(c.peek().wall, 1000)
  c.observe({ wall: 1400, logical: 0, node: 'b' })
  assert.equal(c.peek().wall, 1400)
})

test('encoded stamps round-trip and sort as strings in stamp order', () => {
  const stamps: Stamp[] = []
  for (let i = 0; i < 500; i++) {
    stamps.push({ wall: Math.floor(Math.random() * 2 ** 44), logical: Math.floor(Math.random() * 3), node: ['a', 'b', 'node-10', 'node-9'][i % 4]! })
  }
  for (const s of stamps) assert.deepEqual(decodeStamp(encodeStamp(s)), s)
  const byStamp = [...stamps].sort(compareStamps).map(encodeStamp)
  const byString = stamps.map(encodeStamp).sort()
  assert.deepEqual(byString, byStamp)
  assert.throws(() => decodeStamp('nonsense'), RangeError)
})
