// Exactly once for a QoS 2 publisher whose connection keeps breaking and
// which comes back on another node each time, as a device behind a load
// balancer on a bad link: its persistent session (with the QoS 2 PUBLISHes
// it sent and the broker has not released) moves with it, so a PUBLISH it
// sends again with the same packet identifier is recognised wherever it
// lands. Cut at once (the node still storing and publishing what it just
// got) or after a few acknowledgements. A raw client keeps the timing in our
// hands.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createConnection, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import type { MqttClient } from 'mqtt'
import type { TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'
import { startCluster } from '../helpers/dataplane-cluster.js'

const require = createRequire(import.meta.url)
interface Packet { cmd: string, messageId?: number, reasonCode?: number, sessionPresent?: boolean }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts: object) => { on: (e: string, f: (p: Packet) => void) => void, parse: (b: Buffer) => void }
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
}

let nodes: TestNode[] = []
const clients: MqttClient[] = []
before(async () => { nodes = await startCluster(3) })
after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {})
  await Promise.all(nodes.map(async (n) => await n.stop()))
})

const WINDOW = 20
const HOPS = 40
const TOTAL = 1200

/** One connection of the hopping publisher: resends what is owed, publishes, and is cut after `cutAfter` acknowledgements. */
async function connection (node: TestNode, clientId: string, topic: string, owed: Map<number, { seq: number, released: boolean }>, next: { seq: number, id: number }, cutAfter: number): Promise<void> {
  const url = new URL(node.mqttUrl)
  const socket: Socket = createConnection({ host: url.hostname, port: Number(url.port) })
  socket.on('error', () => {})
  const send = (p: object): void => { if (!socket.destroyed) socket.write(mqttPacket.generate(p, { protocolVersion: 5 })) }
  const publish = (id: number, seq: number, dup: boolean): void => send({ cmd: 'publish', topic, payload: String(seq), qos: 2, messageId: id, dup })
  const fill = (): void => {
    while (owed.size < WINDOW && next.seq < TOTAL) {
      next.id = next.id % 65535 + 1
      owed.set(next.id, { seq: next.seq, released: false })
      publish(next.id, next.seq++, false)
    }
  }
  let acks = 0
  await new Promise<void>((resolve) => {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    socket.on('data', (d: Buffer) => parser.parse(d))
    socket.on('close', () => resolve())
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') {
        if (p.reasonCode !== 0) { socket.destroy(); return }
        // What was sent before, again: PUBLISH (DUP) where no PUBREC came, PUBREL where one did.
        for (const [id, o] of owed) {
          if (o.released) send({ cmd: 'pubrel', messageId: id })
          else publish(id, o.seq, true)
        }
        fill()
        // Cut with everything just sent: the node is still storing and publishing it.
        if (cutAfter === 0) setImmediate(() => socket.destroy())
      } else if (p.cmd === 'pubrec' && p.messageId !== undefined) {
        const o = owed.get(p.messageId)
        if (o !== undefined) { o.released = true; send({ cmd: 'pubrel', messageId: p.messageId }) }
        if (++acks >= cutAfter) socket.destroy()
      } else if (p.cmd === 'pubcomp' && p.messageId !== undefined) {
        owed.delete(p.messageId)
        fill()
        if (owed.size === 0 && next.seq >= TOTAL) socket.end()
        if (++acks >= cutAfter) socket.destroy()
      }
    })
    send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: false, keepalive: 30, properties: { sessionExpiryInterval: 300 } })
  })
}

test('a QoS 2 publisher cut off mid-flow and back on another node, forty times: every message once', async () => {
  const topic = `${uniqueId('hops')}/m`
  const sub = await connect(nodes[0]!.mqttUrl, { protocolVersion: 5, clientId: uniqueId('hops-sub') })
  clients.push(sub)
  const got = new Map<string, number>()
  sub.on('message', (_t, payload) => { const k = payload.toString(); got.set(k, (got.get(k) ?? 0) + 1) })
  await sub.subscribeAsync(topic, { qos: 2 })

  const clientId = uniqueId('hops-pub')
  const owed = new Map<number, { seq: number, released: boolean }>()
  const next = { seq: 0, id: 0 }
  let hop = 0
  while (next.seq < TOTAL || owed.size > 0) {
    // Cut at once, or after a few acknowledgements (1 to 11); past the hop limit, let it finish.
    const cutAfter = hop < HOPS ? (hop * 7) % 12 : Infinity
    await connection(nodes[hop % nodes.length]!, clientId, topic, owed, next, cutAfter)
    hop++
    if (hop >= HOPS + 20) break
  }
  const twice = (): string[] => [...got].filter(([, n]) => n > 1).map(([k]) => k)
  assert.deepEqual(twice(), [], 'QoS 2 messages delivered more than once')
  assert.ok(owed.size === 0 && next.seq === TOTAL, `the publisher finished (sent ${next.seq}, owed ${owed.size}, after ${hop} connections)`)
  await waitFor(() => got.size >= TOTAL, { timeout: 20_000, message: `all ${TOTAL} messages (have ${got.size})` })
  assert.deepEqual(twice(), [], 'QoS 2 messages delivered more than once')
  assert.equal(got.size, TOTAL)
})
