// A three-node cluster in this process for the data-plane tests: real SWIM
// membership and peer links over loopback, each node on its own address.
import { startNode, type ConfigOverrides, type TestNode } from './node.js'
import { freeLoopbackAddress } from './loopback.js'
import { waitFor } from './wait.js'
import type { MqttClient } from 'mqtt'
import { connect } from './mqtt-clients.js'

/** Fast membership timings; a key, so the links run encrypted as in production. */
export function clusterConfig (host: string, hosts: string[], extra: ConfigOverrides = {}): ConfigOverrides {
  return {
    ...extra,
    cluster: {
      expected_members: hosts.length,
      config: { secret_key: '0123456789abcdef0123456789abcdef', probe_interval: 200, probe_timeout: 100, gossip_interval: 50, push_pull_interval: 1000 },
      ...extra.cluster
    },
    discovery: { seeds: hosts.filter((h) => h !== host).map((h) => `${h}:7946`), formation_wait_min: 0, formation_wait_max: 200, resolve_interval: 1000 }
  }
}

export function nameOf (n: TestNode): string { return n.config.cluster.name }

/** Every node holds an `up` link to every other, and a route table from it. */
export async function waitForMesh (nodes: TestNode[], timeout = 15_000): Promise<void> {
  await waitFor(() => nodes.every((n) => nodes.every((p) => p === n || (
    n.node.dataPlane.link(nameOf(p))?.state === 'up' && n.node.dataPlane.routing.peerVersion(nameOf(p)) !== undefined
  ))), { timeout, message: 'a full mesh of peer links' })
}

/** Starts `count` nodes that form one cluster, and waits for the mesh. */
export async function startCluster (count = 3, extra: ConfigOverrides = {}): Promise<TestNode[]> {
  const hosts: string[] = []
  for (let i = 0; i < count; i++) hosts.push(await freeLoopbackAddress())
  const nodes = await Promise.all(hosts.map(async (h) => await startNode(clusterConfig(h, hosts, extra), h)))
  try {
    await waitForMesh(nodes)
  } catch (err) {
    await Promise.all(nodes.map(async (n) => await n.stop()))
    throw err
  }
  return nodes
}

/** Waits until `from` routes `topic` to `to` (the subscription made on `to` reached `from`). */
export async function waitForRoute (from: TestNode, to: TestNode, topic: string): Promise<void> {
  await waitFor(() => from.node.dataPlane.routing.peersFor(topic).includes(nameOf(to)), { timeout: 5000, message: `${nameOf(from)} to route ${topic} to ${nameOf(to)}` })
}

/**
 * A persistent session (MQTT 3.1.1) at home on `home` whose client is
 * away, with one QoS 1 message ('owed') published on `other` and queued
 * for it; the publisher goes into `open` for the test file to end.
 */
export async function awaySessionOwed (home: TestNode, other: TestNode, clientId: string, topic: string, open: MqttClient[]): Promise<void> {
  const first = await connect(home.mqttUrl, { clientId, clean: false, protocolVersion: 4 })
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  await waitForRoute(other, home, topic)
  const pub = await connect(other.mqttUrl)
  open.push(pub)
  await pub.publishAsync(topic, 'owed', { qos: 1 })
}
