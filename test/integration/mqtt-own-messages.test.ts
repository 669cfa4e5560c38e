// A client's own messages, on one connection, come back whole: the two
// sequences in which issue 17 saw an accepted message go missing (1 run in
// 2 on one node; 1 in 5 through a round-robin proxy over three nodes).
// Each is run RUNS times here; each message must arrive with its flow
// completed (a QoS 2 message reaches an application at PUBREL, which needs
// our PUBREL to the client's PUBREC).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createConnection, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import type { TestNode } from '../helpers/node.js'
import { startNode } from '../helpers/node.js'
import { startCluster } from '../helpers/dataplane-cluster.js'
import { waitFor } from '../helpers/wait.js'
import { uniqueId } from '../helpers/mqtt-clients.js'

const require = createRequire(import.meta.url)
interface Packet { cmd: string, qos?: number, messageId?: number, topic?: string, payload?: Buffer, retain?: boolean }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts: object) => { on: (e: string, f: (p: Packet) => void) => void, parse: (b: Buffer) => void }
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
}
const encode = (p: object): Buffer => mqttPacket.generate(p, { protocolVersion: 5 })

const RUNS = 10

/** An MQTT 5 client on a raw socket that completes every QoS flow, as Eclipse Paho does, and records what its application would get. */
class Client {
  /** Payloads handed to the application: QoS 0/1 at PUBLISH, QoS 2 at PUBREL. */
  readonly delivered: string[] = []
  private readonly pending = new Map<number, string>()
  private connacked = false
  private readonly acks = new Set<number>()

  private constructor (private readonly socket: Socket) {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p) => this.packet(p))
    socket.on('data', (d: Buffer) => parser.parse(d))
    socket.on('error', () => {})
  }

  static async open (host: string, connect: object = {}): Promise<Client> {
    const socket = createConnection({ host, port: 1883 })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    const client = new Client(socket)
    socket.write(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uniqueId('own'), clean: true, keepalive: 60, ...connect }))
    await waitFor(() => client.connacked, { message: 'CONNACK' })
    return client
  }

  private packet (p: Packet): void {
    const write = (packet: object): void => { this.socket.write(encode(packet)) }
    switch (p.cmd) {
      case 'connack': this.connacked = true; break
      case 'suback': case 'puback': case 'pubcomp': this.acks.add(p.messageId!); break
      case 'pubrec': write({ cmd: 'pubrel', messageId: p.messageId }); break
      case 'publish':
        if (p.qos === 2) {
          this.pending.set(p.messageId!, p.payload!.toString())
          write({ cmd: 'pubrec', messageId: p.messageId })
        } else {
          this.delivered.push(p.payload!.toString())
          if (p.qos === 1) write({ cmd: 'puback', messageId: p.messageId })
        }
        break
      case 'pubrel': {
        const payload = this.pending.get(p.messageId!)
        if (payload !== undefined) this.delivered.push(payload)
        this.pending.delete(p.messageId!)
        write({ cmd: 'pubcomp', messageId: p.messageId })
        break
      }
    }
  }

  send (...packets: object[]): void {
    this.socket.write(Buffer.concat(packets.map(encode)))
  }

  async acked (messageId: number): Promise<void> {
    await waitFor(() => this.acks.has(messageId), { message: `the acknowledgement of ${messageId}` })
  }

  close (): void {
    this.socket.end(encode({ cmd: 'disconnect', reasonCode: 0 }))
  }
}

async function allThree (client: Client, what: string): Promise<void> {
  await waitFor(() => client.delivered.length >= 3, { timeout: 3000, message: `${what}: all three (have ${client.delivered.join(', ')})` })
  assert.deepEqual([...client.delivered].sort(), ['q0', 'q1', 'q2'])
}

let node: TestNode
let cluster: TestNode[]

before(async () => {
  node = await startNode()
  cluster = await startCluster(3)
})
after(async () => { await Promise.all([node, ...cluster].map(async (n) => await n.stop())) })

test('one node: a client with Topic Alias Maximum 1, subscribed at QoS 2, publishes QoS 0, 1 and 2 back to back and gets all three', async () => {
  for (let run = 0; run < RUNS; run++) {
    const client = await Client.open(node.host, { properties: { topicAliasMaximum: 1 } })
    try {
      const topic = `own/${uniqueId()}`
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] })
      await client.acked(1)
      client.send(
        { cmd: 'publish', topic, payload: 'q0', qos: 0 },
        { cmd: 'publish', topic, payload: 'q1', qos: 1, messageId: 2 },
        { cmd: 'publish', topic, payload: 'q2', qos: 2, messageId: 3 }
      )
      await allThree(client, `run ${run}`)
    } finally {
      client.close()
    }
  }
})

test('three nodes, each run on the next: three retained messages (QoS 0, 1, 2), then SUBSCRIBE with Retain Handling 1 on the same connection gets all three', async () => {
  for (let run = 0; run < RUNS; run++) {
    const client = await Client.open(cluster[run % cluster.length]!.host)
    const base = `ownret/${uniqueId()}`
    try {
      client.send(
        { cmd: 'publish', topic: `${base}/a`, payload: 'q0', qos: 0, retain: true },
        { cmd: 'publish', topic: `${base}/b`, payload: 'q1', qos: 1, retain: true, messageId: 1 },
        { cmd: 'publish', topic: `${base}/c`, payload: 'q2', qos: 2, retain: true, messageId: 2 }
      )
      await client.acked(1)
      await client.acked(2)
      client.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `${base}/+`, qos: 2, rh: 1 }] })
      await allThree(client, `run ${run}`)
    } finally {
      client.send(...['a', 'b', 'c'].map((t) => ({ cmd: 'publish', topic: `${base}/${t}`, payload: '', qos: 0, retain: true })))
      client.close()
    }
  }
})
