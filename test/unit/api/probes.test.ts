// The probe checks as pure functions of a membership snapshot, and the
// one-second result cache on a fake clock.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { loadConfig } from '../../../src/config/index.js'
import { LIVENESS_CHECKS, READINESS_CHECKS, ProbeCache, livenessHealthBound, runChecks, type ProbeInput } from '../../../src/server/api/probes.js'
import type { Member, Membership, MembershipEvents } from '../../../src/server/cluster/membership/membership.js'

const member = (name: string, state: Member['state'] = 'alive'): Member =>
  ({ name, addr: '127.0.0.1', port: 7946, meta: { api: 8080, mqtt: 1883, version: 't' }, state, incarnation: 0, since: 0 })

const input = (over: Partial<ProbeInput> = {}): ProbeInput => ({
  healthScore: 0,
  members: [member('a'), member('b'), member('c')],
  self: member('a'),
  expectedMembers: 3,
  discoveryConfigured: true,
  unjoinedPeers: 0,
  livenessHealthBound: 6,
  ...over
})
const NOW = new Date('2026-01-02T03:04:05.678Z')

test('all up: the seed shape, one timestamp per check', () => {
  assert.deepEqual(runChecks(READINESS_CHECKS, input(), NOW), {
    status: 'up',
    details: { readiness_cluster_health: { status: 'up', timestamp: '2026-01-02T03:04:05.678Z' } }
  })
  const live = runChecks(LIVENESS_CHECKS, input(), NOW)
  assert.equal(live.status, 'up')
  assert.deepEqual(Object.keys(live.details), ['liveness_cluster_health', 'liveness_cluster_discovered_members', 'liveness_member_in_cluster'])
})

test('readiness: any health score above 0 is down', () => {
  const r = runChecks(READINESS_CHECKS, input({ healthScore: 1 }), NOW)
  assert.equal(r.status, 'down')
  assert.equal(r.details.readiness_cluster_health!.error, 'health score is 1, must be 0')
})

test('liveness health: down only above the bound', () => {
  assert.equal(runChecks(LIVENESS_CHECKS, input({ healthScore: 6 }), NOW).status, 'up')
  const r = runChecks(LIVENESS_CHECKS, input({ healthScore: 7 }), NOW)
  assert.equal(r.status, 'down')
  assert.equal(r.details.liveness_cluster_health!.status, 'down')
  assert.equal(r.details.liveness_member_in_cluster!.status, 'up')
})

test('the liveness bound is one below the awareness ceiling', () => {
  const config = (amm: number) => loadConfig({ object: { cluster: { config: { awareness_max_multiplier: amm } } } }).config
  assert.equal(livenessHealthBound(config(8)), 6)
  assert.equal(livenessHealthBound(config(1)), 0)
})

test('discovered members: down only when alone while discovery lists peers it cannot join', () => {
  const alone = input({ members: [member('a'), member('b', 'dead'), member('c', 'left')], unjoinedPeers: 2 })
  const r = runChecks(LIVENESS_CHECKS, alone, NOW)
  assert.equal(r.details.liveness_cluster_discovered_members!.error, 'alone in the cluster (expected 3 members) while discovery lists 2 peer(s) it cannot join')
  assert.equal(runChecks(LIVENESS_CHECKS, { ...alone, discoveryConfigured: false }, NOW).status, 'up', 'no discovery: a cluster of one by design')
  assert.equal(runChecks(LIVENESS_CHECKS, { ...alone, expectedMembers: 1 }, NOW).status, 'up')
  assert.equal(runChecks(LIVENESS_CHECKS, { ...alone, unjoinedPeers: 0 }, NOW).status, 'up', 'the last node standing with nobody else discovered stays live')
  const fewer = input({ members: [member('a'), member('b'), member('c', 'dead')], unjoinedPeers: 1 })
  assert.equal(runChecks(LIVENESS_CHECKS, fewer, NOW).status, 'up', 'fewer members than expected is not a reason to restart survivors')
})

test('member in cluster: self missing or not alive is down', () => {
  const missing = runChecks(LIVENESS_CHECKS, input({ members: [member('b'), member('c'), member('d')] }), NOW)
  assert.equal(missing.details.liveness_member_in_cluster!.error, 'a is not in its own member list')
  const left = runChecks(LIVENESS_CHECKS, input({ members: [member('a', 'left'), member('b'), member('c'), member('d')] }), NOW)
  assert.equal(left.details.liveness_member_in_cluster!.error, 'a is left in its own member list')
})

test('a check that throws is down with the reason, not a crashed probe', () => {
  const r = runChecks({ broken: () => { throw new Error('boom') } }, input(), NOW)
  assert.deepEqual(r.details.broken, { status: 'down', timestamp: NOW.toISOString(), error: 'check failed: boom' })
})

test('ProbeCache recomputes at most once per second', () => {
  class Fake extends EventEmitter<MembershipEvents> implements Membership {
    score = 0
    calls = 0
    readonly self = member('a')
    members (): Member[] { return [this.self] }
    healthScore (): number { this.calls++; return this.score }
    unjoinedPeers (): number { return 0 }
    async start (): Promise<void> {}
    async stop (): Promise<void> {}
  }
  const m = new Fake()
  let now = 1_000_000
  const { config } = loadConfig({ object: {} })
  const cache = new ProbeCache({ membership: m, config, now: () => now })
  assert.equal(cache.readiness().status, 'up')
  m.score = 3
  now += 999
  assert.equal(cache.readiness().status, 'up', 'cached within the second')
  assert.equal(m.calls, 1)
  now += 1
  assert.equal(cache.readiness().status, 'down')
  assert.equal(cache.readiness().details.readiness_cluster_health!.timestamp, new Date(now).toISOString())
  assert.equal(m.calls, 2)
  // Liveness has its own cache entry.
  assert.equal(cache.liveness().status, 'up')
  assert.equal(m.calls, 3)
})
