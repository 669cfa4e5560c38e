// The MQTT workloads: real mqtt.js clients (MQTT 3.1.1 and 5 mixed) that
// connect like a client behind a Kubernetes Service would, each to its home
// node first and to the next node whenever its connection dies. Everything
// they see is recorded in the history; they decide nothing.
//
// - publishers send numbered messages at QoS 0, 1 and 2 (one topic per QoS),
//   one at a time, and record the acknowledgement or its absence;
// - subscribers (one clean, one persistent session per home node) take
//   chaos/d/# at QoS 2 and record every delivery;
// - retainers set and clear retained topics of their own;
// - takeover clients reconnect with the same client id at intervals, so the
//   broker has to close the older connection.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ClientRole, History, Qos } from './history.js'
import { randomInt, type Random } from '../random.js'

export const DATA_FILTER = 'chaos/d/#'
export const RETAINED_FILTER = 'chaos/r/#'

export interface WorkloadNode { name: string, mqttUrl: string }

export interface WorkloadContext {
  history: History
  nodes: readonly WorkloadNode[]
  /** Takeovers cross nodes (with the data plane) or stay on one (without). */
  crossNode: boolean
  random: Random
  /** Publish pacing per publisher (ms between messages). */
  publishIntervalMs?: number
}

/** Time a publish may wait for its acknowledgement before the client gives up on the node. */
const ACK_TIMEOUT_MS = 3000
/** MQTT keep alive (s): a paused node is noticed after about two of these. */
const KEEPALIVE_S = 2
const CONNECT_TIMEOUT_MS = 2000

interface Live { client: MqttClient, conn: string, node: WorkloadNode }

/** One logical client: connects to its home node, moves to the next one when the connection ends. */
abstract class RotatingClient {
  readonly id: string
  protected readonly ctx: WorkloadContext
  protected live: Live | undefined
  protected running = false
  private nodeIndex: number
  private connSeq = 0
  private loopDone: Promise<void> = Promise.resolve()
  private readonly role: ClientRole
  private readonly protocol: 4 | 5
  private readonly clean: boolean
  /** Shared across connections (clean: false keeps it through end()): a QoS 2 message released after a reconnect is still delivered once. */
  private readonly incomingStore = new mqtt.Store({ clean: false })

  constructor (ctx: WorkloadContext, id: string, role: ClientRole, home: number, protocol: 4 | 5, clean: boolean) {
    this.ctx = ctx
    this.id = id
    this.role = role
    this.nodeIndex = home % ctx.nodes.length
    this.protocol = protocol
    this.clean = clean
  }

  start (): void {
    this.running = true
    this.loopDone = this.loop()
  }

  async stop (): Promise<void> {
    this.running = false
    const live = this.live
    if (live !== undefined) {
      this.ctx.history.record({ type: 'disconnect', client: this.id, conn: live.conn, node: live.node.name, reason: 'run-end' })
      this.live = undefined
      // A graceful DISCONNECT, but a paused node must not hold the run up.
      await Promise.race([new Promise<void>((resolve) => live.client.end(false, {}, () => resolve())), sleep(1000)])
      live.client.end(true)
    }
    await this.loopDone
  }

  get connectedTo (): string | undefined { return this.live?.node.name }

  protected abstract onConnected (live: Live): void

  private async loop (): Promise<void> {
    while (this.running) {
      await this.session(this.ctx.nodes[this.nodeIndex]!)
      if (!this.running) break
      this.nodeIndex = (this.nodeIndex + 1) % this.ctx.nodes.length
      await sleep(100)
    }
  }

  /** One connection, from CONNECT to close; resolves when it is over. */
  private session (node: WorkloadNode): Promise<void> {
    return new Promise((resolve) => {
      const conn = `${this.id}#${++this.connSeq}`
      const options: IClientOptions = {
        clientId: this.id,
        protocolVersion: this.protocol,
        clean: this.clean,
        reconnectPeriod: 0,
        keepalive: KEEPALIVE_S,
        connectTimeout: CONNECT_TIMEOUT_MS,
        resubscribe: false,
        incomingStore: this.incomingStore
      }
      if (this.protocol === 5 && !this.clean) options.properties = { sessionExpiryInterval: 300 }
      const client = mqtt.connect(node.mqttUrl, options)
      let connected = false
      let reason = 'connection closed'
      let settled = false
      client.on('error', (err) => { reason = err.message })
      client.on('disconnect', (packet) => { reason = `DISCONNECT from broker, reason ${packet.reasonCode ?? 0}` })
      client.on('connect', (connack) => {
        if (!this.running) { client.end(true); return }
        connected = true
        this.live = { client, conn, node }
        this.ctx.history.record({ type: 'connect', client: this.id, conn, role: this.role, node: node.name, protocol: this.protocol, clean: this.clean, sessionPresent: connack.sessionPresent })
        this.onConnected(this.live)
      })
      client.on('close', () => {
        if (settled) return
        settled = true
        if (this.live?.conn === conn) {
          this.live = undefined
          if (connected) this.ctx.history.record({ type: 'disconnect', client: this.id, conn, node: node.name, reason })
        }
        client.end(true)
        resolve()
      })
    })
  }

