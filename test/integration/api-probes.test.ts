// Probes flipping between 200 and 503 on real conditions, and /proxy
// against several members (one real node, one refusing, two silent, one
// dead), over real HTTP. The membership here is a test double implementing
// the Membership interface, so health score and member states can be set.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { Aedes } from 'aedes'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { loadConfig } from '../../src/config/index.js'
import { Bus } from '../../src/server/bus.js'
import { ApiServer } from '../../src/server/api/index.js'
import type { BrokerHaError } from '../../src/errors.js'
import type { Member, MemberState, Membership, MembershipEvents } from '../../src/server/cluster/membership/membership.js'
import { nodeConfigObject, startNode, type ConfigOverrides, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { ApiClient, isMemberError, type ProbeAnswer } from '../../src/client/index.js'

class FakeMembership extends EventEmitter<MembershipEvents> implements Membership {
  readonly self: Member
  score = 0
  others: Member[] = []
  constructor (self: Member) { super(); this.self = self }
  members (): Member[] { return [this.self, ...this.others] }
  healthScore (): number { return this.score }
  unjoined = 0
  unjoinedPeers (): number { return this.unjoined }
  async start (): Promise<void> {}
  async stop (): Promise<void> {}
}

function member (name: string, addr: string, state: MemberState = 'alive', api = 8080): Member {
  return { name, addr, port: 7946, meta: { api, mqtt: 1883, version: 'test' }, state, incarnation: 0, since: Date.now() }
}

interface Harness { host: string, membership: FakeMembership, server: ApiServer, api: ApiClient, aedes: Aedes, stop: () => Promise<void> }

/** An ApiServer on a real port over a bare aedes and the fake membership. */
async function startApi (overrides: ConfigOverrides = {}): Promise<Harness> {
  const host = await freeLoopbackAddress()
  const { config } = loadConfig({ object: nodeConfigObject(host, overrides) })
  const aedes = await Aedes.createBroker()
  const membership = new FakeMembership(member(config.cluster.name, host))
  const server = new ApiServer({ config, log: pino({ level: 'silent' }), bus: new Bus(), registry: new Registry(), mqtt: { aedes }, membership, startedAt: Date.now(), sseKeepaliveMs: 100 })
  await server.start()
  const api = new ApiClient({ baseUrl: `http://${host}:${config.api.port}` })
  return {
    host, membership, server, api, aedes,
    stop: async () => {
      await api.close()
      await server.stop()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
    }
  }
}

const down = (answer: ProbeAnswer): string[] => Object.entries(answer.result.details).filter(([, c]) => c.status === 'down').map(([name]) => name)

describe('probes', () => {
  let h: Harness
  // Discovery configured (a seed), so expected_members applies.
  before(async () => { h = await startApi({ cluster: { expected_members: 2 }, discovery: { seeds: ['127.0.0.1:1'] } }) })
  after(async () => { await h.stop() })

  test('alone, but nobody else discovered: the last node standing stays live', async () => {
    assert.equal((await h.api.healthz()).ok, true)
  })

  test('alone while discovery lists peers it cannot join: /healthz 503 on liveness_cluster_discovered_members, /ready 200', async () => {
    h.membership.unjoined = 1
    const health = await waitFor(async () => { const a = await h.api.healthz(); return a.ok ? undefined : a }, { interval: 100, message: '/healthz down' })
    assert.equal(health.ok, false)
    assert.equal(health.result.status, 'down')
    assert.deepEqual(down(health), ['liveness_cluster_discovered_members'])
    assert.match(health.result.details.liveness_cluster_discovered_members!.error!, /alone in the cluster \(expected 2 members\) while discovery lists 1 peer\(s\) it cannot join/)
    assert.deepEqual(Object.keys(health.result.details).sort(), ['liveness_cluster_discovered_members', 'liveness_cluster_health', 'liveness_member_in_cluster'])
    const ready = await h.api.ready()
    assert.equal(ready.ok, true)
    assert.deepEqual(ready.result, { status: 'up', details: { readiness_cluster_health: { status: 'up', timestamp: ready.result.details.readiness_cluster_health!.timestamp } } })
    assert.ok(!Number.isNaN(Date.parse(ready.result.details.readiness_cluster_health!.timestamp)))
  })

  test('a second member joins: /healthz 200 (after the one-second cache)', async () => {
    h.membership.others = [member('m2', '127.0.0.1')]
    const health = await waitFor(async () => { const a = await h.api.healthz(); return a.ok ? a : undefined }, { interval: 100, message: '/healthz up' })
    assert.equal(health.result.status, 'up')
  })

  test('health score 1: not ready, still live', async () => {
    h.membership.score = 1
    const ready = await waitFor(async () => { const a = await h.api.ready(); return a.ok ? undefined : a }, { interval: 100, message: '/ready down' })
    assert.deepEqual(down(ready), ['readiness_cluster_health'])
    assert.equal((await h.api.healthz()).ok, true)
  })

  test('health score at its ceiling (awareness_max_multiplier - 1): not live', async () => {
    h.membership.score = 7
    const health = await waitFor(async () => { const a = await h.api.healthz(); return a.ok ? undefined : a }, { interval: 100, message: '/healthz down' })
    assert.deepEqual(down(health), ['liveness_cluster_health'])
  })

  test('self not alive in its own member list: not live', async () => {
    h.membership.score = 0
    h.membership.self.state = 'suspect'
    const health = await waitFor(async () => { const a = await h.api.healthz(); return down(a).includes('liveness_member_in_cluster') ? a : undefined }, { interval: 100, message: 'member check down' })
    assert.equal(health.ok, false)
    h.membership.self.state = 'alive'
  })

  test('SSE keepalive events in the seed format', async () => {
    const abort = new AbortController()
    const events = h.api.events({ signal: abort.signal })
    const first = await events.next()
    abort.abort()
    await events.return(undefined)
    assert.match(first.value!.event, /^sse:keepalive:127\.\d+\.\d+\.\d+:\d+$/)
    assert.equal(first.value!.data, 'keepalive')
  })
})

test('a port already in use fails start with LISTEN_FAILED naming api.port', async () => {
  const h = await startApi()
  try {
    const { config } = loadConfig({ object: nodeConfigObject(h.host) })
    const clash = new ApiServer({ config, log: pino({ level: 'silent' }), bus: new Bus(), registry: new Registry(), mqtt: { aedes: h.aedes }, membership: h.membership, startedAt: Date.now() })
    await assert.rejects(clash.start(), (err: BrokerHaError) => err.code === 'LISTEN_FAILED' && err.key === 'api.port' && /EADDRINUSE/.test(err.message))
    assert.equal((await h.api.ready()).ok, true, 'the first server is unaffected')
  } finally {
    await h.stop()
  }
})

test('a real node whose seeds are unreachable: /healthz 503, /ready 200', async () => {
  const nowhere = await freeLoopbackAddress()
  const n = await startNode({ cluster: { expected_members: 2 }, discovery: { seeds: [`${nowhere}:7946`], formation_wait_min: 0, formation_wait_max: 0 } })
  const api = new ApiClient({ baseUrl: n.apiUrl })
  try {
    const health = await api.healthz()
    assert.equal(health.ok, false)
    assert.ok(down(health).includes('liveness_cluster_discovered_members'))
    assert.equal((await api.ready()).ok, true)
  } finally {
    await api.close()
    await n.stop()
  }
})

describe('/proxy with several members', () => {
  let h: Harness
  let real: TestNode
  let silent: Server
  const sockets = new Set<Socket>()
  before(async () => {
    h = await startApi({ api: { proxy_timeout: 300 } })
    real = await startNode()
    const silentHost = await freeLoopbackAddress()
    // Accepts connections and never answers: a hung member.
    silent = createServer((socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
    silent.listen(8080, silentHost)
    await once(silent, 'listening')
    h.membership.others = [
      member('real', real.host),
      member('refusing', await freeLoopbackAddress()),
      member('silent-1', silentHost),
      member('silent-2', silentHost),
      member('silent-3', silentHost),
      member('gone', real.host, 'dead')
    ]
  })
  after(async () => {
    await h.stop()
    await real.stop()
    for (const s of sockets) s.destroy()
    silent.close()
  })

  test('every live member answers or appears with its error; members are asked concurrently', async () => {
    const started = Date.now()
    const answer = await h.api.proxyClients()
    const elapsed = Date.now() - started
    const self = h.membership.self.name
    assert.deepEqual(Object.keys(answer).sort(), ['real', 'refusing', self, 'silent-1', 'silent-2', 'silent-3'].sort(), 'dead members are not asked')
    assert.deepEqual(answer[self], [])
    assert.deepEqual(answer.real, [])
    assert.ok(isMemberError(answer.refusing))
    assert.match((answer.refusing as { error: string }).error, /^network: .*ECONNREFUSED/)
    for (const name of ['silent-1', 'silent-2', 'silent-3']) {
      assert.ok(isMemberError(answer[name]))
      assert.match((answer[name] as { error: string }).error, /^timeout: .*no answer within 300 ms/)
    }
    // Three hung members at 300 ms each: asked one after the other they would
    // take 900 ms; concurrently, about one timeout.
    assert.ok(elapsed >= 300 && elapsed < 850, `took ${elapsed} ms`)
  })

  test('POST endpoints forward the body; the real member answers with its own view', async () => {
    const answer = await h.api.proxyTopicSubscribers('a/b')
    assert.deepEqual(answer.real, { Shared: {}, SharedSelected: {}, Subscriptions: {} })
    const members = await h.api.proxyMembers()
    assert.equal((members.real as Array<{ Name: string }>)[0]!.Name, real.config.cluster.name)
    assert.equal((members[h.membership.self.name] as unknown[]).length, 7, 'the fake membership lists itself and six others')
  })
})
