// Graceful shutdown: MQTT 5 clients get DISCONNECT 0x8B, 3.1.1 clients see the
// connection end, stragglers are cut after shutdown_grace_period; in-process
// and as a child process receiving SIGTERM.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createConnection } from 'node:net'
import { startNode, startProcessNode } from '../helpers/node.js'
import { connect, nextDisconnect, endAll, encode, uniqueId } from '../helpers/mqtt-clients.js'
import { waitFor } from '../helpers/wait.js'

test('stop(): MQTT 5 clients get DISCONNECT 0x8B, 3.1.1 clients are closed, all before the grace period', async () => {
  const node = await startNode({ mqtt: { shutdown_grace_period: 5000 } })
  const v5 = await connect(node.mqttUrl, { protocolVersion: 5 })
  const v4 = await connect(node.mqttUrl, { protocolVersion: 4 })
  try {
    const disconnected = nextDisconnect(v5)
    const v4Closed = new Promise<void>((resolve) => v4.once('close', () => resolve()))
    const started = Date.now()
    await node.stop()
    const took = Date.now() - started
    const packet = await disconnected
    assert.equal((packet as { reasonCode?: number } | undefined)?.reasonCode, 0x8B)
    await v4Closed
    assert.ok(took < 4000, `stop took ${took} ms`)
    // Not accepting any more.
    await assert.rejects(connect(node.mqttUrl, { connectTimeout: 1000 }))
  } finally {
    await endAll(v5, v4)
    await node.stop()
  }
})

test('stop(): a connection that does not close by itself is cut after shutdown_grace_period', async () => {
  const node = await startNode({ mqtt: { shutdown_grace_period: 800 } })
  // A 3.1.1 client that ignores the server's FIN (half-open allowed).
  const stubborn = createConnection({ host: node.host, port: node.config.mqtt.port, allowHalfOpen: true })
  stubborn.on('error', () => {})
  let connacked = false
  stubborn.on('data', () => { connacked = true })
  try {
    await new Promise<void>((resolve) => stubborn.once('connect', () => resolve()))
    stubborn.write(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId(), clean: true, keepalive: 60 }))
    await waitFor(() => connacked, { message: 'CONNACK' })
    const started = Date.now()
    await node.stop()
    const took = Date.now() - started
    assert.ok(took >= 700 && took < 3000, `stop took ${took} ms`)
    await waitFor(() => node.node.mqtt.connections === 0, { message: 'server side closed' })
  } finally {
    stubborn.destroy()
    await node.stop()
  }
})

test('SIGTERM: the process tells MQTT 5 clients 0x8B and exits 0 quickly', async () => {
  const node = await startProcessNode({ mqtt: { shutdown_grace_period: 10_000 } })
  const client = await connect(node.mqttUrl, { protocolVersion: 5 })
  try {
    const disconnected = nextDisconnect(client)
    const started = Date.now()
    const code = await node.stop('SIGTERM')
    const took = Date.now() - started
    assert.equal(code, 0, node.output())
    const packet = await disconnected
    assert.equal((packet as { reasonCode?: number } | undefined)?.reasonCode, 0x8B)
    assert.ok(took < 5000, `exit took ${took} ms`)
  } finally {
    await endAll(client)
    await node.stop('SIGKILL')
  }
})
