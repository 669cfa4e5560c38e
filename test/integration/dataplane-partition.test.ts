// A partition longer than failure detection: each side declares the other
// dead, yet the QoS 1 messages a node acknowledged for the other side's
// subscribers arrive once the partition heals (design invariant 2). The
// partition is made with the chaos fault hook, as `broker-ha chaos` does.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import type { MqttClient } from 'mqtt'
import { loadConfig } from '../../src/config/index.js'
import { BrokerNode } from '../../src/server/node.js'
import { nodeConfigObject } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'
import { clusterConfig } from '../helpers/dataplane-cluster.js'
import type { SwimMembership } from '../../src/server/cluster/index.js'

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

/**
 * Two in-process nodes with chaos fault hooks, their peer link up.
 * `resolveIntervalMs`: re-resolution (1 s by default here; 60 s when it must
 * not be what heals the membership).
 */
async function pairWithFaults (opts: { cluster?: Record<string, unknown>, resolveIntervalMs?: number } = {}): Promise<{ a: BrokerNode, b: BrokerNode, hosts: string[], faults: (n: BrokerNode) => NonNullable<SwimMembership['faults']>, stateOf: (n: BrokerNode, of: BrokerNode) => string | undefined }> {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  const nodes = await Promise.all(hosts.map(async (host) => {
    const object = clusterConfig(host, hosts) as { cluster: { config: Record<string, unknown> }, discovery: Record<string, unknown> }
    object.cluster.config = { ...object.cluster.config, ...opts.cluster }
    if (opts.resolveIntervalMs !== undefined) object.discovery.resolve_interval = opts.resolveIntervalMs
    const { config } = loadConfig({ object: nodeConfigObject(host, object) })
    const n = new BrokerNode(config, pino({ level: 'silent' }), { chaosControl: true })
    await n.start()
    cleanups.push(() => n.stop())
    return n
  }))
  const [a, b] = nodes as [BrokerNode, BrokerNode]
  await waitFor(() => a.dataPlane.link(b.config.cluster.name)?.state === 'up' && b.dataPlane.link(a.config.cluster.name)?.state === 'up', { timeout: 15_000, message: 'the peer link up' })
  return {
    a,
    b,
    hosts,
    faults: (n) => (n.membership as SwimMembership).faults!,
    stateOf: (n, of) => n.membership.members().find((m) => m.name === of.config.cluster.name)?.state
  }
}

/** A QoS 1 subscriber to a fresh topic on B, once A routes it there; `got` collects its payloads. */
async function subscriberOnB (a: BrokerNode, b: BrokerNode, hostB: string, prefix: string): Promise<{ topic: string, got: string[] }> {
  const topic = uniqueId(prefix)
  const sub: MqttClient = await connect(`mqtt://${hostB}:1883`, { protocolVersion: 5 })
  cleanups.push(() => sub.endAsync(true))
  const got: string[] = []
  sub.on('message', (_t, payload) => got.push(payload.toString()))
  await sub.subscribeAsync(topic, { qos: 1 })
  await waitFor(() => a.dataPlane.routing.peersFor(topic).includes(b.config.cluster.name), { message: 'route to B' })
  return { topic, got }
}

test('QoS 1 messages acknowledged during a partition that outlasts failure detection arrive after the heal', async () => {
  const { a, b, hosts, faults } = await pairWithFaults()
  const nameB = b.config.cluster.name
  const { topic, got } = await subscriberOnB(a, b, hosts[1]!, 'part')
  const pub: MqttClient = await connect(`mqtt://${hosts[0]}:1883`, { protocolVersion: 5 })
  cleanups.push(() => pub.endAsync(true))

  // Partition both ways, until each side has declared the other dead.
  faults(a).block(hosts[1]!)
  faults(b).block(hosts[0]!)
  await waitFor(() => a.membership.members().find((m) => m.name === nameB)?.state === 'dead', { timeout: 20_000, message: 'A declares B dead' })

  const sent: string[] = []
  for (let i = 0; i < 20; i++) {
    sent.push(`m${i}`)
    await pub.publishAsync(topic, `m${i}`, { qos: 1 }) // acknowledged by A
  }
  assert.deepEqual(got, [], 'nothing crosses the partition')

  faults(a).heal()
  faults(b).heal()
  await waitFor(() => got.length >= sent.length, { timeout: 20_000, message: `the ${sent.length} messages after the heal (got ${got.length})` })
  assert.deepEqual(got, sent, 'every acknowledged message, once, in order')
})

const PARK_MS = 4000

test('a parked link that came back while its peer is still listed dead is not dropped while up, and carries what is published', async () => {
  // Dead members are parked for gossip_to_the_dead_time, then dropped: long
  // enough here that the side that declared its peer dead first still has
  // the link parked when the other side is done (under CI load 1.5 s was
  // not: the link was dropped before the heal, and never came back).
  // Re-resolution 60 s away: it cannot be what heals the membership.
  const { a, b, hosts, faults, stateOf } = await pairWithFaults({ cluster: { gossip_to_the_dead_time: PARK_MS }, resolveIntervalMs: 60_000 })
  const nameB = b.config.cluster.name
  const { topic, got } = await subscriberOnB(a, b, hosts[1]!, 'parked')

  faults(a).block(hosts[1]!)
  faults(b).block(hosts[0]!)
  await waitFor(() => stateOf(a, b) === 'dead' && stateOf(b, a) === 'dead', { timeout: 20_000, message: 'each side declares the other dead' })
  // The links come back, the membership stays cut: B stays listed dead on A.
  faults(a).heal()
  faults(b).heal()
  faults(a).cutGossip(hosts[1]!)
  faults(b).cutGossip(hosts[0]!)
  await waitFor(() => a.dataPlane.link(nameB)?.state === 'up', { timeout: 15_000, message: 'the link back up' })
  // Past the park time, twice over, the link stays (it was dropped at the park time, up or not).
  const until = Date.now() + 2 * PARK_MS + 500
  while (Date.now() < until) {
    assert.equal(a.dataPlane.link(nameB)?.state, 'up', 'the parked link, up, is kept')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.notEqual(stateOf(a, b), 'alive', 'B is not listed alive on A (membership cut: dead, or reaped since)')
  const pub: MqttClient = await connect(`mqtt://${hosts[0]}:1883`, { protocolVersion: 5 })
  cleanups.push(() => pub.endAsync(true))
  await pub.publishAsync(topic, 'over the parked link', { qos: 1 })
  await waitFor(() => got.length >= 1, { timeout: 10_000, message: 'the message over the parked link' })
  assert.deepEqual(got, ['over the parked link'])
  // The membership cut heals: B was reaped from A's list meanwhile, and
  // nothing but re-resolution (60 s away) would join it again; the parked
  // link, still up, has the membership try again.
  faults(a).heal()
  faults(b).heal()
  await waitFor(() => stateOf(a, b) === 'alive' && stateOf(b, a) === 'alive', { timeout: 10_000, message: 'each side lists the other alive again' })
})
