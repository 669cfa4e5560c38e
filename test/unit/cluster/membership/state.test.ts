// The SWIM state machine over the in-memory network with a fake clock:
// join, failure detection (suspect -> dead within the configured bound),
// refutation, graceful leave, rejoin after restart, name conflicts, keys,
// push/pull user state, merging clusters that formed apart, and the TCP
// fallback probe where UDP is blocked.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SimCluster, type SimNode } from './harness.js'
import { LOCAL_PROFILE } from '../../../../src/server/cluster/membership/config-profile.js'
import { detectionBound } from '../../../../src/server/cluster/membership/detection-bound.js'
import { BrokerHaError } from '../../../../src/errors.js'

const KEY = '0123456789abcdef'
const NEW_KEY = 'new-key-16-bytes'

async function formed (sim: SimCluster, names: string[], opts: Parameters<SimCluster['add']>[1] = {}): Promise<SimNode[]> {
  const nodes: SimNode[] = []
  for (const name of names) nodes.push(await sim.add(name, opts))
  for (const n of nodes.slice(1)) {
    const joining = n.state.join([{ host: nodes[0]!.host, port: 7946 }])
    await sim.clock.until(() => false, 20).catch(() => {})
    const r = await joining
    assert.equal(r.joined, 1)
  }
  await sim.clock.until(() => sim.allSee(nodes, names, 'alive'), 5000)
  return nodes
}

/** A firewall open for TCP only around `node`: packets between it and `others` are dropped, exchanges pass. */
function udpCutAround (sim: SimCluster, node: SimNode, others: SimNode[]): void {
  for (const other of others) sim.net.setPacketsCut({ host: node.host, port: 7946 }, { host: other.host, port: 7946 }, true)
}

test('members that join through one seed all see each other alive, with join events', async () => {
  const sim = new SimCluster()
  try {
    const [a, b, c] = await formed(sim, ['a', 'b', 'c'])
    for (const n of [a!, b!, c!]) {
      assert.equal(n.state.numLive(), 3)
      const joined = n.events.filter((e) => e.type === 'join').map((e) => e.member.name).sort()
      assert.deepEqual(joined, ['a', 'b', 'c'].filter((x) => x !== n.name))
    }
    // Meta is gossiped (the API's /proxy needs each member's API port).
    assert.deepEqual(a!.state.member('c')?.meta, { api: 8080, mqtt: 1883, version: 'test' })
  } finally {
    await sim.stopAll()
  }
})

test('a crashed member is suspected, then marked dead by every survivor within the bound', async () => {
  const sim = new SimCluster()
  try {
    const nodes = await formed(sim, ['a', 'b', 'c', 'd', 'e'])
    const [a, b, c, d, e] = nodes as [SimNode, SimNode, SimNode, SimNode, SimNode]
    sim.net.setDown({ host: e.host, port: 7946 }, true)
    const bound = detectionBound({ ...LOCAL_PROFILE, pushPullInterval: 0 }, 5)
    const took = await sim.clock.until(() => sim.allSee([a, b, c, d], ['e'], 'dead'), bound)
    assert.ok(took <= bound, `took ${took} ms, bound ${bound} ms`)
    for (const n of [a, b, c, d]) {
      assert.ok(n.events.some((ev) => ev.type === 'leave' && ev.member.name === 'e' && ev.member.state === 'dead'))
      assert.equal(n.state.numLive(), 4)
    }
    // Somebody saw it as suspect first (dead never comes straight from a missed ack).
    assert.ok([a, b, c, d].some((n) => n.events.some((ev) => ev.type === 'update' && ev.member.name === 'e' && ev.member.state === 'suspect')))
    // Nobody else was wrongly accused on the way.
    assert.ok(sim.allSee([a, b, c, d], ['a', 'b', 'c', 'd'], 'alive'))
  } finally {
    await sim.stopAll()
  }
})

test('a paused member that comes back in time refutes the suspicion with a higher incarnation', async () => {
  const sim = new SimCluster()
  try {
    const nodes = await formed(sim, ['a', 'b', 'c'], { profile: { suspicionMult: 10 } })
    const [a, b, c] = nodes as [SimNode, SimNode, SimNode]
    const before = c.state.local.incarnation
    sim.net.setDown({ host: c.host, port: 7946 }, true)
    await sim.clock.until(() => sim.view(a, 'c') === 'suspect' || sim.view(b, 'c') === 'suspect', 5000)
    sim.net.setDown({ host: c.host, port: 7946 }, false)
    await sim.clock.until(() => sim.allSee([a, b], ['c'], 'alive') && c.refutations > 0, 5000)
    assert.ok(c.state.local.incarnation > before)
    assert.equal(a.state.member('c')!.incarnation, c.state.local.incarnation)
    // Lifeguard: having to refute raises our own health score.
    assert.ok(c.state.awareness.getHealthScore() >= 1)
    assert.ok(!a.events.some((e) => e.type === 'leave'))
  } finally {
    await sim.stopAll()
  }
})

