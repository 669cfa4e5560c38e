// Persistent sessions following their node through a rolling restart while
// QoS 2 messages keep coming: a message then reaches the session's new home
// live, in its old home's tail and in a rescue, each copy stamped by another
// node. Each must be delivered once (the message names of data-plane.ts,
// `msgId`). Three in-process nodes; the node the subscribers are on stops
// gracefully and they reconnect at once elsewhere.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient, IClientOptions } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'
import { clusterConfig, waitForMesh, waitForRoute } from '../helpers/dataplane-cluster.js'

const nodes: TestNode[] = []
const clients: MqttClient[] = []

after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {})
  await Promise.all(nodes.map(async (n) => await n.stop()))
})

const SUBSCRIBERS = 6

interface Follower {
  id: string
  options: IClientOptions
  /** Sequence numbers in arrival order, over every connection. */
  got: number[]
  client?: MqttClient
  /** The node to reconnect to when the current connection closes. */
  next?: TestNode
  reconnected?: Promise<void>
}

test('a rolling restart under steady QoS 2 traffic: sessions that follow their node get each message once', { timeout: 60_000 }, async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const start = async (host: string): Promise<TestNode> => await startNode(clusterConfig(host, hosts), host)
  nodes.push(...await Promise.all(hosts.map(start)))
  await waitForMesh(nodes)
  const topic = `moves/${uniqueId('t')}`

  // Every node routes the topic for some other subscriber already: live copies reach a new home at once.
  for (const n of nodes) clients.push(await connect(n.mqttUrl).then(async (c) => { await c.subscribeAsync(topic, { qos: 2 }); return c }))
  const followers: Follower[] = Array.from({ length: SUBSCRIBERS }, (_, i) => {
    const id = uniqueId(`follower${i}`)
    const options: IClientOptions = i % 2 === 0
      ? { clientId: id, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } }
      : { clientId: id, clean: false, protocolVersion: 4 }
    return { id, options, got: [] }
  })
  const attach = async (f: Follower, node: TestNode): Promise<void> => {
    const c = await connect(node.mqttUrl, f.options)
    clients.push(c)
    f.client = c
    c.on('message', (_t, payload) => f.got.push(Number(payload.toString())))
    // Reconnect at once when the node goes away, as a client behind a Service would.
    c.once('close', () => { if (f.next !== undefined) f.reconnected = attach(f, f.next) })
  }
  for (const f of followers) {
    await attach(f, nodes[0]!)
    await f.client!.subscribeAsync(topic, { qos: 2 })
  }
  for (const n of nodes.slice(1)) await waitForRoute(n, nodes[0]!, topic)

  // The publisher stays on the third node, which is never stopped.
  const pub = await connect(nodes[2]!.mqttUrl)
  clients.push(pub)
  let seq = 0
  let publishing = true
  const publisher = (async () => {
    const until = Date.now() + 40_000
    while (publishing && Date.now() < until) await pub.publishAsync(topic, String(seq++), { qos: 2 })
  })()

  // Round 1: the followers' node 0 stops, they go to node 1; node 0 comes back.
  // Round 2: node 1 stops, they go to node 0; node 1 comes back.
  for (const [from, to] of [[0, 1], [1, 0]] as const) {
    await waitFor(() => seq > 200, { message: 'messages flowing' })
    for (const f of followers) f.next = nodes[to]
    await nodes[from]!.stop()
    await Promise.all(followers.map(async (f) => await f.reconnected))
    for (const f of followers) f.next = undefined
    nodes[from] = await start(hosts[from]!)
    await waitForMesh(nodes)
    const mark = seq
    await waitFor(() => followers.every((f) => f.got.some((s) => s >= mark)), { message: 'followers receiving again' })
  }
  publishing = false
  await publisher
  const last = seq - 1
  await waitFor(() => followers.every((f) => f.got.includes(last)), { timeout: 10_000, message: `every follower got #${last}` })

  for (const f of followers) {
    const twice = f.got.filter((s, i) => f.got.indexOf(s) !== i)
    assert.deepEqual(twice, [], `${f.id} got these QoS 2 messages twice`)
  }
  // Order is not asserted: in about one run in twenty, a few messages queued
  // on a session's new home stay unsent while later ones flow, and arrive at
  // the next move (docs/data-plane.md, "What remains").
})
