// What a node sends the node taking over a dead peer's sessions (rescue.ts),
// over a link that fills up: a rescue is never dropped, and only what the
// requesting sessions subscribe to crosses.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Rescue } from '../../../../src/server/cluster/dataplane/rescue.js'
import { decodeMessage, encodeMessage, type DataPlaneMessage, type ForwardedPublish } from '../../../../src/server/cluster/dataplane/messages.js'
import type { DataPlaneContext } from '../../../../src/server/cluster/dataplane/context.js'
import type { PeerLink } from '../../../../src/server/cluster/dataplane/peer-link.js'

const publish = (topic: string, counter: number): ForwardedPublish => ({
  origin: 'node-a', brokerId: 'node-a@1', brokerCounter: counter, topic, payload: Buffer.from(String(counter)), qos: 1, retain: false, plain: true, shared: [], sessions: []
})

/** A link whose buffer holds `capacity` messages until the test drains it. */
class FakeLink {
  readonly sent: DataPlaneMessage[] = []
  state: PeerLink['state'] = 'up'
  private buffered = 0
  private waiters: Array<() => void> = []
  constructor (readonly peerName: string, private readonly capacity: number, private readonly unsettled: ForwardedPublish[] = []) {}
  lastQueuedSeq = 0
  send (payload: Buffer, mode: string, overBound = false): string {
    if (mode !== 'control' && !overBound && this.buffered >= this.capacity) return 'backpressure'
    this.buffered++
    this.lastQueuedSeq++
    this.sent.push(decodeMessage(payload))
    return 'queued'
  }

