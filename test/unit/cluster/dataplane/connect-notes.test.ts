// The notes session-moves.ts keeps of CONNECTs under way (noteLast,
// dropExpired): each CONNECT drops what expired, oldest first, and stops at
// the first note alive, so a burst of CONNECTs does not rescan every note.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { noteLast, dropExpired } from '../../../../src/server/cluster/dataplane/session-moves.js'

test('a repeated CONNECT moves its note to the end, so the map stays in expiry order', () => {
  const m = new Map<string, { until: number }>()
  noteLast(m, 'a', { until: 10 })
  noteLast(m, 'b', { until: 20 })
  noteLast(m, 'a', { until: 30 })
  assert.deepEqual([...m.keys()], ['b', 'a'])
  dropExpired(m, 25)
  assert.deepEqual([...m.entries()], [['a', { until: 30 }]])
})

test('expired notes go, live ones stay, and the scan stops at the first live note', () => {
  const m = new Map<string, { until: number }>()
  for (let i = 0; i < 1000; i++) noteLast(m, `c${i}`, { until: i })
  dropExpired(m, 500)
  assert.equal(m.size, 500)
  assert.equal([...m.keys()][0], 'c500')
  dropExpired(m, 500)
  assert.equal(m.size, 500, 'a note expiring now is still alive')
  // A note behind a live one is left for a later call (a clock stepped back), not lost track of.
  noteLast(m, 'late', { until: 0 })
  dropExpired(m, 600)
  assert.equal(m.has('late'), true)
  assert.equal(m.has('c600'), true)
  assert.equal(m.has('c599'), false)
  dropExpired(m, 10_000)
  assert.equal(m.size, 0)
})
