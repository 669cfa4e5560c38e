// Same seed, same fault schedule; every kind shows up in a short run.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FAULT_KINDS, planSchedule, describeFault } from '../../../src/chaos/schedule.js'
import { seededRandom } from '../../../src/random.js'

const base = { nodes: 3, durationMs: 45_000, kinds: FAULT_KINDS }

test('the same seed gives the same schedule, another seed another one', () => {
  const a = planSchedule({ ...base, seed: 42 })
  const b = planSchedule({ ...base, seed: 42 })
  assert.deepEqual(a, b)
  assert.notDeepEqual(planSchedule({ ...base, seed: 43 }), a)
  assert.deepEqual(a.map((f) => describeFault(f, ['n1', 'n2', 'n3'])), b.map((f) => describeFault(f, ['n1', 'n2', 'n3'])))
})

test('a short run covers every fault kind once before repeating any', () => {
  for (const seed of [1, 2, 3, 42, 1000]) {
    const plan = planSchedule({ ...base, seed })
    assert.deepEqual(new Set(plan.slice(0, FAULT_KINDS.length).map((f) => f.kind)), new Set(FAULT_KINDS), `seed ${seed}`)
    for (const f of plan) {
      assert.ok(f.targets.length > 0 && f.targets.every((t) => t >= 0 && t < 3))
      if (f.kind === 'partition') assert.ok(f.targets.length <= 1, 'a minority side')
      if (f.kind === 'restart') assert.deepEqual(f.targets, [0, 1, 2])
    }
    const last = plan.at(-1)!
    assert.ok(last.at + last.holdMs < base.durationMs, 'fits in the duration')
    for (let i = 1; i < plan.length; i++) assert.ok(plan[i]!.at > plan[i - 1]!.at)
  }
})

test('faults that need two nodes are left out of a one-node run; no time, no faults', () => {
  const plan = planSchedule({ ...base, nodes: 1, seed: 5 })
  assert.ok(plan.every((f) => f.kind !== 'partition' && f.kind !== 'links' && f.kind !== 'gossip'))
  assert.deepEqual(planSchedule({ ...base, durationMs: 4000, seed: 5 }), [])
})

test('the random source is deterministic and uniform enough', () => {
  const r1 = seededRandom(7)
  const r2 = seededRandom(7)
  const xs = Array.from({ length: 1000 }, () => r1())
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => r2()))
  assert.ok(xs.every((x) => x >= 0 && x < 1))
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length
  assert.ok(mean > 0.45 && mean < 0.55)
})