test('a graceful leave shows as left, not dead; a restarted member rejoins alive', async () => {
  const sim = new SimCluster()
  try {
    const nodes = await formed(sim, ['a', 'b', 'c'])
    const [a, b, c] = nodes as [SimNode, SimNode, SimNode]
    const leaving = c.state.leave(1000)
    await sim.clock.advance(1000)
    await leaving
    await c.state.stop()
    await sim.clock.until(() => sim.allSee([a, b], ['c'], 'left'), 1000)
    // Past the probe rounds nobody turns it into "dead".
    await sim.clock.advance(3000)
    assert.ok(sim.allSee([a, b], ['c'], 'left'))

    // Same name and address, fresh process (incarnation 0): it learns its old
    // record through the join and refutes it.
    const c2 = await sim.add('c')
    ;(c2 as { host: string }).host = c.host
    const joining = c2.state.join([{ host: a.host, port: 7946 }])
    await sim.clock.advance(20)
    assert.equal((await joining).joined, 1)
    await sim.clock.until(() => sim.allSee([a, b], ['c'], 'alive'), 5000)
    assert.ok(a.events.filter((e) => e.type === 'join' && e.member.name === 'c').length >= 2)
  } finally {
    await sim.stopAll()
  }
})

test('a second member with a name already in use is refused with CLUSTER_NAME_CONFLICT', async () => {
  const sim = new SimCluster()
  try {
    const [a] = await formed(sim, ['a', 'b'])
    const impostor = await sim.add('b')
    const refused = assert.rejects(impostor.state.join([{ host: a!.host, port: 7946 }]),
      (err: unknown) => err instanceof BrokerHaError && err.code === 'CLUSTER_NAME_CONFLICT' && /"b"/.test(err.message))
    await sim.clock.advance(20)
    await refused
    assert.equal(a!.state.member('b')!.addr, '10.0.0.2')
  } finally {
    await sim.stopAll()
  }
})

test('a member with another key never joins; a secondary key lets a rotated member in', async () => {
  const sim = new SimCluster()
  try {
    // The cluster encrypts with KEY and already accepts NEW_KEY (rotation step one).
    const [a] = await formed(sim, ['a', 'b'], { keys: [KEY, NEW_KEY] })
    const wrong = await sim.add('x', { keys: ['fedcba9876543210'] })
    const joining = wrong.state.join([{ host: a!.host, port: 7946 }])
    await sim.clock.advance(2000)
    assert.equal((await joining).joined, 0)
    await sim.clock.advance(3000)
    assert.equal(a!.state.member('x'), undefined)
    assert.equal(wrong.state.numLive(), 1)

    // A member already switched to NEW_KEY (step two) still talks to them.
    const rotated = await sim.add('r', { keys: [NEW_KEY, KEY] })
    const j2 = rotated.state.join([{ host: a!.host, port: 7946 }])
    await sim.clock.advance(20)
    assert.equal((await j2).joined, 1)
    await sim.clock.until(() => a!.state.member('r')?.state === 'alive', 2000)
  } finally {
    await sim.stopAll()
  }
})

test('push/pull carries the user-state delegate both ways', async () => {
  const sim = new SimCluster()
  try {
    const a = await sim.add('a')
    const b = await sim.add('b')
    const got: Record<string, string[]> = { a: [], b: [] }
    a.state.setDelegate({ localState: () => Buffer.from('digest-a'), mergeRemoteState: (buf) => { got.a!.push(buf.toString()) } })
    b.state.setDelegate({ localState: (join) => Buffer.from(`digest-b-${join}`), mergeRemoteState: (buf) => { got.b!.push(buf.toString()) } })
    const joining = b.state.join([{ host: a.host, port: 7946 }])
    await sim.clock.advance(20)
    await joining
    assert.deepEqual(got, { a: ['digest-b-true'], b: ['digest-a'] })
  } finally {
    await sim.stopAll()
  }
})

test('two clusters formed apart merge after one push/pull between them', async () => {
  const sim = new SimCluster()
  try {
    const left = await formed(sim, ['a1', 'a2', 'a3'])
    const right: SimNode[] = []
    for (const name of ['b1', 'b2']) right.push(await sim.add(name))
    const j = right[1]!.state.join([{ host: right[0]!.host, port: 7946 }])
    await sim.clock.advance(20)
    await j
    const merge = left[2]!.state.join([{ host: right[0]!.host, port: 7946 }])
    await sim.clock.advance(20)
    await merge
    const all = [...left, ...right]
    await sim.clock.until(() => sim.allSee(all, all.map((n) => n.name), 'alive'), 5000)
  } finally {
    await sim.stopAll()
  }
})

