// cluster.ack_after: replicated (the default): a PUBACK means a second node
// holds the message, so the SIGKILL of any one node right after the
// acknowledgements loses none of them. Three `broker-ha serve` processes per
// test, encrypted links, mqtt.js; the kill comes the moment the last PUBACK
// arrived, with no wait for replication.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import type { ProcessNode } from '../helpers/node.js'
import { keyedClusterPerTest } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'
import { connect, connectWithConnack, uniqueId, waitForCount } from '../helpers/mqtt-clients.js'

const { start, clients } = keyedClusterPerTest()

async function cluster (): Promise<[ProcessNode, ProcessNode, ProcessNode]> {
  return await start(3) as [ProcessNode, ProcessNode, ProcessNode]
}

/** The node the subscriber's session is replicated to, once it holds it. */
async function holderOf (candidates: ProcessNode[]): Promise<ProcessNode> {
  let holder: ProcessNode | undefined
  await waitFor(async () => {
    for (const n of candidates) {
      const text = await (await fetch(`${n.apiUrl}/metrics`)).text()
      if (/^broker_cluster_session_replicas 1$/m.test(text)) holder = n
    }
    return holder !== undefined
  }, { timeout: 10_000, message: 'a replica holder' })
  return holder!
}

async function publishAll (pub: MqttClient, topic: string, n: number): Promise<string[]> {
  const sent = Array.from({ length: n }, (_, i) => `m${i}`)
  // Pipelined: every PUBACK counts, none is waited for before the next publish.
  await Promise.all(sent.map(async (m) => await pub.publishAsync(topic, m, { qos: 1 })))
  return sent
}

for (const version of [4, 5] as const) {
  test(`v${version === 4 ? '3.1.1' : '5'}: messages acknowledged by the node of an offline persistent session survive its SIGKILL right after the last PUBACK`, async () => {
    const [a, b, c] = await cluster()
    const id = uniqueId('acked')
    const topic = `acks/${id}`
    const opts = version === 5
      ? { clientId: id, clean: false, protocolVersion: 5 as const, reconnectPeriod: 0, properties: { sessionExpiryInterval: 300 } }
      : { clientId: id, clean: false, protocolVersion: 4 as const, reconnectPeriod: 0 }
    const first = await connect(a.mqttUrl, opts)
    await first.subscribeAsync(topic, { qos: 1 })
    await first.endAsync()
    const holder = await holderOf([b, c])
    const pub = await connect(a.mqttUrl, { protocolVersion: version, reconnectPeriod: 0 })
    clients.push(pub)
    const sent = await publishAll(pub, topic, 200)
    await a.stop('SIGKILL')

    const { client: back, connack, got } = await connectWithConnack(holder.mqttUrl, opts)
    clients.push(back)
    assert.equal(connack.sessionPresent, true)
    await waitForCount(got, sent.length, `all ${sent.length} acknowledged messages`, 15_000)
    assert.deepEqual(got.map((m) => m.payload), sent, 'each once, in order')
  })
}

test('messages acknowledged for a subscriber on another node survive the SIGKILL of the subscriber\'s node right after the last PUBACK', async () => {
  const [a, b, c] = await cluster()
  const id = uniqueId('acked-remote')
  const topic = `acks/${id}`
  const opts = { clientId: id, clean: false, protocolVersion: 5 as const, reconnectPeriod: 0, properties: { sessionExpiryInterval: 300 } }
  const pub = await connect(a.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0 })
  clients.push(pub)
  const first = await connect(b.mqttUrl, opts)
  await first.subscribeAsync(topic, { qos: 1 })
  // The route reached A once a probe published there arrives.
  let probed = false
  first.on('message', () => { probed = true })
  await waitFor(async () => {
    await pub.publishAsync(topic, 'probe', { qos: 0 })
    return probed
  }, { timeout: 5000, interval: 200, message: 'A routes the topic to B' })
  await first.endAsync()
  const holder = await holderOf([a, c])
  const sent = await publishAll(pub, topic, 200)
  await b.stop('SIGKILL')

  const { client: back, connack, got } = await connectWithConnack(holder.mqttUrl, opts)
  clients.push(back)
  assert.equal(connack.sessionPresent, true)
  await waitFor(() => sent.every((m) => got.some((g) => g.payload === m)), { timeout: 15_000, message: `all ${sent.length} acknowledged messages` })
  assert.deepEqual(got.map((m) => m.payload), sent, 'each once, in order')
})
