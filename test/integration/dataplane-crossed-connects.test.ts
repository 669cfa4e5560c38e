// Two CONNECTs of one client on two nodes at once (the chaos run `--nodes 5
// --faults restart-all,restart-all-late,kill --seed 23` lost two sessions
// this way): a client gave up on a slow CONNECT to node O and reconnected to
// its session's home H. H's fetch was still waiting for a slow peer when
// O's request came: H gave its copy to O for the older CONNECT, then
// answered its own client without it (session present 0), and its connect
// announcement removed O's copy as stale. The later CONNECT keeps the
// session: H answers an older CONNECT's request with nothing.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import type { TestNode } from '../helpers/node.js'
import { awaySessionOwed, startCluster } from '../helpers/dataplane-cluster.js'
import { waitFor } from '../helpers/wait.js'
import { RawClient, connectWithConnack, uniqueId, waitForCount } from '../helpers/mqtt-clients.js'
import type { StartWindow } from '../../src/server/cluster/dataplane/start-window.js'

const nodes: TestNode[] = []
const clients: MqttClient[] = []
const raws: RawClient[] = []

after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {})
  for (const r of raws) r.socket.destroy()
  await Promise.all(nodes.map(async (n) => await n.stop()))
})

interface Moves { isArriving: (clientId: string) => boolean, host: { beforeTakeover?: (clientId: string) => Promise<void> | undefined } }
const movesOf = (n: TestNode): Moves => (n.node.dataPlane as unknown as { parts: { moves: Moves } }).parts.moves
const startWindowOf = (n: TestNode): StartWindow => (n.node.dataPlane as unknown as { parts: { startWindow: StartWindow } }).parts.startWindow
const held = (): { wait: Promise<void>, release: () => void } => {
  let release!: () => void
  const wait = new Promise<void>((resolve) => { release = resolve })
  return { wait, release }
}

test('of two CONNECTs of one client on two nodes, the later one keeps the session', { timeout: 60_000 }, async () => {
  nodes.push(...await startCluster(3))
  const [home, other, slow] = nodes as [TestNode, TestNode, TestNode]
  const id = uniqueId('crossed')
  const topic = `crossed/${uniqueId('t')}`

  // A persistent session at home, one QoS 1 message queued while its client is away.
  await awaySessionOwed(home, other, id, topic, clients)

  // The older CONNECT, on the other node: its fetch waits (as after a restart).
  const otherFetch = held()
  startWindowOf(other).fetchWait = () => otherFetch.wait
  const raw = await RawClient.open(other.host, other.config.mqtt.port)
  raws.push(raw)
  raw.send({ cmd: 'connect', protocolVersion: 4, protocolId: 'MQTT', clientId: id, clean: false, keepalive: 60 })
  await waitFor(() => movesOf(other).isArriving(id), { message: 'the older fetch under way on the other node' })

  // The later CONNECT, at home: its fetch waits for a slow peer.
  const slowAnswer = held()
  let asked = 0
  movesOf(slow).host.beforeTakeover = () => asked++ === 0 ? slowAnswer.wait : undefined
  const later = connectWithConnack(home.mqttUrl, { clientId: id, clean: false, protocolVersion: 4, connectTimeout: 30_000 })
  await waitFor(() => movesOf(home).isArriving(id), { message: 'the later fetch under way at home' })

  // The older fetch asks now, while the later one is under way.
  otherFetch.release()
  await waitFor(() => !movesOf(other).isArriving(id), { message: 'the older fetch to end' })
  assert.equal(home.node.mqtt.persistence.hasSession(id), true, 'the home gave the session to the older CONNECT')

  slowAnswer.release()
  const { client, connack, got } = await later
  clients.push(client)
  assert.equal(connack.sessionPresent, true, 'the later CONNECT gets the session')
  await waitForCount(got, 1, 'the queued message')
  assert.deepEqual(got.map((m) => m.payload), ['owed'])
})
