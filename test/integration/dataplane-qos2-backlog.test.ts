// Exactly once, and no livelock, for a QoS 2 publisher that behaves as
// Eclipse Paho's Python client 1.6.1 (Debian's python3-paho-mqtt) does when
// its node is killed with a backlog: after every reconnect it sends its whole
// backlog at once (PUBREL where a PUBREC came, PUBLISH with DUP where one was
// sent, PUBLISH for what was only queued), ignoring its own in-flight limit
// (its _messages_reconnect_reset_out), more than our Receive Maximum
// (mqtt.max_inflight). It reconnects to the next node each time, as behind a
// Kubernetes Service. A raw client keeps that behaviour in our hands; the
// same with Paho itself is scripts/failover.py.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createConnection, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import type { MqttClient } from 'mqtt'
import type { ProcessNode } from '../helpers/node.js'
import { startProcessCluster, FAST } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'

const require = createRequire(import.meta.url)
interface Packet { cmd: string, messageId?: number, reasonCode?: number }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts: object) => { on: (e: string, f: (p: Packet) => void) => void, parse: (b: Buffer) => void }
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
}

const nodes: ProcessNode[] = []
const clients: MqttClient[] = []
after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {})
  await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
})

/** Paho's default max_inflight_messages is 20; scripts/failover.py sets 20 too. */
const PAHO_INFLIGHT = 20
/** More than mqtt.max_inflight (100): what a publisher queues in 3 s at 100 msg/s. */
const BACKLOG = 300

type State = 'queued' | 'wait_pubrec' | 'wait_pubcomp'
interface Outgoing { seq: number, state: State, dup: boolean }

/** Paho 1.6.1's outgoing QoS 2 state machine, over one connection at a time. */
class PahoLikePublisher {
  readonly out = new Map<number, Outgoing>() // by packet id, in publish order (Paho's OrderedDict)
  private inflight = 0
  private nextId = 0
  private socket: Socket | undefined
  connections = 0
  refusals = 0 // DISCONNECT 0x93 received

  constructor (readonly clientId: string, readonly topic: string) {}

  private send (p: object): void {
    if (this.socket !== undefined && !this.socket.destroyed) this.socket.write(mqttPacket.generate(p, { protocolVersion: 5 }))
  }

  private sendPublish (id: number, m: Outgoing): void {
    this.send({ cmd: 'publish', topic: this.topic, payload: String(m.seq), qos: 2, messageId: id, dup: m.dup })
  }

  /** client.publish(): sent if the in-flight window has room, else queued. */
  publish (seq: number): void {
    this.nextId = this.nextId % 65535 + 1
    const m: Outgoing = { seq, state: 'queued', dup: false }
    this.out.set(this.nextId, m)
    if (this.socket !== undefined && this.inflight < PAHO_INFLIGHT) {
      this.inflight++
      m.state = 'wait_pubrec'
      this.sendPublish(this.nextId, m)
    }
  }

  /** Connects to `node` and runs the connection until it closes (or `onConnected` says to cut it). */
  async connection (node: ProcessNode, onConnected: () => void = () => {}): Promise<void> {
    const url = new URL(node.mqttUrl)
    const socket = createConnection({ host: url.hostname, port: Number(url.port) })
    socket.on('error', () => {})
    this.connections++
    await new Promise<void>((resolve) => {
      const parser = mqttPacket.parser({ protocolVersion: 5 })
      socket.on('data', (d: Buffer) => parser.parse(d))
      socket.on('close', () => { if (this.socket === socket) this.socket = undefined; resolve() })
      parser.on('packet', (p) => {
        if (p.cmd === 'connack') {
          if (p.reasonCode !== 0) { socket.destroy(); return }
          this.socket = socket
          this.resendAll()
          onConnected()
        } else if (p.cmd === 'pubrec' && p.messageId !== undefined) {
          const m = this.out.get(p.messageId)
          if (m !== undefined) { m.state = 'wait_pubcomp'; this.send({ cmd: 'pubrel', messageId: p.messageId }) }
        } else if (p.cmd === 'pubcomp' && p.messageId !== undefined) {
          if (this.out.delete(p.messageId)) this.inflight--
          this.sendQueued()
          if (this.out.size === 0) socket.end()
        } else if (p.cmd === 'disconnect') {
          if (p.reasonCode === 0x93) this.refusals++
        }
      })
      // A connection that hangs is given up, as Paho's keep alive would.
      const stuck = setTimeout(() => socket.destroy(), 10_000)
      socket.on('close', () => clearTimeout(stuck))
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: this.clientId, clean: false, keepalive: 30, properties: { sessionExpiryInterval: 300 } }, { protocolVersion: 5 }))
    })
  }

  // _messages_reconnect_reset_out then _handle_connack: the in-flight count
  // restarts at 0 and is not counted while resetting, so every message is
  // made ready and sent at once.
  private resendAll (): void {
    this.inflight = 0
    for (const m of this.out.values()) {
      if (m.state === 'wait_pubrec') m.dup = true
    }
    for (const [id, m] of this.out) {
      if (m.state === 'wait_pubcomp') {
        this.send({ cmd: 'pubrel', messageId: id })
      } else {
        this.inflight++
        m.state = 'wait_pubrec'
        this.sendPublish(id, m)
      }
    }
  }

  // After a PUBCOMP: what was queued goes while the window has room.
  private sendQueued (): void {
    for (const [id, m] of this.out) {
      if (this.inflight >= PAHO_INFLIGHT) return
      if (m.state !== 'queued') continue
      this.inflight++
      m.state = 'wait_pubrec'
      this.sendPublish(id, m)
    }
  }
}

