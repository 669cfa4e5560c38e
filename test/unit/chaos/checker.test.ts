// The checker must catch what it is there for: each history below carries
// exactly one defect, and the invariant about it must fail while a clean
// history passes them all.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkHistory, type CheckResult } from '../../../src/chaos/checker.js'
import type { InvariantId } from '../../../src/chaos/invariants.js'
import { Builder, options } from './history-builder.js'

const status = (r: CheckResult, id: InvariantId) => r.verdicts.find((v) => v.id === id)!.status
const failing = (r: CheckResult) => r.verdicts.filter((v) => v.status === 'fail').map((v) => v.id)

function cleanRun (): Builder {
  const b = Builder.clean()
  for (let i = 1; i <= 5; i++) b.message(i, 0).message(i, 1).message(i, 2)
  b.add({ type: 'retained', client: 'ret-1', conn: 'r1', node: 'a', topic: 'chaos/r/1', value: 'v1' })
  b.add({ type: 'retained', client: 'ret-1', conn: 'r1', node: 'a', topic: 'chaos/r/2', value: null })
  b.add({ type: 'clients-sample', duplicates: [] }).at(b.t + 1000).add({ type: 'clients-sample', duplicates: [] })
  return b
}

function withFinalRetained (b: Builder, a: Record<string, string>, bNode: Record<string, string>): Builder {
  return b.add({ type: 'retained-final', node: 'a', topics: a }).add({ type: 'retained-final', node: 'b', topics: bNode })
}

test('a clean history passes every invariant, in both scopes', () => {
  for (const crossNode of [false, true]) {
    const r = checkHistory(withFinalRetained(cleanRun(), { 'chaos/r/1': 'v1' }, { 'chaos/r/1': 'v1' }).end(), options(crossNode))
    assert.deepEqual(failing(r), [], JSON.stringify(r.verdicts, null, 1))
    assert.equal(r.ok, true)
    assert.equal(r.summary.acknowledged[1], 5)
    assert.equal(r.verdicts.find((v) => v.id === 'lost-acked')!.figure, '0 of 10')
  }
})

