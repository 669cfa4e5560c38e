// A false death: the membership declares a peer dead while its data-plane
// link is up (a starved event loop misses UDP probes long before its TCP link
// falls silent; here the chaos hook drops only the membership traffic). Found
// in the reconnect storm under CPU load: a survivor declared the other one
// dead in the middle of a resuming client's session fetch, stopped waiting
// for its answer, and the client got a fresh session while the other
// survivor held its replica with 15 queued messages, lost when that copy was
// then removed as stale. Now a death is acted on only once the peer's link
// goes down too (link-set.ts), and a doubted peer is still asked.
import { test, after } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import type { MqttClient } from 'mqtt'
import { loadConfig } from '../../src/config/index.js'
import { BrokerNode } from '../../src/server/node.js'
import { nodeConfigObject } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { connect, connectWithConnack, uniqueId } from '../helpers/mqtt-clients.js'
import { clusterConfig } from '../helpers/dataplane-cluster.js'
import { metricByLabel, metricSum } from '../helpers/metrics.js'
import type { SwimMembership } from '../../src/server/cluster/index.js'

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

const faults = (n: BrokerNode) => (n.membership as SwimMembership).faults!
const nameOf = (n: BrokerNode): string => n.config.cluster.name
const stateOf = (n: BrokerNode, peer: BrokerNode): string | undefined => n.membership.members().find((m) => m.name === nameOf(peer))?.state
const hostOf = (n: BrokerNode): string => n.config.cluster.bind
const apiOf = (n: BrokerNode): string => `http://${hostOf(n)}:${n.config.api.port}`

/** A node per host, in one cluster, with the chaos fault hook; stopped after the file. */
async function startNodes (hosts: string[], config: (host: string) => ReturnType<typeof clusterConfig> = (host) => clusterConfig(host, hosts)): Promise<BrokerNode[]> {
  return await Promise.all(hosts.map(async (host) => {
    const { config: loaded } = loadConfig({ object: nodeConfigObject(host, config(host)) })
    const n = new BrokerNode(loaded, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), { chaosControl: true })
    await n.start()
    cleanups.push(() => n.stop())
    return n
  }))
}

