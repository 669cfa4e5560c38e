// Wills and partitions: a node declared dead may only be cut off, its
// clients still connected there, so the nodes that take its sessions over
// wait cluster.partition_will_delay before publishing their wills, and give
// the sessions back (wills cancelled) when it answers again as the same
// process. Three in-process nodes; the partition is made with the chaos
// fault hook, as `broker-ha chaos` does.
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

const WILL_DELAY_MS = 3000

test('a client cut off with its node is not declared gone by a will until cluster.partition_will_delay; a heal before cancels the will', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const nodes = await Promise.all(hosts.map(async (host) => {
    const { config } = loadConfig({ object: nodeConfigObject(host, clusterConfig(host, hosts, { cluster: { partition_will_delay: WILL_DELAY_MS } })) })
    const n = new BrokerNode(config, pino({ level: 'silent' }), { chaosControl: true })
    await n.start()
    cleanups.push(() => n.stop())
    return n
  }))
  const [a, b, c] = nodes as [BrokerNode, BrokerNode, BrokerNode]
  const name = (n: BrokerNode): string => n.config.cluster.name
  await waitFor(() => nodes.every((n) => nodes.every((p) => p === n || n.dataPlane.link(name(p))?.state === 'up')), { timeout: 15_000, message: 'a full mesh' })
  const faults = (n: BrokerNode) => (n.membership as SwimMembership).faults!
  const cut = (): void => {
    faults(a).block(hosts[2]!)
    faults(b).block(hosts[2]!)
    faults(c).block(hosts[0]!)
    faults(c).block(hosts[1]!)
  }
  const heal = (): void => { for (const n of nodes) faults(n).heal() }
  const stateOf = (observer: BrokerNode, n: BrokerNode): string | undefined => observer.membership.members().find((m) => m.name === name(n))?.state

  const id = uniqueId('device')
  const willTopic = `status/${id}`
  const device: MqttClient = await connect(`mqtt://${hosts[2]}:1883`, {
    clientId: id,
    clean: false,
    protocolVersion: 5,
    keepalive: 600,
    properties: { sessionExpiryInterval: 300 },
    will: { topic: willTopic, payload: Buffer.from('offline'), qos: 1, retain: false, properties: { willDelayInterval: 0 } }
  })
  cleanups.push(() => device.endAsync(true))
  const watcher: MqttClient = await connect(`mqtt://${hosts[0]}:1883`, { protocolVersion: 5 })
  cleanups.push(() => watcher.endAsync(true))
  const seen: Array<{ payload: string, at: number, willDelay: unknown }> = []
  watcher.on('message', (_t, payload, packet) => seen.push({ payload: payload.toString(), at: Date.now(), willDelay: (packet.properties as Record<string, unknown> | undefined)?.willDelayInterval }))
  await watcher.subscribeAsync(willTopic, { qos: 1 })
  // The device's session and will are replicated to A or B before the cut.
  await waitFor(() => a.dataPlane.replication.replicas.has(id) || b.dataPlane.replication.replicas.has(id), { message: 'the will replicated' })
  await waitFor(async () => {
    await device.publishAsync(willTopic, 'online', { qos: 1 })
    return seen.some((s) => s.payload === 'online')
  }, { timeout: 5000, interval: 200, message: 'the watcher hears the device' })

  // 1. Cut off, declared dead, healed before the delay: no will, the device stays online.
  cut()
  await waitFor(() => stateOf(a, c) === 'dead' && stateOf(b, c) === 'dead', { timeout: 20_000, message: 'A and B declare C dead' })
  heal()
  await waitFor(() => stateOf(a, c) === 'alive' && stateOf(b, c) === 'alive' && a.dataPlane.link(name(c))?.state === 'up', { timeout: 20_000, message: 'C alive again' })
  const before = seen.length
  await device.publishAsync(willTopic, 'still online', { qos: 1 })
  await waitFor(() => seen.length > before, { message: 'the device heard after the heal' })
  assert.deepEqual(seen.map((s) => s.payload).filter((p) => p === 'offline'), [], 'no will while the device was connected all along')
  assert.equal(device.connected, true)

  // 2. Cut off for longer than the delay: the will comes, after it.
  await waitFor(() => a.dataPlane.replication.replicas.has(id) || b.dataPlane.replication.replicas.has(id), { message: 'the will replicated again after the session was given back' })
  const declared: number[] = []
  for (const n of [a, b]) n.membership.on('leave', (m) => { if (m.name === name(c)) declared.push(Date.now()) })
  cut()
  await waitFor(() => seen.some((s) => s.payload === 'offline'), { timeout: WILL_DELAY_MS + 20_000, message: 'the will after partition_will_delay' })
  const will = seen.find((s) => s.payload === 'offline')!
  const first = Math.min(...declared)
  assert.ok(will.at - first >= WILL_DELAY_MS, `the will waited the delay: ${will.at - first} ms after the death was first declared`)
  assert.equal(will.willDelay, undefined, 'the Will Delay Interval stays with the CONNECT (MQTT 5 section 3.1.3.2.2)')
  heal()
})