test('a lost acknowledged QoS 1 message fails lost-acked', () => {
  const b = cleanRun().message(6, 1, null).message(7, 1)
  const r = checkHistory(b.end(), options())
  assert.deepEqual(failing(r), ['lost-acked'])
  assert.equal(r.ok, false)
  assert.match(r.verdicts.find((v) => v.id === 'lost-acked')!.details[0]!, /missed chaos\/d\/pub-1\/q1#6/)
})

test('a lost QoS 0 message is reported, not failed', () => {
  const r = checkHistory(cleanRun().message(6, 0, null).end(), options())
  assert.equal(status(r, 'qos0-loss'), 'info')
  assert.equal(r.verdicts.find((v) => v.id === 'qos0-loss')!.value, 1)
  assert.equal(r.ok, true)
})

test('a message acknowledged before the subscription took effect is not owed', () => {
  const b = new Builder()
  b.add({ type: 'run-start', seed: 1, nodes: ['a'], faults: [], durationMs: 1000 })
  b.add({ type: 'connect', client: 'pub-1', conn: 'p1', role: 'publisher', node: 'a', protocol: 4, clean: true, sessionPresent: false })
  b.message(1, 1, null)
  b.add({ type: 'connect', client: 'sub-1', conn: 's1', role: 'subscriber', node: 'a', protocol: 5, clean: true, sessionPresent: false })
  b.add({ type: 'subscribed', client: 'sub-1', conn: 's1', node: 'a', filter: 'chaos/d/#' })
  assert.equal(checkHistory(b.end(), options()).verdicts.find((v) => v.id === 'lost-acked')!.figure, '0 of 0')
})

test('without the data plane only same-node publishers are owed; with it every node is', () => {
  const b = cleanRun()
  b.add({ type: 'publish', client: 'pub-2', conn: 'p2', node: 'b', topic: 'chaos/d/pub-2/q1', seq: 1, qos: 1 })
  b.add({ type: 'ack', client: 'pub-2', conn: 'p2', node: 'b', topic: 'chaos/d/pub-2/q1', seq: 1, qos: 1 })
  const events = withFinalRetained(b, { 'chaos/r/1': 'v1' }, { 'chaos/r/1': 'v1' }).end()
  assert.equal(status(checkHistory(events, options(false)), 'lost-acked'), 'pass')
  assert.equal(status(checkHistory(events, options(true)), 'lost-acked'), 'fail')
})

test('a session that died with its node owes only what it was demonstrably being sent', () => {
  const b = cleanRun()
  b.message(6, 1, null) // lost in the node's death: not owed...
  b.at(b.t + 1000).add({ type: 'disconnect', client: 'sub-1', conn: 's1', node: 'a', reason: 'connection lost' })
  b.add({ type: 'connect', client: 'sub-1', conn: 's2', role: 'subscriber', node: 'b', protocol: 5, clean: true, sessionPresent: false })
  b.add({ type: 'subscribed', client: 'sub-1', conn: 's2', node: 'b', filter: 'chaos/d/#' })
  b.add({ type: 'disconnect', client: 'sub-1', conn: 's2', node: 'b', reason: 'run-end' }).add({ type: 'run-end' })
  let r = checkHistory([...b.events].sort((x, y) => x.t - y.t), options())
  assert.equal(status(r, 'lost-acked'), 'pass')
  // ...but a gap before a later message that did arrive in the same session is a loss.
  const c = cleanRun().message(6, 1, null)
  c.at(c.t + 1000).message(7, 1)
  c.at(c.t + 1000).add({ type: 'disconnect', client: 'sub-1', conn: 's1', node: 'a', reason: 'connection lost' })
  c.add({ type: 'connect', client: 'sub-1', conn: 's2', role: 'subscriber', node: 'b', protocol: 5, clean: true, sessionPresent: false })
  c.add({ type: 'run-end' })
  r = checkHistory([...c.events].sort((x, y) => x.t - y.t), options())
  assert.equal(status(r, 'lost-acked'), 'fail')
})

test('a persistent session that moved to another node owes the move window only in the full scope', () => {
  const b = Builder.clean()
  b.events.splice(0, b.events.length, ...b.events.map((e) => e.type === 'connect' && e.role === 'subscriber' ? { ...e, clean: false } : e))
  b.message(1, 1)
  b.add({ type: 'disconnect', client: 'sub-1', conn: 's1', node: 'a', reason: 'node stopped' })
  b.message(2, 1, null) // acknowledged while the session moved: never arrives
  b.add({ type: 'connect', client: 'sub-1', conn: 's2', role: 'subscriber', node: 'b', protocol: 5, clean: false, sessionPresent: true })
  b.add({ type: 'disconnect', client: 'sub-1', conn: 's2', node: 'b', reason: 'run-end' }).add({ type: 'run-end' })
  const events = [...b.events].sort((x, y) => x.t - y.t)
  assert.equal(status(checkHistory(events, options(true)), 'lost-acked'), 'pass', 'cluster scope: sessions per node')
  assert.equal(status(checkHistory(events, options(true, true)), 'lost-acked'), 'fail', 'full scope: the session moved with session present')
})

test('a persistent session resumed on its node still owes what was queued while away', () => {
  const b = Builder.clean()
  b.events.splice(0, b.events.length, ...b.events.map((e) => e.type === 'connect' && e.role === 'subscriber' ? { ...e, clean: false } : e))
  b.message(1, 1)
  b.add({ type: 'disconnect', client: 'sub-1', conn: 's1', node: 'a', reason: 'keepalive timeout' })
  b.message(2, 2, null)
  b.add({ type: 'connect', client: 'sub-1', conn: 's2', role: 'subscriber', node: 'a', protocol: 5, clean: false, sessionPresent: true })
  b.add({ type: 'disconnect', client: 'sub-1', conn: 's2', node: 'a', reason: 'run-end' }).add({ type: 'run-end' })
  const r = checkHistory([...b.events].sort((x, y) => x.t - y.t), options())
  assert.equal(status(r, 'lost-acked'), 'fail')
})

test('losing a persistent session fails only where sessions are owed across nodes (full scope)', () => {
  const b = cleanRun()
  b.add({ type: 'connect', client: 'sub-p', conn: 'x1', role: 'subscriber', node: 'a', protocol: 5, clean: false, sessionPresent: false })
  b.add({ type: 'disconnect', client: 'sub-p', conn: 'x1', node: 'a', reason: 'connection lost' })
  b.add({ type: 'connect', client: 'sub-p', conn: 'x2', role: 'subscriber', node: 'b', protocol: 5, clean: false, sessionPresent: false })
  const events = withFinalRetained(b, { 'chaos/r/1': 'v1' }, { 'chaos/r/1': 'v1' }).end()
  assert.equal(status(checkHistory(events, options(false)), 'lost-acked'), 'pass')
  assert.equal(status(checkHistory(events, options(true)), 'lost-acked'), 'pass', 'cluster scope: sessions are per node')
  assert.equal(status(checkHistory(events, options(true, true)), 'lost-acked'), 'fail')
})

test('a QoS 2 message delivered twice fails qos2-duplicates (and, with no fault, duplicates-without-faults)', () => {
  const b = cleanRun().message(6, 2)
  b.deliver(6, 2)
  const r = checkHistory(b.end(), options())
  assert.deepEqual(failing(r).sort(), ['duplicates-without-faults', 'qos2-duplicates'])
})

test('a QoS 1 duplicate during a fault is allowed, without a fault it is not', () => {
  const during = cleanRun()
  during.add({ type: 'fault-start', id: 1, kind: 'pause', targets: ['b'], description: 'pause b' })
  during.message(6, 1).deliver(6, 1)
  during.add({ type: 'fault-end', id: 1 })
  during.add({ type: 'view', node: 'a', members: { a: 'alive', b: 'alive' } })
  assert.equal(status(checkHistory(during.end(), options()), 'duplicates-without-faults'), 'pass')
  const quiet = cleanRun().message(6, 1)
  quiet.deliver(6, 1)
  assert.equal(status(checkHistory(quiet.end(), options()), 'duplicates-without-faults'), 'fail')
})

test('a reordering fails order', () => {
  const b = cleanRun()
  b.message(6, 1, 150).message(7, 1, 10) // 7 arrives before 6
  const r = checkHistory(b.end(), options())
  assert.deepEqual(failing(r), ['order'])
  assert.match(r.verdicts.find((v) => v.id === 'order')!.details[0]!, /#6 after #7/)
})

test('a diverged retained set fails retained-divergence once the data plane is in, and is skipped before', () => {
  const events = withFinalRetained(cleanRun(), { 'chaos/r/1': 'v1' }, { 'chaos/r/1': 'v0' }).end()
  const full = checkHistory(events, options(true))
  assert.deepEqual(failing(full), ['retained-divergence'])
  assert.match(full.verdicts.find((v) => v.id === 'retained-divergence')!.details[0]!, /chaos\/r\/1: a=v1 b=v0/)
  const today = checkHistory(events, options(false))
  assert.equal(status(today, 'retained-divergence'), 'skip')
  assert.equal(today.ok, true)
})

test('a node missing from the final retained query fails divergence', () => {
  const b = cleanRun().add({ type: 'retained-final', node: 'a', topics: { 'chaos/r/1': 'v1' } }).add({ type: 'retained-final', node: 'b', topics: null })
  assert.equal(status(checkHistory(b.end(), options(true)), 'retained-divergence'), 'fail')
})

test('a cleared retained topic that comes back fails retained-resurrected', () => {
  // Cleared on a: a holding it fails in both scopes; b holding it only once clears cross nodes.
  const onA = withFinalRetained(cleanRun(), { 'chaos/r/1': 'v1', 'chaos/r/2': 'old' }, { 'chaos/r/1': 'v1' }).end()
  assert.equal(status(checkHistory(onA, options(false)), 'retained-resurrected'), 'fail')
  const onB = withFinalRetained(cleanRun(), { 'chaos/r/1': 'v1' }, { 'chaos/r/1': 'v1', 'chaos/r/2': 'old' }).end()
  assert.equal(status(checkHistory(onB, options(false)), 'retained-resurrected'), 'pass')
  assert.equal(status(checkHistory(onB, options(true)), 'retained-resurrected'), 'fail')
})

test('a client id on two nodes in consecutive samples fails; a single racy sample does not', () => {
  const once = cleanRun()
  once.add({ type: 'clients-sample', duplicates: [{ client: 'tk-1', nodes: ['a', 'b'] }] }).at(once.t + 500).add({ type: 'clients-sample', duplicates: [] })
  assert.equal(status(checkHistory(once.end(), options()), 'client-id-twice'), 'pass')
  const twice = cleanRun()
  twice.add({ type: 'clients-sample', duplicates: [{ client: 'tk-1', nodes: ['a', 'b'] }] }).at(twice.t + 500).add({ type: 'clients-sample', duplicates: [{ client: 'tk-1', nodes: ['b', 'a'] }] })
  const r = checkHistory(twice.end(), options())
  assert.deepEqual(failing(r), ['client-id-twice'])
})

test('membership that does not converge after a fault fails; convergence within the bound passes', () => {
  const make = (convergeAfter: number | undefined) => {
    const b = cleanRun()
    const t0 = b.t
    b.add({ type: 'fault-start', id: 1, kind: 'kill', targets: ['b'], description: 'kill b' })
    b.add({ type: 'node', node: 'b', state: 'killed' })
    b.at(t0 + 1500).add({ type: 'view', node: 'a', members: { a: 'alive', b: 'dead' } })
    b.at(t0 + 3000).add({ type: 'node', node: 'b', state: 'up' }).add({ type: 'fault-end', id: 1 })
    b.add({ type: 'view', node: 'b', members: { a: 'alive', b: 'alive' } })
    if (convergeAfter !== undefined) b.at(t0 + 3000 + convergeAfter).add({ type: 'view', node: 'a', members: { a: 'alive', b: 'alive' } })
    b.at(t0 + 20_000)
    return checkHistory(b.end(), options())
  }
  const good = make(800)
  assert.equal(status(good, 'membership-convergence'), 'pass')
  assert.match(good.verdicts.find((v) => v.id === 'membership-convergence')!.figure, /max 0\.8 s after heal, detect 1\.5 s/)
  assert.equal(status(make(9000), 'membership-convergence'), 'fail')
  assert.equal(status(make(undefined), 'membership-convergence'), 'fail')
})

test('a member listed dead while only UDP is cut fails membership-convergence; staying alive passes', () => {
  const make = (seen: 'alive' | 'suspect' | 'dead') => {
    const b = cleanRun()
    const t0 = b.t
    b.add({ type: 'fault-start', id: 1, kind: 'udp', targets: ['b'], description: 'drop UDP of {b}' })
    b.at(t0 + 2000).add({ type: 'view', node: 'a', members: { a: 'alive', b: seen } })
    b.at(t0 + 3000).add({ type: 'fault-end', id: 1 }).add({ type: 'view', node: 'a', members: { a: 'alive', b: 'alive' } })
    b.at(t0 + 20_000)
    return checkHistory(b.end(), options())
  }
  assert.equal(status(make('alive'), 'membership-convergence'), 'pass')
  assert.equal(status(make('suspect'), 'membership-convergence'), 'pass')
  const dead = make('dead')
  assert.equal(status(dead, 'membership-convergence'), 'fail')
  assert.match(dead.verdicts.find((v) => v.id === 'membership-convergence')!.details.join('\n'), /fault #1 udp b: a listed b dead while only UDP was cut/)
})

test('a publisher that never publishes again fails publish-recovery', () => {
  const b = cleanRun()
  b.add({ type: 'publish-failed', client: 'pub-1', conn: 'p1', node: 'a', topic: 'chaos/d/pub-1/q1', seq: 9, qos: 1, reason: 'timeout' })
  b.at(b.t + 60_000)
  assert.equal(status(checkHistory(b.end(), options()), 'publish-recovery'), 'fail')
  const ok = cleanRun()
  ok.add({ type: 'publish-failed', client: 'pub-1', conn: 'p1', node: 'a', topic: 'chaos/d/pub-1/q1', seq: 9, qos: 1, reason: 'timeout' })
  ok.at(ok.t + 2000).message(10, 1)
  const r = checkHistory(ok.end(), options())
  assert.equal(status(r, 'publish-recovery'), 'pass')
  assert.equal(r.verdicts.find((v) => v.id === 'publish-recovery')!.value, 2000)
})


test('publish-recovery: time in a fault that began during an outage is not counted; the time between faults is', () => {
  const run = (gaps: number[]): ReturnType<typeof checkHistory> => {
    const b = cleanRun()
    b.add({ type: 'fault-start', id: 1, kind: 'restart-all', targets: ['a', 'b'], description: 'restart all' })
    b.add({ type: 'publish-failed', client: 'pub-1', conn: 'p1', node: 'a', topic: 'chaos/d/pub-1/q1', seq: 9, qos: 1, reason: 'timeout' })
    b.at(b.t + 10_000).add({ type: 'fault-end', id: 1 })
    // Each later fault begins `gap` ms after the last ended and lasts 15 s.
    gaps.forEach((gap, i) => {
      b.at(b.t + gap).add({ type: 'fault-start', id: i + 2, kind: 'restart-all', targets: ['a', 'b'], description: 'restart all' })
      b.at(b.t + 15_000).add({ type: 'fault-end', id: i + 2 })
    })
    b.at(b.t + 2000).message(10, 1)
    return checkHistory(b.end(), options())
  }
  const back = run([4000])
  assert.equal(status(back, 'publish-recovery'), 'pass')
  assert.equal(back.verdicts.find((v) => v.id === 'publish-recovery')!.value, 16_000, '10 s of the first fault, 4 s between, 2 s after the second')
  assert.equal(status(run([9000, 9000, 9000]), 'publish-recovery'), 'fail', 'stuck through three faults: 10 + 27 + 2 s outside the later ones')
})

test('a QoS 2 message that arrived but was never released counts as stalled, not lost', () => {
  const b = cleanRun()
  b.message(6, 2, null)
  b.add({ type: 'received', client: 'sub-1', conn: 's1', node: 'a', topic: 'chaos/d/pub-1/q2', publisher: 'pub-1', seq: 6, packetId: 9 })
  const events = withFinalRetained(b, { 'chaos/r/1': 'v1' }, { 'chaos/r/1': 'v1' }).end()
  const r = checkHistory(events, options())
  assert.equal(status(r, 'lost-acked'), 'pass')
  assert.equal(r.verdicts.find((v) => v.id === 'qos2-stalled')!.value, 1)
  assert.equal(status(r, 'qos2-stalled'), 'fail')
})

test('a message that arrives long after its acknowledgement on a live connection fails stall; during a partition it does not', () => {
  const late = cleanRun().message(6, 1, 3000)
  let r = checkHistory(late.at(late.t + 4000).end(), options())
  assert.deepEqual(failing(r), ['stall'])
  assert.equal(r.verdicts.find((v) => v.id === 'stall')!.value, 3000)
  assert.match(r.verdicts.find((v) => v.id === 'stall')!.details[0]!, /arrived 3000 ms after/)
  // The subscriber's node cut off from the publisher's for most of the wait: only the rest counts.
  const cut = cleanRun()
  cut.add({ type: 'fault-start', id: 1, kind: 'partition', targets: ['a'], description: 'partition a' })
  cut.message(6, 1, 3000)
  cut.at(cut.t + 2500).add({ type: 'fault-end', id: 1 })
  r = checkHistory(cut.at(cut.t + 4000).end(), options())
  assert.equal(status(r, 'stall'), 'pass')
  assert.ok(r.verdicts.find((v) => v.id === 'stall')!.value <= 600)
})

test('a session that stopped receiving fails stall even when a reconnect released it', () => {
  const b = Builder.clean()
  b.events.splice(0, b.events.length, ...b.events.map((e) => e.type === 'connect' && e.role === 'subscriber' ? { ...e, clean: false } : e))
  b.message(1, 1)
  b.message(2, 1, null) // queued, never sent on this connection...
  b.at(b.t + 5000).add({ type: 'disconnect', client: 'sub-1', conn: 's1', node: 'a', reason: 'keepalive timeout' })
  b.add({ type: 'connect', client: 'sub-1', conn: 's2', role: 'subscriber', node: 'b', protocol: 5, clean: false, sessionPresent: true })
  b.at(b.t + 10).deliver(2, 1, 'chaos/d/pub-1/q1', 's2') // ...and sent at once on the next
  b.add({ type: 'disconnect', client: 'sub-1', conn: 's2', node: 'b', reason: 'run-end' }).add({ type: 'run-end' })
  const r = checkHistory([...b.events].sort((x, y) => x.t - y.t), options(true, true))
  assert.equal(status(r, 'lost-acked'), 'pass')
  assert.equal(status(r, 'stall'), 'fail')
  assert.match(r.verdicts.find((v) => v.id === 'stall')!.details[0]!, /not given to it for the \d+ ms its connection lasted/)
})
