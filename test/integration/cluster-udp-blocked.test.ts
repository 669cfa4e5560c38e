// UDP blocked on the cluster port, TCP open (a NetworkPolicy or security
// group that lists 7946 for TCP only): every UDP probe of the cut node fails,
// directly and through the relays. Without the TCP fallback probe the others
// suspected it every probe cycle and declared it dead over and over; with
// it, they reach it over TCP, count a `tcp-ack` probe and declare nobody
// dead. The chaos hook drops the UDP packets (no root, no iptables).
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
import { metricByLabel, metricSum } from '../helpers/metrics.js'
import type { SwimMembership } from '../../src/server/cluster/index.js'

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

const faults = (n: BrokerNode) => (n.membership as SwimMembership).faults!
const nameOf = (n: BrokerNode): string => n.config.cluster.name
const hostOf = (n: BrokerNode): string => n.config.cluster.bind
const apiOf = (n: BrokerNode): string => `http://${hostOf(n)}:${n.config.api.port}`
const tcpAcks = async (n: BrokerNode): Promise<number> => (await metricByLabel(apiOf(n), 'broker_cluster_probes_total', 'result'))['tcp-ack'] ?? 0

test('a node whose UDP is blocked and TCP open is reached by the TCP fallback probe and never declared dead', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  // 200 ms of each 300 ms probe window for the TCP ping; a suspicion long
  // enough (6 s) for one slow ping on a loaded machine to be refuted by
  // push/pull (every second, over TCP) rather than end in a death.
  const config = (host: string): ReturnType<typeof clusterConfig> => {
    const base = clusterConfig(host, hosts)
    return { ...base, cluster: { ...base.cluster, config: { ...(base.cluster as { config: object }).config, probe_interval: 300, probe_timeout: 100, suspicion_mult: 20 } } }
  }
  const nodes = await Promise.all(hosts.map(async (host) => {
    const { config: loaded } = loadConfig({ object: nodeConfigObject(host, config(host)) })
    const n = new BrokerNode(loaded, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), { chaosControl: true })
    await n.start()
    cleanups.push(() => n.stop())
    return n
  }))
  await waitFor(() => nodes.every((n) => nodes.every((p) => p === n || n.dataPlane.link(nameOf(p))?.state === 'up')), { timeout: 15_000, message: 'a full mesh of peer links' })
  const [a, b, c] = nodes as [BrokerNode, BrokerNode, BrokerNode]
  const deadBefore = await Promise.all(nodes.map(async (n) => await metricSum(apiOf(n), 'broker_cluster_members_dead_total')))

  for (const other of [a, b]) {
    faults(c).cutUdp(hostOf(other))
    faults(other).cutUdp(hostOf(c))
  }
  // Some 15 probes of c by each of a and b (one in two of their probes), and of a and b by c.
  await waitFor(async () => (await Promise.all(nodes.map(tcpAcks))).every((n) => n >= 15), { timeout: 30_000, interval: 250, message: '15 probes answered over TCP on every node' })

  for (const [i, n] of nodes.entries()) {
    assert.equal(await metricSum(apiOf(n), 'broker_cluster_members_dead_total'), deadBefore[i], `${nameOf(n)} declared nobody dead`)
    for (const p of nodes) assert.equal(n.membership.members().find((m) => m.name === nameOf(p))?.state, 'alive', `${nameOf(n)} lists ${nameOf(p)} alive`)
  }
  // The data plane never noticed: a QoS 1 message from a client on c reaches a subscriber on a.
  const topic = `udp/${uniqueId('blocked')}`
  const sub: MqttClient = await connect(`mqtt://${hostOf(a)}:1883`, { protocolVersion: 5 })
  cleanups.push(() => sub.endAsync(true))
  const got: string[] = []
  sub.on('message', (_t, payload) => got.push(payload.toString()))
  await sub.subscribeAsync(topic, { qos: 1 })
  await waitFor(() => c.dataPlane.routing.peersFor(topic).includes(nameOf(a)), { message: 'c routes the topic to a' })
  const pub: MqttClient = await connect(`mqtt://${hostOf(c)}:1883`, { protocolVersion: 5 })
  cleanups.push(() => pub.endAsync(true))
  await pub.publishAsync(topic, 'over the links', { qos: 1 })
  await waitFor(() => got.length > 0, { message: 'the message on a' })
  assert.deepEqual(got, ['over the links'])
})
