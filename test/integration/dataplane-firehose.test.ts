// A firehose into a dead node's sessions: a publisher on a survivor sends
// QoS 1 messages to the persistent sessions of a node that is SIGKILLed,
// faster than the publishes kept for the dead node's sessions may grow
// (cluster.dead_peer_buffer_bytes, lowered here to 256 KiB so that a test
// reaches it). Past that bound the publisher is slowed, not acknowledged
// for messages no node keeps: every acknowledged message reaches its
// session on the node that took it over, the publisher stays connected and
// goes on after the takeover, and nothing is refused or acknowledged
// without a copy. (Before, past the bound a publish was acknowledged and
// dropped: the same test lost 100 to 300 acknowledged messages.)
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import type { ProcessNode } from '../helpers/node.js'
import { startProcessCluster, FAST } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'
import { metricSum, metricByLabel } from '../helpers/metrics.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'

const KEY = '0123456789abcdef0123456789abcdef'
const SESSIONS = 20
const PAYLOAD = 16 * 1024
const IN_FLIGHT = 64
let nodes: ProcessNode[] = []
const clients: MqttClient[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {})
  await Promise.all(nodes.splice(0).map(async (n) => await n.stop('SIGKILL')))
})

test('past the bound kept for a dead node, publishers to its sessions are slowed, not acknowledged for lost messages: none lost, the publisher stays connected', async () => {
  nodes = await startProcessCluster(3, { cluster: { dead_peer_buffer_bytes: 256 * 1024, config: { ...FAST, secret_key: KEY } } })
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]
  // Offline persistent sessions at home on `a`, each replicated to b or c.
  const ids = Array.from({ length: SESSIONS }, (_, i) => uniqueId(`fire${i}`))
  for (const [i, id] of ids.entries()) {
    const s = await connect(a.mqttUrl, { clientId: id, clean: false, protocolVersion: 4 })
    await s.subscribeAsync(`fire/${i}`, { qos: 1 })
    await s.endAsync()
  }
  await waitFor(async () => await metricSum(b.apiUrl, 'broker_cluster_session_replicas') + await metricSum(c.apiUrl, 'broker_cluster_session_replicas') === SESSIONS,
    { timeout: 15_000, message: 'a replica of every session' })
  // Routes of `a` known on b: the publisher's messages go there.
  const pub = await connect(b.mqttUrl, { protocolVersion: 4, clientId: uniqueId('firehose') })
  clients.push(pub)
  let closed = false
  pub.on('close', () => { closed = true })
  const acked: number[] = []
  const ackedAt: number[] = []
  let seq = 0
  let publishing = true
  const payload = Buffer.alloc(PAYLOAD)
  const publishOne = async (): Promise<void> => {
    const n = seq++
    const body = Buffer.from(payload)
    body.writeUInt32BE(n, 0)
    await pub.publishAsync(`fire/${n % SESSIONS}`, body, { qos: 1 })
    acked.push(n)
    ackedAt.push(Date.now())
  }
  // IN_FLIGHT publishes at a time, as fast as they are acknowledged.
  const publisher = Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (publishing && !closed) await publishOne()
  }))
  await waitFor(() => acked.length >= 500, { timeout: 20_000, message: 'the firehose flowing' })

  await a.stop('SIGKILL')
  const killedAt = Date.now()
  await waitFor(async () => await metricSum(b.apiUrl, 'broker_cluster_sessions_promoted_total') + await metricSum(c.apiUrl, 'broker_cluster_sessions_promoted_total') === SESSIONS,
    { timeout: 20_000, message: 'every session of the killed node taken over' })
  const takenAt = Date.now()
  // The publisher goes on after the takeover.
  await waitFor(() => ackedAt.filter((t) => t > takenAt).length >= 300, { timeout: 30_000, message: 'acknowledgements after the takeover' })
  publishing = false
  await publisher
  assert.equal(closed, false, 'the publisher stayed connected')

  // Every acknowledged message reaches its session, wherever it was taken over.
  const received = new Set<number>()
  for (const [i, id] of ids.entries()) {
    // Listening from before the CONNACK: a resumed session's queue may come in the same read.
    const s = mqtt.connect(i % 2 === 0 ? b.mqttUrl : c.mqttUrl, { clientId: id, clean: false, protocolVersion: 4, reconnectPeriod: 0 })
    clients.push(s)
    s.on('message', (_topic, body) => { received.add(body.readUInt32BE(0)) })
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  }
  await waitFor(() => acked.every((n) => received.has(n)), { timeout: 60_000 }).catch(() => {})
  const missing = acked.filter((n) => !received.has(n))
  assert.equal(missing.length, 0, `acknowledged messages never delivered: ${missing.length} of ${acked.length}`)
  // The bound was reached: publishes waited (backpressure), none was refused.
  const waited = await metricSum(b.apiUrl, 'broker_cluster_publishes_waited_takeover_total')
  assert.ok(waited > 0, 'publishes waited for the takeover (the bound was reached)')
  assert.equal(await metricSum(b.apiUrl, 'broker_cluster_publishes_refused_total'), 0)
  assert.equal(await metricSum(b.apiUrl, 'broker_cluster_publishes_waiting_takeover'), 0, 'no publish still waiting')
  const unreplicated = await metricByLabel(b.apiUrl, 'broker_cluster_acks_unreplicated_total', 'reason')
  assert.equal(unreplicated.dropped ?? 0, 0)

  const afterKill = ackedAt.filter((t) => t > killedAt).length
  process.stdout.write(`# firehose: ${acked.length} acknowledged (${afterKill} after the kill), ${waited} waited for the takeover, 0 lost\n`)
})