  /** Publishes and waits for the acknowledgement (QoS 0: the write); false on error or timeout. */
  protected async publish (live: Live, topic: string, payload: string, qos: Qos, retain: boolean): Promise<true | string> {
    return await new Promise((resolve) => {
      let done = false
      const finish = (result: true | string): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        live.client.off('close', onClose)
        resolve(result)
      }
      const onClose = (): void => finish('connection closed before the acknowledgement')
      const timer = setTimeout(() => {
        finish(`no acknowledgement within ${ACK_TIMEOUT_MS} ms`)
        // The node is not answering: give up on it, as a client library with a publish timeout would.
        live.client.end(true)
      }, ACK_TIMEOUT_MS)
      live.client.once('close', onClose)
      live.client.publish(topic, payload, { qos, retain }, (err) => finish(err === undefined || err === null ? true : err.message))
    })
  }
}

export class Publisher extends RotatingClient {
  private readonly seq = [0, 0, 0]
  private turn = 0

  constructor (ctx: WorkloadContext, index: number) {
    super(ctx, `pub-${index + 1}`, 'publisher', index, index % 2 === 0 ? 5 : 4, true)
  }

  protected onConnected (live: Live): void {
    void this.publishLoop(live)
  }

  private async publishLoop (live: Live): Promise<void> {
    const interval = this.ctx.publishIntervalMs ?? 50
    while (this.running && this.live?.conn === live.conn) {
      const qos = (this.turn++ % 3) as Qos
      const seq = ++this.seq[qos]!
      const topic = `chaos/d/${this.id}/q${qos}`
      const base = { client: this.id, conn: live.conn, node: live.node.name, topic, seq, qos }
      this.ctx.history.record({ type: 'publish', ...base })
      const result = await this.publish(live, topic, JSON.stringify({ p: this.id, c: live.conn, s: seq }), qos, false)
      if (result === true) this.ctx.history.record({ type: 'ack', ...base })
      else { this.ctx.history.record({ type: 'publish-failed', ...base, reason: result }); break }
      await sleep(interval)
    }
  }
}

export class Subscriber extends RotatingClient {
  constructor (ctx: WorkloadContext, home: number, persistent: boolean) {
    const protocol = (home + (persistent ? 1 : 0)) % 2 === 0 ? 5 : 4
    super(ctx, `sub-${home + 1}-${persistent ? 'persistent' : 'clean'}`, 'subscriber', home, protocol, !persistent)
  }

  protected onConnected (live: Live): void {
    const node = live.node.name
    live.client.on('message', (topic, payload, packet) => {
      let body: { p?: unknown, c?: unknown, s?: unknown }
      try { body = JSON.parse(payload.toString()) as typeof body } catch { return }
      if (typeof body.p !== 'string' || typeof body.s !== 'number') return
      this.ctx.history.record({
        type: 'deliver', client: this.id, conn: live.conn, node, topic,
        publisher: body.p, pubConn: String(body.c), seq: body.s, qos: (packet.qos ?? 0) as Qos, dup: packet.dup === true
      })
    })
    // QoS 2 arrivals are recorded too: mqtt.js hands a QoS 2 message on only at the broker's PUBREL.
    live.client.on('packetreceive', (packet) => {
      if (packet.cmd !== 'publish' || packet.qos !== 2) return
      let body: { p?: unknown, s?: unknown }
      try { body = JSON.parse(packet.payload.toString()) as typeof body } catch { return }
      if (typeof body.p !== 'string' || typeof body.s !== 'number') return
      this.ctx.history.record({ type: 'received', client: this.id, conn: live.conn, node, topic: packet.topic, publisher: body.p, seq: body.s, packetId: packet.messageId ?? 0 })
    })
    live.client.subscribe(DATA_FILTER, { qos: 2 }, (err) => {
      if (err === null || err === undefined) this.ctx.history.record({ type: 'subscribed', client: this.id, conn: live.conn, node, filter: DATA_FILTER })
    })
  }
}

export class Retainer extends RotatingClient {
  private seq = 0
  constructor (ctx: WorkloadContext, index: number) {
    super(ctx, `ret-${index + 1}`, 'retainer', index, index % 2 === 0 ? 4 : 5, true)
  }

  protected onConnected (live: Live): void {
    void this.writeLoop(live)
  }

