// The chaos hook end to end: three memberships on real loopback sockets with
// fault injection; cutting one member off makes each side declare the other
// dead, and healing the links merges them again without any restart.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { loadConfig } from '../../src/config/index.js'
import { SwimMembership } from '../../src/server/cluster/membership/swim-membership.js'
import type { MemberState } from '../../src/server/cluster/membership/membership.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { FAST } from '../helpers/cluster.js'

const members: SwimMembership[] = []
after(async () => { for (const m of members) await m.stop() })

const stateOf = (m: SwimMembership, name: string): MemberState | undefined => m.members().find((x) => x.name === name)?.state

test('a partitioned member is declared dead on both sides and everything heals after the links come back', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const seeds = hosts.map((h) => `${h}:7946`)
  for (const host of hosts) {
    const { config } = loadConfig({
      object: {
        cluster: { bind: host, name: `p-${host}`, config: { ...FAST, gossip_to_the_dead_time: 30_000 } },
        discovery: { seeds, formation_wait_min: 100, formation_wait_max: 300, resolve_interval: 1000 }
      }
    })
    members.push(new SwimMembership({ config, log: pino({ level: 'silent' }), registry: new Registry(), meta: { api: 8080, mqtt: 1883, version: 't' }, faultInjection: true }))
  }
  await Promise.all(members.map((m) => m.start()))
  const [a, b, c] = members as [SwimMembership, SwimMembership, SwimMembership]
  const names = members.map((m) => m.self.name)
  await waitFor(() => members.every((m) => names.every((n) => stateOf(m, n) === 'alive')), { timeout: 5000, message: 'all alive' })

  // a and b must never declare each other dead while c is cut off (a
  // moment of suspicion on a loaded machine is not what this tests).
  const falseDeaths: string[] = []
  a.on('leave', (m) => { if (m.name === b.self.name) falseDeaths.push(`a: ${m.name}`) })
  b.on('leave', (m) => { if (m.name === a.self.name) falseDeaths.push(`b: ${m.name}`) })
  // Cut c off from a and b (both directions, as iptables would).
  for (const [x, y] of [[a, c], [b, c]] as const) {
    x.faults!.block(y.self.addr)
    y.faults!.block(x.self.addr)
  }
  await waitFor(() => stateOf(a, c.self.name) === 'dead' && stateOf(b, c.self.name) === 'dead' &&
    stateOf(c, a.self.name) === 'dead' && stateOf(c, b.self.name) === 'dead', { timeout: 10_000, message: 'both sides see the other dead' })
  assert.deepEqual(falseDeaths, [], 'a and b kept each other')

  for (const m of members) m.faults!.heal()
  await waitFor(() => members.every((m) => names.every((n) => stateOf(m, n) === 'alive')), { timeout: 10_000, message: 'healed' })
})

test('fault injection is off unless asked for', async () => {
  const host = await freeLoopbackAddress()
  const { config } = loadConfig({ object: { cluster: { bind: host, name: 'plain' } } })
  const m = new SwimMembership({ config, log: pino({ level: 'silent' }), registry: new Registry(), meta: { api: 8080, mqtt: 1883, version: 't' } })
  assert.equal(m.faults, undefined)
})
