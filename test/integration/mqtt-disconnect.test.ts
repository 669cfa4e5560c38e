// Every DISCONNECT the server sends reaches a client that is still sending
// (MQTT 5 section 3.14): the connection is ended in order after it
// (src/server/mqtt/disconnect.ts), never reset with the client's packets
// unread, which would throw the DISCONNECT away on the client's side.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { createConnection, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import type { Packet } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { encode, uniqueId } from '../helpers/mqtt-clients.js'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { parser: (opts: object) => { on: (e: string, f: (p: Packet) => void) => void, parse: (b: Buffer) => void } }

/** Runs of each case: a reset used to win about two times in three. */
const RUNS = 3

/**
 * An MQTT 5 client that, once connected, sends `chunk()` as fast as the
 * socket takes it until the server says DISCONNECT; then it stops and closes,
 * as a real client does. Records what it read and any socket error.
 */
class SendingClient {
  readonly packets: Packet[] = []
  error: string | undefined
  closed = false
  private sending = false
  private constructor (readonly socket: Socket) {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p) => {
      this.packets.push(p)
      if (p.cmd === 'disconnect') {
        this.sending = false
        socket.end()
      }
    })
    parser.on('error', () => {})
    socket.on('data', (d: Buffer) => parser.parse(d))
    socket.on('error', (err: NodeJS.ErrnoException) => { this.error = err.code ?? err.message })
    socket.on('close', () => { this.closed = true })
  }

  static async open (node: TestNode, clientId = uniqueId('send')): Promise<SendingClient> {
    const socket = createConnection({ host: node.host, port: node.config.mqtt.port })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    const client = new SendingClient(socket)
    socket.write(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 60 }, 5))
    await waitFor(() => client.packets.find((p) => p.cmd === 'connack'), { message: 'CONNACK' })
    return client
  }

  /** Sends until told to stop; `first` goes out before the stream of `chunk()`. */
  send (chunk: () => Buffer, first?: Buffer): void {
    this.sending = true
    if (first !== undefined) this.socket.write(first)
    const pump = (): void => {
      while (this.sending && !this.socket.destroyed) {
        if (!this.socket.write(chunk())) {
          this.socket.once('drain', pump)
          return
        }
      }
    }
    setImmediate(pump)
  }

  /** The DISCONNECT the server sent, once the connection is over; fails on a reset. */
  async disconnected (): Promise<number | undefined> {
    await waitFor(() => this.closed, { message: 'the connection to end' })
    assert.equal(this.error, undefined, `the connection was reset (${String(this.error)}) instead of ended after the DISCONNECT`)
    return (this.packets.find((p) => p.cmd === 'disconnect') as { reasonCode?: number } | undefined)?.reasonCode
  }
}

let seq = 0
const publishes = (topic: string, qos: 0 | 2, size = 512) => (): Buffer =>
  encode({ cmd: 'publish', topic, payload: Buffer.alloc(size), qos, ...(qos > 0 ? { messageId: (seq++ % 65535) + 1 } : {}) }, 5)

describe('a server DISCONNECT arrives while the client keeps sending', () => {
  let node: TestNode
  before(async () => { node = await startNode({ mqtt: { max_inflight: 5, max_packet_size: 8192 } }) })
  after(async () => { await node.stop() })

  for (let run = 1; run <= RUNS; run++) {
    test(`0x93 Receive Maximum exceeded (run ${run})`, async () => {
      const client = await SendingClient.open(node)
      client.send(publishes(`rm/${uniqueId()}`, 2))
      assert.equal(await client.disconnected(), 0x93)
      // The reason in words too: Eclipse Paho reads a DISCONNECT's reason code only when properties follow it.
      const disconnect = client.packets.find((p) => p.cmd === 'disconnect') as { properties?: { reasonString?: string } }
      assert.equal(disconnect.properties?.reasonString, 'receive maximum exceeded')
    })

    test(`0x95 Packet too large (run ${run})`, async () => {
      const client = await SendingClient.open(node)
      const topic = `big/${uniqueId()}`
      client.send(publishes(topic, 0), encode({ cmd: 'publish', topic, payload: Buffer.alloc(200_000), qos: 0 }, 5))
      assert.equal(await client.disconnected(), 0x95)
    })

    test(`0x81 Malformed packet (run ${run})`, async () => {
      const client = await SendingClient.open(node)
      // PUBREL must have header flags 0010; 0000 is malformed. [MQTT-2.2.2-2]
      client.send(publishes(`mal/${uniqueId()}`, 0), Buffer.from([0x60, 0x02, 0x00, 0x01]))
      assert.equal(await client.disconnected(), 0x81)
    })

    test(`0x82 Protocol error: a second CONNECT (run ${run})`, async () => {
      const client = await SendingClient.open(node)
      const again = encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uniqueId(), clean: true, keepalive: 60 }, 5)
      client.send(publishes(`proto/${uniqueId()}`, 0), again)
      assert.equal(await client.disconnected(), 0x82)
    })

    test(`0x8E Session taken over (run ${run})`, async () => {
      const id = uniqueId('taken')
      const first = await SendingClient.open(node, id)
      first.send(publishes(`take/${id}`, 0))
      const second = await SendingClient.open(node, id)
      try {
        assert.equal(await first.disconnected(), 0x8E)
      } finally {
        second.socket.destroy()
      }
    })

    test(`0x98 Administrative action (run ${run})`, async () => {
      const id = uniqueId('admin')
      const client = await SendingClient.open(node, id)
      client.send(publishes(`admin/${id}`, 0))
      assert.equal(await node.node.mqtt.introspection.disconnect(id), true)
      assert.equal(await client.disconnected(), 0x98)
    })
  }
})

test('0x8B Server shutting down arrives while the client keeps sending', async () => {
  for (let run = 1; run <= RUNS; run++) {
    const node = await startNode({ mqtt: { shutdown_grace_period: 5000 } })
    try {
      const client = await SendingClient.open(node)
      client.send(publishes(`bye/${uniqueId()}`, 0))
      await node.stop()
      assert.equal(await client.disconnected(), 0x8B, `run ${run}`)
    } finally {
      await node.stop()
    }
  }
})
