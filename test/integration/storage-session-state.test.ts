// What of a persistent session the store keeps besides waiting messages:
// messages in flight under their packet identifiers, PUBRELs waiting for
// PUBCOMP, and the session's expiry (docs/storage.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Packet } from 'mqtt-packet'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { RawClient, connect, connectWithConnack, endAll, uniqueId } from '../helpers/mqtt-clients.js'
import { waitFor } from '../helpers/wait.js'

function tmpDir (t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-storage-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

type Pub = Packet & { messageId?: number, payload?: Buffer, dup?: boolean, qos?: number }

test('in-flight QoS 1 and 2 messages keep their packet identifiers, and a PUBREL its place, across a restart', async (t) => {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  const config = { storage: { dir, sync: 'always' as const } }
  let node: TestNode = await startNode(config, host)
  t.after(async () => { await node.stop() })
  const port = node.config.mqtt.port
  const clientId = uniqueId('inflight')

  let raw = await RawClient.open(host, port)
  await raw.connect(clientId, 4, { clean: false })
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'work/#', qos: 2 }] })
  await raw.waitFor('suback')
  const pub = await connect(node.mqttUrl)
  await pub.publishAsync('work/a', 'one', { qos: 1 })
  await pub.publishAsync('work/b', 'two', { qos: 2 })
  await endAll(pub)
  // Both arrive; the QoS 2 one is answered with PUBREC (the broker then sends PUBREL), nothing else.
  const first = await waitFor(() => raw.packets.filter((p) => p.cmd === 'publish').length >= 2 ? raw.packets.filter((p) => p.cmd === 'publish') as Pub[] : undefined)
  const one = first.find((p) => p.payload?.toString() === 'one')!
  const two = first.find((p) => p.payload?.toString() === 'two')!
  raw.send({ cmd: 'pubrec', messageId: two.messageId })
  const pubrel = await raw.waitFor('pubrel') as Pub
  assert.equal(pubrel.messageId, two.messageId)
  raw.destroy()

  await node.stop()
  node = await startNode(config, host)

  raw = await RawClient.open(host, port)
  t.after(() => raw.destroy())
  const connack = await raw.connect(clientId, 4, { clean: false }) as Packet & { sessionPresent?: boolean }
  assert.equal(connack.sessionPresent, true)
  // The unacknowledged QoS 1 message again, DUP, same identifier; the PUBREL again for the QoS 2 one.
  const again = await raw.waitFor('publish') as Pub
  assert.equal(again.payload?.toString(), 'one')
  assert.equal(again.messageId, one.messageId)
  assert.equal(again.dup, true)
  const rel = await raw.waitFor('pubrel') as Pub
  assert.equal(rel.messageId, two.messageId)
  assert.equal(raw.packets.filter((p) => p.cmd === 'publish').length, 1, 'the QoS 2 message is not sent again: only its PUBREL')
  raw.send({ cmd: 'puback', messageId: again.messageId })
  raw.send({ cmd: 'pubcomp', messageId: rel.messageId })
  await waitFor(() => node.node.mqtt.persistence.queuedFor(clientId) === 0, { message: 'the queue to empty' })
})

test('a session that expires while its node is down is gone after the restart; one with time left expires on schedule', async (t) => {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  const config = { storage: { dir } }
  let node: TestNode = await startNode(config, host)
  t.after(async () => { await node.stop() })
  const short = uniqueId('short')
  const longer = uniqueId('longer')
  for (const [id, expiry] of [[short, 1], [longer, 3]] as const) {
    const c = await connect(node.mqttUrl, { clientId: id, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: expiry } })
    await c.subscribeAsync(`x/${id}`, { qos: 1 })
    await c.endAsync()
  }
  await node.stop()
  const stoppedAt = Date.now()
  await waitFor(() => Date.now() - stoppedAt > 1200, { message: 'the short session to pass its expiry' })
  node = await startNode(config, host)
  assert.equal(node.node.mqtt.persistence.hasSession(short), false, 'expired while the node was down')
  assert.equal(node.node.mqtt.persistence.hasSession(longer), true, 'still within its expiry')
  await waitFor(() => !node.node.mqtt.persistence.hasSession(longer), { timeout: 5000, message: 'the longer session to expire after the restart' })
  const { client, connack } = await connectWithConnack(node.mqttUrl, { clientId: longer, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3 } })
  t.after(async () => { await endAll(client) })
  assert.equal(connack.sessionPresent, false)
})