test('the last survivor of a cluster recovers a health score of 0 once nobody is left to probe', async () => {
  const sim = new SimCluster()
  try {
    const [a, b] = await formed(sim, ['a', 'b']) as [SimNode, SimNode]
    sim.net.setDown({ host: b.host, port: 7946 }, true)
    await sim.clock.until(() => sim.view(a, 'b') === 'dead', 60_000)
    assert.ok(a.state.awareness.getHealthScore() > 0, 'failed probes of the dead peer raised the score')
    await sim.clock.until(() => a.state.awareness.getHealthScore() === 0, 60_000)
    assert.equal(a.state.awareness.getHealthScore(), 0)
  } finally {
    await sim.stopAll()
  }
})

test('a member UDP cannot reach but TCP can is never suspected: the TCP fallback probe answers for it', async () => {
  const sim = new SimCluster()
  try {
    const [a, b, c] = await formed(sim, ['a', 'b', 'c'], { keys: [KEY] }) as [SimNode, SimNode, SimNode]
    // A firewall open for TCP only around c: probes, acks and gossip to and from it are dropped.
    udpCutAround(sim, c, [a, b])
    const bound = detectionBound({ ...LOCAL_PROFILE, pushPullInterval: 0 }, 3)
    await sim.clock.advance(5 * bound)
    for (const n of [a, b, c]) {
      assert.ok(!n.events.some((e) => e.type === 'leave' || (e.type === 'update' && e.member.state === 'suspect')), `${n.name} saw ${JSON.stringify(n.events.slice(-1))}`)
    }
    assert.ok(sim.allSee([a, b, c], ['a', 'b', 'c'], 'alive'))
    // Each side reached the other over TCP alone, and said so.
    for (const n of [a, b, c]) assert.ok(n.probes['tcp-ack'] > 0, `${n.name}: ${JSON.stringify(n.probes)}`)
    assert.equal(a.probes.failed + b.probes.failed + c.probes.failed, 0)
  } finally {
    await sim.stopAll()
  }
})

test('where UDP is blocked, a suspicion and its refutation travel with the TCP fallback probes', async () => {
  const sim = new SimCluster()
  try {
    // No push/pull (the harness's default): the stream pings are the only way news reaches c.
    const [a, b, c] = await formed(sim, ['a', 'b', 'c'], { keys: [KEY], profile: { suspicionMult: 10 } }) as [SimNode, SimNode, SimNode]
    udpCutAround(sim, c, [a, b])
    await sim.clock.until(() => a.probes['tcp-ack'] > 0 && b.probes['tcp-ack'] > 0, 10_000)
    // c stalls long enough for a probe to fail every way, then answers again.
    sim.net.setDown({ host: c.host, port: 7946 }, true)
    await sim.clock.until(() => sim.view(a, 'c') === 'suspect' || sim.view(b, 'c') === 'suspect', 5000)
    sim.net.setDown({ host: c.host, port: 7946 }, false)
    await sim.clock.until(() => sim.allSee([a, b], ['c'], 'alive') && c.refutations > 0, 5000)
    for (const n of [a, b]) assert.ok(!n.events.some((e) => e.type === 'leave'), `${n.name} declared nobody dead`)
  } finally {
    await sim.stopAll()
  }
})

test('the TCP fallback probe counts only when no UDP path answered: an indirect ack comes first', async () => {
  const sim = new SimCluster()
  try {
    const [a, b, c] = await formed(sim, ['a', 'b', 'c']) as [SimNode, SimNode, SimNode]
    // Only a and c cannot exchange packets; b relays.
    sim.net.setPacketsCut({ host: a.host, port: 7946 }, { host: c.host, port: 7946 }, true)
    await sim.clock.advance(10_000)
    assert.ok(a.probes['indirect-ack'] > 0 && c.probes['indirect-ack'] > 0, JSON.stringify([a.probes, c.probes]))
    assert.equal(a.probes['tcp-ack'] + c.probes['tcp-ack'], 0)
    assert.ok(sim.allSee([a, b, c], ['a', 'b', 'c'], 'alive'))
  } finally {
    await sim.stopAll()
  }
})

test('the TCP fallback probe does not keep a member that is down, nor slow its detection', async () => {
  const sim = new SimCluster()
  try {
    const [a, b, c] = await formed(sim, ['a', 'b', 'c'], { keys: [KEY] }) as [SimNode, SimNode, SimNode]
    udpCutAround(sim, c, [a, b])
    await sim.clock.until(() => a.probes['tcp-ack'] > 0 && b.probes['tcp-ack'] > 0, 10_000)
    sim.net.setDown({ host: c.host, port: 7946 }, true)
    const bound = detectionBound({ ...LOCAL_PROFILE, pushPullInterval: 0 }, 3)
    const took = await sim.clock.until(() => sim.allSee([a, b], ['c'], 'dead'), bound)
    assert.ok(took <= bound, `took ${took} ms, bound ${bound} ms`)
  } finally {
    await sim.stopAll()
  }
})