  private async writeLoop (live: Live): Promise<void> {
    while (this.running && this.live?.conn === live.conn) {
      const topic = `chaos/r/${this.id}/${randomInt(this.ctx.random, 0, 3)}`
      // About one op in three clears, so the run has cleared topics to watch for resurrection.
      const value = this.ctx.random() < 0.35 ? null : `${this.id}-${++this.seq}`
      const result = await this.publish(live, topic, value ?? '', 1, true)
      const base = { client: this.id, conn: live.conn, node: live.node.name, topic }
      if (result === true) this.ctx.history.record({ type: 'retained', ...base, value })
      else { this.ctx.history.record({ type: 'publish-failed', ...base, seq: this.seq, qos: 1, reason: result, retained: value }); break }
      await sleep(300)
    }
  }
}

/**
 * Opens a new connection with the same client id every `periodMs`: on the
 * same node in the node scope, on the next node otherwise. The broker must
 * close the older connection.
 */
export class TakeoverClient {
  readonly id: string
  private readonly ctx: WorkloadContext
  private readonly periodMs: number
  private readonly protocol: 4 | 5
  private nodeIndex: number
  private running = false
  private seq = 0
  private loopDone: Promise<void> = Promise.resolve()
  private readonly open = new Map<string, { client: MqttClient, node: string }>()
  private wake: (() => void) | undefined

  constructor (ctx: WorkloadContext, index: number, periodMs = 2000) {
    this.ctx = ctx
    this.id = `tk-${index + 1}`
    this.nodeIndex = index % ctx.nodes.length
    this.protocol = index % 2 === 0 ? 5 : 4
    this.periodMs = periodMs
  }

  start (): void {
    this.running = true
    this.loopDone = this.loop()
  }

  async stop (): Promise<void> {
    this.running = false
    this.wake?.()
    await this.loopDone
    for (const [conn, { client, node }] of this.open) {
      this.ctx.history.record({ type: 'disconnect', client: this.id, conn, node, reason: 'run-end' })
      client.end(true)
    }
    this.open.clear()
  }

  private async loop (): Promise<void> {
    while (this.running) {
      const ok = await this.connect(this.ctx.nodes[this.nodeIndex]!)
      if (!ok || this.ctx.crossNode) this.nodeIndex = (this.nodeIndex + 1) % this.ctx.nodes.length
      if (!this.running) break
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ok ? this.periodMs : 200)
        this.wake = () => { clearTimeout(timer); resolve() }
      })
    }
  }

  private connect (node: WorkloadNode): Promise<boolean> {
    return new Promise((resolve) => {
      const conn = `${this.id}#${++this.seq}`
      const client = mqtt.connect(node.mqttUrl, {
        clientId: this.id, protocolVersion: this.protocol, clean: true, reconnectPeriod: 0, keepalive: KEEPALIVE_S, connectTimeout: CONNECT_TIMEOUT_MS
      })
      let reason = 'connection closed'
      client.on('error', (err) => { reason = err.message })
      client.on('disconnect', (packet) => { reason = `DISCONNECT from broker, reason ${packet.reasonCode ?? 0}` })
      client.on('connect', (connack) => {
        if (!this.running) { client.end(true); resolve(false); return }
        this.open.set(conn, { client, node: node.name })
        this.ctx.history.record({ type: 'connect', client: this.id, conn, role: 'takeover', node: node.name, protocol: this.protocol, clean: true, sessionPresent: connack.sessionPresent })
        resolve(true)
      })
      client.on('close', () => {
        if (this.open.delete(conn)) this.ctx.history.record({ type: 'disconnect', client: this.id, conn, node: node.name, reason })
        client.end(true)
        resolve(false)
      })
    })
  }
}

/** The clients of a run: per node one publisher, a clean and a persistent subscriber, a retainer and a takeover client. */
export class Workloads {
  readonly publishers: Publisher[] = []
  readonly subscribers: Subscriber[] = []
  readonly retainers: Retainer[] = []
  readonly takeovers: TakeoverClient[] = []

  constructor (ctx: WorkloadContext) {
    for (let i = 0; i < ctx.nodes.length; i++) {
      this.subscribers.push(new Subscriber(ctx, i, false), new Subscriber(ctx, i, true))
      this.publishers.push(new Publisher(ctx, i))
      this.retainers.push(new Retainer(ctx, i))
      this.takeovers.push(new TakeoverClient(ctx, i))
    }
  }

  /** Subscribers first, so the first messages already have somewhere to go. */
  startSubscribers (): void { for (const s of this.subscribers) s.start() }
  startWriters (): void { for (const c of [...this.publishers, ...this.retainers, ...this.takeovers]) c.start() }

  async stopWriters (): Promise<void> {
    await Promise.all([...this.publishers, ...this.retainers, ...this.takeovers].map((c) => c.stop()))
  }

  async stopSubscribers (): Promise<void> {
    await Promise.all(this.subscribers.map((c) => c.stop()))
  }
}
