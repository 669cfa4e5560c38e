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

test('QoS 1 messages acknowledged during a partition that outlasts failure detection arrive after the heal', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  const nodes = await Promise.all(hosts.map(async (host) => {
    const { config } = loadConfig({ object: nodeConfigObject(host, clusterConfig(host, hosts)) })
    const n = new BrokerNode(config, pino({ level: 'silent' }), { chaosControl: true })
    await n.start()
    cleanups.push(() => n.stop())
    return n
  }))
  const [a, b] = nodes as [BrokerNode, BrokerNode]
  const nameB = b.config.cluster.name
  await waitFor(() => a.dataPlane.link(nameB)?.state === 'up' && b.dataPlane.link(a.config.cluster.name)?.state === 'up', { timeout: 15_000, message: 'the peer link up' })
  const faults = (n: BrokerNode) => (n.membership as SwimMembership).faults!

  const topic = uniqueId('part')
  const sub: MqttClient = await connect(`mqtt://${hosts[1]}:1883`, { protocolVersion: 5 })
  cleanups.push(() => sub.endAsync(true))
  const got: string[] = []
  sub.on('message', (_t, payload) => got.push(payload.toString()))
  await sub.subscribeAsync(topic, { qos: 1 })
  await waitFor(() => a.dataPlane.routing.peersFor(topic).includes(nameB), { message: 'route to B' })
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