test('a Paho-like QoS 2 publisher whose node is killed with a backlog over Receive Maximum resends it all at once on the next nodes: every message once, and it gets out', async () => {
  nodes.push(...await startProcessCluster(4, { cluster: { config: FAST } } as never))
  const [a, ...survivors] = nodes as [ProcessNode, ProcessNode, ProcessNode, ProcessNode]
  const topic = `${uniqueId('backlog')}/m`

  // A persistent QoS 2 subscriber on a node that stays up.
  const sub = await connect(survivors[2]!.mqttUrl, { protocolVersion: 5, clientId: uniqueId('backlog-sub'), clean: false, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 0 })
  clients.push(sub)
  const got = new Map<string, number>()
  sub.on('message', (_t, payload) => { const k = payload.toString(); got.set(k, (got.get(k) ?? 0) + 1) })
  await sub.subscribeAsync(topic, { qos: 2 })

  const pub = new PahoLikePublisher(uniqueId('backlog-pub'), topic)
  // On A: the backlog is published (20 in flight, the rest queued), and A is
  // killed while it is being acknowledged.
  const onA = pub.connection(a, () => {
    for (let seq = 0; seq < BACKLOG; seq++) pub.publish(seq)
    void a.stop('SIGKILL')
  })
  await onA
  // Then the survivors in turn, each new connection on the next one.
  let hop = 0
  const deadline = Date.now() + 40_000
  while (pub.out.size > 0 && Date.now() < deadline && hop < 200) {
    await pub.connection(survivors[hop % survivors.length]!)
    hop++
  }
  const twice = (): string[] => [...got].filter(([, n]) => n > 1).map(([k]) => k)
  assert.equal(pub.out.size, 0, `the publisher got out: ${pub.out.size} of ${BACKLOG} still owed after ${pub.connections} connections, ${pub.refusals} DISCONNECT 0x93`)
  // The excess over Receive Maximum is held and handed on, not refused: A, then one more node.
  assert.equal(pub.refusals, 0, 'no DISCONNECT 0x93')
  assert.ok(pub.connections <= 4, `out within a few connections after the kill (took ${pub.connections})`)
  await waitFor(() => got.size >= BACKLOG, { timeout: 20_000, message: `all ${BACKLOG} messages (have ${got.size})` })
  assert.deepEqual(twice(), [], 'QoS 2 messages delivered more than once')
  assert.equal(got.size, BACKLOG)
})

/** A raw MQTT 5 connection of a persistent publisher: what it reads, and a way to write. */
async function rawSession (node: ProcessNode, clientId: string): Promise<{ socket: Socket, packets: Packet[], send: (p: object) => void, connack: Packet }> {
  const url = new URL(node.mqttUrl)
  const socket = createConnection({ host: url.hostname, port: Number(url.port) })
  socket.on('error', () => {})
  const packets: Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p) => packets.push(p))
  socket.on('data', (d: Buffer) => parser.parse(d))
  const send = (p: object): void => { if (!socket.destroyed) socket.write(mqttPacket.generate(p, { protocolVersion: 5 })) }
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: false, keepalive: 30, properties: { sessionExpiryInterval: 300 } })
  const connack = await waitFor(() => packets.find((p) => p.cmd === 'connack') ?? (socket.destroyed ? { cmd: 'closed' } : undefined), { timeout: 10_000, message: 'CONNACK' })
  return { socket, packets, send, connack }
}

