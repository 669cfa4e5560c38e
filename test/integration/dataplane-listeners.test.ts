// The cluster with clients of every listener type: a WebSocket subscriber on
// node A gets what an mqtts publisher on node B sends, and a wss subscriber
// on B what a plain TCP publisher on A sends.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { uniqueId } from '../helpers/mqtt-clients.js'
import { clusterConfig, waitForMesh, waitForRoute } from '../helpers/dataplane-cluster.js'
import { TestCertificates } from '../helpers/certificates.js'

let a: TestNode, b: TestNode
let certs: TestCertificates
const clients: MqttClient[] = []

before(async () => {
  certs = new TestCertificates()
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  // One certificate for both nodes' addresses.
  const server = certs.issue({ cn: 'cluster', san: hosts.map((h) => `IP:${h}`).join(',') })
  const tls = { cert: server.cert, key: server.key }
  const extra = { mqtt: { listeners: [{ type: 'ws' }, { type: 'mqtts', ...tls }, { type: 'wss', ...tls }] as never } }
  ;[a, b] = await Promise.all(hosts.map(async (h) => await startNode(clusterConfig(h, hosts, extra), h))) as [TestNode, TestNode]
  await waitForMesh([a, b])
})

after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {})
  await Promise.all([a, b].filter((n) => n !== undefined).map(async (n) => await n.stop()))
  certs?.cleanup()
})

async function open (url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { clientId: uniqueId(), reconnectPeriod: 0, protocolVersion: 5, ca: readFileSync(certs.ca.cert), ...options })
  clients.push(c)
  return c
}

test('a ws subscriber on A gets an mqtts publisher on B; a wss subscriber on B gets a TCP publisher on A', async () => {
  const wsOnA = await open(`ws://${a.host}:8083/mqtt`)
  const mqttsOnB = await open(`mqtts://${b.host}:8883`)
  const wssOnB = await open(`wss://${b.host}:8084/mqtt`)
  const tcpOnA = await open(a.mqttUrl)
  const got: Record<string, string[]> = { ws: [], wss: [] }
  wsOnA.on('message', (t, p) => got.ws!.push(`${t}=${p.toString()}`))
  wssOnB.on('message', (t, p) => got.wss!.push(`${t}=${p.toString()}`))
  await wsOnA.subscribeAsync('x/to-a', { qos: 1 })
  await wssOnB.subscribeAsync('x/to-b', { qos: 1 })
  await waitForRoute(b, a, 'x/to-a')
  await waitForRoute(a, b, 'x/to-b')
  for (let i = 0; i < 5; i++) {
    await mqttsOnB.publishAsync('x/to-a', `m${i}`, { qos: 1 })
    await tcpOnA.publishAsync('x/to-b', `n${i}`, { qos: 1 })
  }
  await waitFor(() => got.ws!.length >= 5 && got.wss!.length >= 5, { message: 'both deliveries' })
  assert.deepEqual(got.ws, [0, 1, 2, 3, 4].map((i) => `x/to-a=m${i}`))
  assert.deepEqual(got.wss, [0, 1, 2, 3, 4].map((i) => `x/to-b=n${i}`))
})