  async whenWritable (): Promise<void> {
    if (this.buffered < this.capacity) return
    await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  drain (): void {
    this.buffered = 0
    for (const w of this.waiters.splice(0)) w()
  }

  unheld (): Array<{ seq: number, payload: Buffer }> {
    return this.unsettled.map((p, i) => ({ seq: i + 1, payload: encodeMessage({ kind: 'publish', publish: p }) }))
  }
}

/** `budget`: cluster.dead_peer_buffer_bytes, what an answer may put past a full link. */
function rescueWith (links: FakeLink[], budget = 64 * 1024 * 1024): Rescue {
  const byName = new Map(links.map((l) => [l.peerName, l]))
  const log = { info: () => {}, debug: () => {}, warn: () => {} }
  const ctx = {
    name: 'node-b',
    config: { cluster: { dead_peer_buffer_bytes: budget } },
    log,
    links: { get: (p: string) => byName.get(p), upPeers: () => [...byName.keys()], isParked: (p: string) => p === 'node-dead' },
    store: { storedFilters: () => ['storm/1'], enqueueFor: () => ({ queued: false }) }
  }
  return new Rescue(ctx as unknown as DataPlaneContext)
}

/** Bytes of one rescue of publish(`storm/N`, counter) as it crosses. */
const rescueBytes = (counter: number): number => encodeMessage({ kind: 'rescue', requestId: 'r1', publish: publish('storm/0', counter) }).length

test('a rescue answer goes past a full link up to dead_peer_buffer_bytes, then waits for room instead of dropping what does not fit, and says done last', async () => {
  const unsettled = Array.from({ length: 50 }, (_, i) => publish(`storm/${i % 5}`, i + 1))
  const dead = new FakeLink('node-dead', Infinity, unsettled)
  const taker = new FakeLink('node-c', 8)
  // Room past the bound for the first 12 (counters 1-9 take a byte less than 10-12).
  const rescue = rescueWith([dead, taker], 9 * rescueBytes(1) + 3 * rescueBytes(10))
  let answered = false
  const answer = rescue.answer(taker as unknown as PeerLink, 'node-dead', 'r1').then(() => { answered = true })
  assert.equal(taker.sent.filter((m) => m.kind === 'rescue').length, 12, 'the budget past the bound at once, more than the link holds')
  for (let i = 0; i < 20 && !answered; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    taker.drain()
  }
  await answer
  const rescued = taker.sent.filter((m) => m.kind === 'rescue').map((m) => (m as { publish: ForwardedPublish }).publish.brokerCounter)
  assert.deepEqual(rescued, unsettled.map((p) => p.brokerCounter), 'every unsettled publish, in order')
  assert.equal(taker.sent.at(-1)?.kind, 'rescue-done')
})

test('a rescue answer carries only what the requesting sessions subscribe to', async () => {
  const unsettled = [publish('storm/1', 1), publish('storm/2', 2), publish('other/x', 3), publish('storm/1', 4)]
  const dead = new FakeLink('node-dead', Infinity, unsettled)
  const taker = new FakeLink('node-c', Infinity)
  await rescueWith([dead, taker]).answer(taker as unknown as PeerLink, 'node-dead', 'r1', ['storm/1', 'other/#'])
  const rescued = taker.sent.filter((m) => m.kind === 'rescue').map((m) => (m as { publish: ForwardedPublish }).publish.brokerCounter)
  assert.deepEqual(rescued, [1, 3, 4])
})

test('what is queued for the dead peer after an answer follows to the requester, if its sessions subscribe to it; the acknowledgement waits for it', async () => {
  const dead = new FakeLink('node-dead', Infinity, [publish('storm/1', 1)])
  const taker = new FakeLink('node-c', Infinity)
  const rescue = rescueWith([dead, taker])
  const later = (topic: string, counter: number): Buffer => encodeMessage({ kind: 'publish', publish: publish(topic, counter) })
  const held: number[] = []
  const hold = async (_link: PeerLink, seq: number): Promise<void> => { held.push(seq) }
  assert.equal(rescue.follow('node-dead', later('storm/1', 2), hold), undefined, 'nobody asked yet')
  await rescue.answer(taker as unknown as PeerLink, 'node-dead', 'r1', ['storm/1'])
  const before = taker.sent.length
  const waited = rescue.follow('node-dead', later('storm/1', 3), hold)
  assert.notEqual(waited, undefined)
  await waited
  assert.equal(rescue.follow('node-dead', later('other/x', 4), hold), undefined, 'not what the sessions subscribe to')
  const followed = taker.sent.slice(before)
  assert.deepEqual(followed.map((m) => [m.kind, (m as { requestId?: string }).requestId, (m as { publish?: ForwardedPublish }).publish?.brokerCounter]), [['rescue', 'r1', 3]])
  assert.deepEqual(held, [taker.lastQueuedSeq], 'the acknowledgement waits for the requester to hold it')
})

test('what is queued for the dead peer while an answer waits for room follows to the requester too', async () => {
  const dead = new FakeLink('node-dead', Infinity, Array.from({ length: 20 }, (_, i) => publish('storm/1', i + 1)))
  const taker = new FakeLink('node-c', 4)
  const rescue = rescueWith([dead, taker], rescueBytes(1))
  let answered = false
  const answer = rescue.answer(taker as unknown as PeerLink, 'node-dead', 'r1', ['storm/1']).then(() => { answered = true })
  // The answer waits for room; a publish woken from the dead peer's full link is queued there now.
  const hold = async (): Promise<void> => {}
  const waited = rescue.follow('node-dead', encodeMessage({ kind: 'publish', publish: publish('storm/1', 99) }), hold)
  assert.notEqual(waited, undefined, 'followed, though the answer (a snapshot taken before) is still going')
  for (let i = 0; i < 20 && !answered; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    taker.drain()
  }
  await answer
  const rescued = taker.sent.filter((m) => m.kind === 'rescue').map((m) => (m as { publish: ForwardedPublish }).publish.brokerCounter)
  assert.deepEqual([...rescued].sort((a, b) => a - b), [...Array.from({ length: 20 }, (_, i) => i + 1), 99])
  assert.equal(taker.sent.at(-1)?.kind, 'rescue-done')
})

test('the takeover of a dead peer is done once this node took its part and every other up peer said it took its own', async () => {
  const dead = new FakeLink('node-dead', Infinity, [publish('storm/1', 1)])
  const c = new FakeLink('node-c', Infinity)
  const d = new FakeLink('node-d', Infinity)
  const rescue = rescueWith([dead, c, d])
  const progress: string[] = []
  rescue.onTakeoverProgress = (peer) => progress.push(peer)
  assert.equal(rescue.takeoverDone('node-dead'), false)
  // A peer's takeover, answered before ours is done.
  await rescue.answer(c as unknown as PeerLink, 'node-dead', 'r1', ['storm/1'], true)
  // A request for one resumed session is not a takeover.
  await rescue.answer(d as unknown as PeerLink, 'node-dead', 'r2', ['storm/2'])
  rescue.tookOver('node-dead', Date.now())
  assert.equal(rescue.takeoverDone('node-dead'), false, 'node-d has not said its takeover is done')
  // This node took nothing itself: the peers hear so from a request that names no filter.
  const ours = [c, d].map((l) => l.sent.find((m) => m.kind === 'rescue-request'))
  for (const m of ours) assert.deepEqual(m === undefined ? undefined : { ...m, requestId: '' }, { kind: 'rescue-request', from: 'node-dead', requestId: '', filters: [], takeover: true })
  await rescue.answer(d as unknown as PeerLink, 'node-dead', 'r3', [], true)
  assert.equal(rescue.takeoverDone('node-dead'), true)
  assert.deepEqual(progress, ['node-dead', 'node-dead', 'node-dead'], 'each step wakes the waiting publishes')
  // A takeover that took nothing wants nothing followed.
  const hold = async (): Promise<void> => {}
  const before = d.sent.length
  assert.equal(rescue.follow('node-dead', encodeMessage({ kind: 'publish', publish: publish('other/x', 5) }), hold), undefined)
  assert.equal(d.sent.length, before)
  // Back alive (or dropped): a later death is a new takeover.
  rescue.forgetTakeover('node-dead')
  assert.equal(rescue.takeoverDone('node-dead'), false)
})

test('a publish for a peer whose link was dropped is kept for the rescue with what that link never settled', async () => {
  const taker = new FakeLink('node-c', Infinity)
  const rescue = rescueWith([taker])
  assert.equal(rescue.keepOrphan('node-gone', encodeMessage({ kind: 'publish', publish: publish('storm/1', 9) })), true)
  await rescue.answer(taker as unknown as PeerLink, 'node-gone', 'r1', ['storm/#'])
  const rescued = taker.sent.filter((m) => m.kind === 'rescue').map((m) => (m as { publish: ForwardedPublish }).publish.brokerCounter)
  assert.deepEqual(rescued, [9])
})

test('a peer back after this node declared it dead hears of the takeovers done meanwhile, with their sessions\' filters', async () => {
  const dead = new FakeLink('node-dead', Infinity, [])
  const c = new FakeLink('node-c', Infinity)
  const d = new FakeLink('node-d', Infinity)
  const rescue = rescueWith([dead, c, d])
  rescue.request('node-dead', ['s1'], true).catch(() => {})
  rescue.tookOver('node-dead', 0)
  const before = { c: c.sent.length, d: d.sent.length }
  rescue.announceTakeovers('node-d')
  assert.equal(c.sent.length, before.c, 'only the peer that is back')
  const told = d.sent.slice(before.d).map((m) => ({ ...m, requestId: '' }))
  assert.deepEqual(told, [{ kind: 'rescue-request', from: 'node-dead', requestId: '', filters: ['storm/1'], takeover: true }])
})