test('QoS 2 messages whose PUBREL was taken, sent again as PUBLISHes by a client that lost its PUBCOMPs (Paho 1.6 after a failed reconnect attempt), on another node after its node was killed: each delivered once', async () => {
  const cluster = await startProcessCluster(3, { cluster: { config: FAST } } as never)
  nodes.push(...cluster)
  const [a, b, c] = cluster as [ProcessNode, ProcessNode, ProcessNode]
  const topic = `${uniqueId('released')}/m`
  const sub = await connect(c.mqttUrl, { protocolVersion: 5, clientId: uniqueId('released-sub'), clean: false, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 0 })
  clients.push(sub)
  const got = new Map<string, number>()
  sub.on('message', (_t, payload) => { const k = payload.toString(); got.set(k, (got.get(k) ?? 0) + 1) })
  await sub.subscribeAsync(topic, { qos: 2 })

  const clientId = uniqueId('released-pub')
  const RELEASED = 20
  // On A: twenty messages through to PUBCOMP, a twenty-first to PUBREC only.
  const onA = await rawSession(a, clientId)
  assert.equal(onA.connack.reasonCode, 0)
  for (let id = 1; id <= RELEASED; id++) onA.send({ cmd: 'publish', topic, payload: `m${id}`, qos: 2, messageId: id })
  await waitFor(() => onA.packets.filter((p) => p.cmd === 'pubrec').length === RELEASED, { message: 'the PUBRECs on A' })
  for (let id = 1; id <= RELEASED; id++) onA.send({ cmd: 'pubrel', messageId: id })
  await waitFor(() => onA.packets.filter((p) => p.cmd === 'pubcomp').length === RELEASED, { message: 'the PUBCOMPs on A' })
  // Its PUBREC waits for the replica holder, which so has the releases before it (one ordered link).
  onA.send({ cmd: 'publish', topic, payload: `m${RELEASED + 1}`, qos: 2, messageId: RELEASED + 1 })
  await waitFor(() => onA.packets.some((p) => p.cmd === 'pubrec' && p.messageId === RELEASED + 1), { message: 'the last PUBREC on A' })
  await waitFor(() => got.size === RELEASED + 1, { message: 'every message delivered once from A' })
  await a.stop('SIGKILL')

  // On B, as Paho 1.6.1 after a reconnect attempt that failed: every one as a PUBLISH again.
  let onB = await rawSession(b, clientId)
  for (let attempt = 0; onB.connack.reasonCode !== 0 && attempt < 5; attempt++) {
    onB.socket.destroy()
    onB = await rawSession(b, clientId)
  }
  assert.equal(onB.connack.reasonCode, 0, 'CONNACK on B')
  const session = onB
  for (let id = 1; id <= RELEASED + 1; id++) session.send({ cmd: 'publish', topic, payload: `m${id}`, qos: 2, messageId: id, dup: id > RELEASED })
  await waitFor(() => session.packets.filter((p) => p.cmd === 'pubrec').length === RELEASED + 1, { message: 'the PUBRECs on B' })
  for (let id = 1; id <= RELEASED + 1; id++) session.send({ cmd: 'pubrel', messageId: id })
  await waitFor(() => session.packets.filter((p) => p.cmd === 'pubcomp').length === RELEASED + 1, { message: 'the PUBCOMPs on B' })
  // One more after them: in publisher order, a second copy of any would come before it.
  session.send({ cmd: 'publish', topic, payload: 'end', qos: 2, messageId: RELEASED + 2 })
  await waitFor(() => session.packets.some((p) => p.cmd === 'pubrec' && p.messageId === RELEASED + 2), { message: 'the PUBREC of the last' })
  session.send({ cmd: 'pubrel', messageId: RELEASED + 2 })
  await waitFor(() => got.has('end'), { message: 'the last message delivered' })
  session.socket.destroy()
  const twice = [...got].filter(([, n]) => n > 1).map(([k]) => k)
  assert.deepEqual(twice, [], 'QoS 2 messages delivered more than once')
  assert.equal(got.size, RELEASED + 2)
})