test('a peer declared dead while its link is up keeps its sessions, is still asked for them, and nothing it queued is lost', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const nodes = await startNodes(hosts)
  await waitFor(() => nodes.every((n) => nodes.every((p) => p === n || (n.dataPlane.link(nameOf(p))?.state === 'up' && n.dataPlane.routing.peerVersion(nameOf(p)) !== undefined))), { timeout: 15_000, message: 'a full mesh of peer links' })
  const [home] = nodes as [BrokerNode, BrokerNode, BrokerNode]

  // A persistent subscriber at home on the first node, offline, with messages queued.
  const id = uniqueId('false-death')
  const topic = `fd/${id}`
  const sub: MqttClient = await connect(`mqtt://${hosts[0]}:1883`, { clientId: id, clean: false, protocolVersion: 4 })
  await sub.subscribeAsync(topic, { qos: 1 })
  await sub.endAsync()
  await waitFor(() => nodes.some((n) => n !== home && n.dataPlane.replication.replicas.has(id)), { message: 'the session replicated' })
  const holder = nodes.find((n) => n !== home && n.dataPlane.replication.replicas.has(id))!
  const third = nodes.find((n) => n !== home && n !== holder)!
  await waitFor(() => third.dataPlane.routing.peersFor(topic).includes(nameOf(home)), { message: 'the third node routes the topic to the home' })
  const pub: MqttClient = await connect(`mqtt://${hostOf(third)}:1883`, { protocolVersion: 5 })
  cleanups.push(() => pub.endAsync(true))
  const sent: string[] = []
  for (let i = 0; i < 15; i++) {
    sent.push(`m${i}`)
    await pub.publishAsync(topic, `m${i}`, { qos: 1 }) // acknowledged once the holder has it too
  }

  // The holder stops hearing the others' gossip (and they its); its links stay up.
  // (Between two nodes of three only, indirect probes through the third would keep it alive.)
  for (const other of [home, third]) {
    faults(holder).cutGossip(hostOf(other))
    faults(other).cutGossip(hostOf(holder))
  }
  await waitFor(() => stateOf(third, holder) === 'dead' && stateOf(home, holder) === 'dead' && stateOf(holder, home) === 'dead', { timeout: 20_000, message: 'the holder and the others declare each other dead' })
  assert.equal(third.dataPlane.link(nameOf(holder))?.state, 'up', 'their link is up')
  const doubted = await metricByLabel(apiOf(third), 'broker_cluster_deaths_doubted_total', 'outcome')
  assert.equal(doubted.declared, 1, 'the death counted as doubted')
  assert.equal(doubted.confirmed ?? 0, 0, 'and not acted on')
  for (const n of nodes) assert.equal(await metricSum(apiOf(n), 'broker_cluster_sessions_promoted_total'), 0, `${nameOf(n)}: nothing taken over from a peer whose link is up`)

  // The home node really goes (cut off from both, links too): its session lives on at the holder.
  for (const other of [holder, third]) {
    faults(home).block(hostOf(other))
    faults(other).block(hostOf(home))
  }
  await waitFor(() => stateOf(third, home) === 'dead', { timeout: 20_000, message: 'the home declared dead by the third node' })
  await waitFor(async () => await metricSum(apiOf(holder), 'broker_cluster_sessions_promoted_total') > 0, { timeout: 20_000, message: 'the holder took the session over once its link to the home went down' })

  // The client comes back on the third node, which believes the holder dead.
  const { client: back, connack, got } = await connectWithConnack(`mqtt://${hostOf(third)}:1883`, { clientId: id, clean: false, protocolVersion: 4 })
  cleanups.push(() => back.endAsync(true))
  assert.equal(connack.sessionPresent, true, 'its session, fetched from the doubted holder')
  await waitFor(() => got.length >= sent.length, { timeout: 15_000, message: `the ${sent.length} queued messages (got ${got.length})` })
  assert.deepEqual(got.map((m) => m.payload), sent, 'every acknowledged message, once, in order')
})

const GOSSIP_TO_THE_DEAD_MS = 1000

test('a peer declared dead while its link is up is merged with again within seconds of the heal, not at the next re-resolution', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  // Re-resolution and push/pull a minute away, gossip to the dead over after 1 s: only the data plane's word can merge the views in time.
  const slow = (host: string): ReturnType<typeof clusterConfig> => {
    const base = clusterConfig(host, hosts)
    return {
      ...base,
      cluster: { ...base.cluster, config: { ...(base.cluster as { config: object }).config, push_pull_interval: 60_000, gossip_to_the_dead_time: GOSSIP_TO_THE_DEAD_MS } },
      discovery: { ...base.discovery, resolve_interval: 60_000 }
    }
  }
  const nodes = await startNodes(hosts, slow)
  await waitFor(() => nodes.every((n) => nodes.every((p) => p === n || n.dataPlane.link(nameOf(p))?.state === 'up')), { timeout: 15_000, message: 'a full mesh of peer links' })
  const [cut, ...others] = nodes as [BrokerNode, BrokerNode, BrokerNode]
  for (const other of others) {
    faults(cut).cutGossip(hostOf(other))
    faults(other).cutGossip(hostOf(cut))
  }
  // Dead, or already reaped (a second after its death).
  const gone = (n: BrokerNode, peer: BrokerNode): boolean => { const s = stateOf(n, peer); return s === 'dead' || s === undefined }
  await waitFor(() => others.every((o) => gone(o, cut) && gone(cut, o)), { timeout: 20_000, message: 'both sides declare each other dead' })
  for (const o of others) assert.equal(o.dataPlane.link(nameOf(cut))?.state, 'up', 'the links stay up')
  // Not a wait for the cluster: the gossip to the dead (1 s after each death)
  // must be over, or it would carry the refutations that merge the views.
  await sleep(2 * GOSSIP_TO_THE_DEAD_MS)
  for (const n of nodes) faults(n).heal()
  await waitFor(() => nodes.every((n) => nodes.every((p) => p === n || stateOf(n, p) === 'alive')), { timeout: 10_000, message: 'every node lists every other alive again' })
})
