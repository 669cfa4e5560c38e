// A resuming CONNECT abandoned while its session fetch waits (the chaos run
// `--nodes 5 --faults restart-all,kill --seed 16` lost a session this way):
// after a whole-cluster restart the fetch waits for the expected members
// (storage's fetchWait), the client gives up on the CONNECT (its connect
// timeout) and reconnects to another node. The fetch used to go on, move the
// session to the node the client had left and acknowledge it (its home
// deleted its copy); the client's new node then did not always reach that
// node, started a new session, and its connect announcement removed the
// moved copy as stale. A fetch whose CONNECT is gone must leave the session
// where it was. Two in-process nodes; the wait is the same seam storage uses.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { Client } from 'aedes'
import type { MqttClient } from 'mqtt'
import type { TestNode } from '../helpers/node.js'
import { awaySessionOwed, startCluster } from '../helpers/dataplane-cluster.js'
import { waitFor } from '../helpers/wait.js'
import { RawClient, connectWithConnack, uniqueId, waitForCount } from '../helpers/mqtt-clients.js'
import { connectionGone } from '../../src/server/cluster/dataplane/session-moves.js'
import type { StartWindow } from '../../src/server/cluster/dataplane/start-window.js'

const nodes: TestNode[] = []
const clients: MqttClient[] = []

after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {})
  await Promise.all(nodes.map(async (n) => await n.stop()))
})

interface Moves { isArriving: (clientId: string) => boolean }
const movesOf = (n: TestNode): Moves => (n.node.dataPlane as unknown as { parts: { moves: Moves } }).parts.moves
const startWindowOf = (n: TestNode): StartWindow => (n.node.dataPlane as unknown as { parts: { startWindow: StartWindow } }).parts.startWindow

test('a resuming CONNECT given up while its session fetch waits leaves the session on its home', { timeout: 60_000 }, async () => {
  nodes.push(...await startCluster(2))
  const [home, other] = nodes as [TestNode, TestNode]
  const id = uniqueId('abandoner')
  const topic = `abandoned/${uniqueId('t')}`

  // A persistent session on its home, with one QoS 1 message queued while its client is away.
  await awaySessionOwed(home, other, id, topic, clients)
  await waitFor(() => home.node.mqtt.persistence.hasSession(id), { message: 'the session on its home' })

  // The other node's fetches wait (as after a whole-cluster restart) until released.
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  startWindowOf(other).fetchWait = () => released
  const aedes = other.node.mqtt.aedes
  const authenticate = aedes.authenticate
  let asking: Client | undefined
  aedes.authenticate = (client, username, password, callback) => {
    if (client.id === id) asking = client
    authenticate.call(aedes, client, username, password, callback)
  }

  // The client resumes on the other node, and gives up before its CONNACK.
  const raw = await RawClient.open(other.host, other.config.mqtt.port)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: false, keepalive: 60 })
  await waitFor(() => movesOf(other).isArriving(id), { message: 'the fetch under way on the other node' })
  raw.socket.end()
  await raw.waitClosed()
  await waitFor(() => asking !== undefined && connectionGone(asking), { message: 'the other node to see the CONNECT gone' })

  // The fetch goes on: it must not take the session.
  release()
  await waitFor(() => !movesOf(other).isArriving(id), { message: 'the fetch to end' })
  assert.equal(other.node.mqtt.persistence.hasSession(id), false, 'the abandoned fetch moved the session to the node the client left')
  assert.equal(home.node.mqtt.persistence.hasSession(id), true, 'the home no longer holds the session')

  // Back on its home, the client finds its session and what it was owed.
  const back = await connectWithConnack(home.mqttUrl, { clientId: id, clean: false, protocolVersion: 4 })
  clients.push(back.client)
  assert.equal(back.connack.sessionPresent, true, 'session present')
  const got = await waitForCount(back.got, 1)
  assert.deepEqual(got.map((m) => m.payload), ['owed'])
})
