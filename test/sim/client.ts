// A small MQTT client for the simulation, on mqtt-packet: deterministic (no
// timers of its own but the world's), MQTT 3.1.1 and 5, QoS 0/1/2 in both
// directions, a persistent session's state kept across connections (the
// QoS 2 packet identifiers it acknowledged with PUBREC and awaits PUBREL
// for; its unacknowledged publishes, resent on resume). Everything it sees
// goes into the chaos history, so the chaos checker judges simulated runs
// as it judges real ones.
import { createRequire } from 'node:module'
import type { History, ClientRole, Qos } from '../../src/chaos/history.js'
import type { SimSocket } from './network.js'

const require = createRequire(import.meta.url)
interface Parser { on (event: 'packet', cb: (p: Packet) => void): void, on (event: 'error', cb: (e: Error) => void): void, parse (b: Buffer): number }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts: { protocolVersion: number }) => Parser
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
}

interface Packet {
  cmd: string
  messageId?: number
  qos?: number
  topic?: string
  payload?: Buffer
  dup?: boolean
  retain?: boolean
  sessionPresent?: boolean
  returnCode?: number
  reasonCode?: number
  granted?: number[]
  properties?: Record<string, unknown>
}

export interface ClientOptions {
  id: string
  role: ClientRole
  protocol: 4 | 5
  /** false: a persistent session (MQTT 5: Session Expiry Interval `expiry`). */
  clean: boolean
  expiry?: number
  /** Most unacknowledged QoS 1/2 publishes at once. */
  window?: number
}

interface Outgoing { topic: string, seq: number, qos: Qos, messageId: number, released: boolean, conn: string }

export class SimClient {
  readonly opts: ClientOptions
  private readonly history: History
  socket: SimSocket | undefined
  node: string | undefined
  conn: string | undefined
  connected = false
  private connSeq = 0
  private parser: Parser | undefined
  private nextId = 1
  /** QoS 2 packet identifiers received (PUBREC sent), awaiting PUBREL: part of the session. */
  private readonly incoming = new Map<number, { topic: string, publisher: string, seq: number, pubConn: string }>()
  /** Our QoS 1/2 publishes not yet acknowledged (persistent sessions resend them). */
  private readonly outgoing = new Map<number, Outgoing>()
  private subscribeIds = new Map<number, string>()
  private onConnack: ((sessionPresent: boolean, ok: boolean) => void) | undefined
  /** Called when the connection ends (any reason). */
  onClose: ((reason: string) => void) | undefined
  subscribedTo: string | undefined
  /** Deliveries to the application, for the world's live checks. */
  delivered = 0

  constructor (opts: ClientOptions, history: History) {
    this.opts = opts
    this.history = history
  }

  get inflight (): number { return this.outgoing.size }
  get persistent (): boolean { return !this.opts.clean }

  /** Starts a connection over `socket` (already dialled to `node`); resolves with session present, or rejects. */
  connect (socket: SimSocket, node: string): Promise<boolean> {
    this.socket = socket
    this.node = node
    const conn = `${this.opts.id}#${++this.connSeq}`
    this.conn = conn
    const version = this.opts.protocol
    const parser = mqttPacket.parser({ protocolVersion: version })
    this.parser = parser
    parser.on('packet', (p) => { if (this.socket === socket) this.onPacket(p) })
    parser.on('error', () => { if (this.socket === socket) socket.destroy() })
    socket.on('data', (chunk: Buffer) => { if (this.socket === socket) parser.parse(chunk) })
    socket.on('error', () => {})
    socket.once('close', () => this.closed(socket, 'connection closed'))
    return new Promise((resolve, reject) => {
      this.onConnack = (sessionPresent, ok) => { if (ok) resolve(sessionPresent); else reject(new Error('connack refused')) }
      socket.once('close', () => reject(new Error('closed before connack')))
      const send = (): void => {
        const props = version === 5 && !this.opts.clean ? { properties: { sessionExpiryInterval: this.opts.expiry ?? 300 } } : {}
        this.write({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: this.opts.id, clean: this.opts.clean, keepalive: 0, ...props })
      }
      if (socket.connecting) socket.once('connect', send)
      else send()
    })
  }

  private write (packet: object): void {
    const s = this.socket
    if (s === undefined || s.destroyed || !s.writable) return
    s.write(mqttPacket.generate(packet, { protocolVersion: this.opts.protocol }))
  }

  /** Ends the connection without DISCONNECT (as a client whose network went away). */
  drop (): void {
    this.socket?.destroy()
  }

  /** A clean DISCONNECT. */
  disconnect (): void {
    if (this.socket === undefined) return
    this.write({ cmd: 'disconnect' })
    this.socket.end()
  }

  private closed (socket: SimSocket, reason: string): void {
    if (this.socket !== socket) return
    const wasConnected = this.connected
    this.connected = false
    this.socket = undefined
    if (wasConnected) this.history.record({ type: 'disconnect', client: this.opts.id, conn: this.conn!, node: this.node!, reason })
    // A clean session's unacknowledged publishes are lost with it (nothing owed); a persistent one resends them.
    if (this.opts.clean) {
      for (const o of this.outgoing.values()) this.history.record({ type: 'publish-failed', client: this.opts.id, conn: o.conn, node: this.node!, topic: o.topic, seq: o.seq, qos: o.qos, reason })
      this.outgoing.clear()
      this.incoming.clear()
    }
    this.onClose?.(reason)
  }

  subscribe (filter: string, qos: Qos): void {
    const id = this.allocId()
    this.subscribeIds.set(id, filter)
    this.write({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic: filter, qos }] })
  }

  /** Publishes `publisher:seq` to `topic`; false when the window is full or not connected. */
  publish (topic: string, seq: number, qos: Qos): boolean {
    if (!this.connected) return false
    if (qos > 0 && this.outgoing.size >= (this.opts.window ?? 10)) return false
    const node = this.node!
    const conn = this.conn!
    this.history.record({ type: 'publish', client: this.opts.id, conn, node, topic, seq, qos })
    const payload = Buffer.from(`${this.opts.id}:${seq}:${conn}`)
    if (qos === 0) {
      this.write({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false })
      this.history.record({ type: 'ack', client: this.opts.id, conn, node, topic, seq, qos })
      return true
    }
    const messageId = this.allocId()
    this.outgoing.set(messageId, { topic, seq, qos, messageId, released: false, conn })
    this.write({ cmd: 'publish', topic, payload, qos, messageId, retain: false, dup: false })
    return true
  }

  private allocId (): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextId
      this.nextId = this.nextId >= 65535 ? 1 : this.nextId + 1
      if (!this.outgoing.has(id) && !this.subscribeIds.has(id)) return id
    }
    throw new Error('no free packet identifier')
  }

  private onPacket (p: Packet): void {
    const id = this.opts.id
    switch (p.cmd) {
      case 'connack': {
        const ok = (p.returnCode ?? p.reasonCode ?? 0) === 0
        if (ok) {
          this.connected = true
          const present = p.sessionPresent === true
          this.history.record({ type: 'connect', client: id, conn: this.conn!, role: this.opts.role, node: this.node!, protocol: this.opts.protocol, clean: this.opts.clean, sessionPresent: present })
          if (!present) {
            // A new session: nothing of the old one is owed either way.
            this.incoming.clear()
          }
          // MQTT 4.4: unacknowledged publishes and PUBRELs are resent on a resumed session.
          for (const o of this.outgoing.values()) {
            o.conn = this.conn!
            if (o.released) this.write({ cmd: 'pubrel', messageId: o.messageId })
            else this.write({ cmd: 'publish', topic: o.topic, payload: Buffer.from(`${id}:${o.seq}:${o.conn}`), qos: o.qos, messageId: o.messageId, retain: false, dup: true })
          }
        }
        this.onConnack?.(p.sessionPresent === true, ok)
        this.onConnack = undefined
        return
      }
      case 'suback': {
        const filter = this.subscribeIds.get(p.messageId ?? 0)
        this.subscribeIds.delete(p.messageId ?? 0)
        if (filter !== undefined && (p.granted?.[0] ?? 128) < 128) {
          this.subscribedTo = filter
          this.history.record({ type: 'subscribed', client: id, conn: this.conn!, node: this.node!, filter })
        }
        return
      }
      case 'publish': {
        const qos = (p.qos ?? 0) as Qos
        const [publisher, seqText, pubConn] = (p.payload ?? Buffer.alloc(0)).toString().split(':')
        const seq = Number(seqText)
        const topic = p.topic ?? ''
        if (qos === 2) {
          const mid = p.messageId!
          if (!this.incoming.has(mid)) {
            this.incoming.set(mid, { topic, publisher: publisher!, seq, pubConn: pubConn ?? '' })
            this.history.record({ type: 'received', client: id, conn: this.conn!, node: this.node!, topic, publisher: publisher!, seq, packetId: mid })
          }
          this.write({ cmd: 'pubrec', messageId: mid })
          return
        }
        this.deliver(topic, publisher!, pubConn ?? '', seq, qos, p.dup === true)
        if (qos === 1) this.write({ cmd: 'puback', messageId: p.messageId })
        return
      }
      case 'pubrel': {
        const mid = p.messageId!
        const m = this.incoming.get(mid)
        if (m !== undefined) {
          this.incoming.delete(mid)
          this.deliver(m.topic, m.publisher, m.pubConn, m.seq, 2, false)
        }
        this.write({ cmd: 'pubcomp', messageId: mid })
        return
      }
      case 'puback':
      case 'pubcomp': {
        const o = this.outgoing.get(p.messageId ?? 0)
        if (o === undefined) return
        this.outgoing.delete(o.messageId)
        if ((p.reasonCode ?? 0) < 0x80) this.history.record({ type: 'ack', client: id, conn: this.conn!, node: this.node!, topic: o.topic, seq: o.seq, qos: o.qos })
        else this.history.record({ type: 'publish-failed', client: id, conn: this.conn!, node: this.node!, topic: o.topic, seq: o.seq, qos: o.qos, reason: `reason ${p.reasonCode}` })
        return
      }
      case 'pubrec': {
        const o = this.outgoing.get(p.messageId ?? 0)
        if (o === undefined) return
        if ((p.reasonCode ?? 0) >= 0x80) {
          this.outgoing.delete(o.messageId)
          this.history.record({ type: 'publish-failed', client: id, conn: this.conn!, node: this.node!, topic: o.topic, seq: o.seq, qos: o.qos, reason: `reason ${p.reasonCode}` })
          return
        }
        o.released = true
        this.write({ cmd: 'pubrel', messageId: o.messageId })
        return
      }
      case 'disconnect':
        this.history.record({ type: 'disconnect', client: id, conn: this.conn!, node: this.node!, reason: `DISCONNECT from broker, reason ${p.reasonCode ?? 0}` })
        this.connected = false
        this.socket?.destroy()
    }
  }

  private deliver (topic: string, publisher: string, pubConn: string, seq: number, qos: Qos, dup: boolean): void {
    this.delivered++
    this.history.record({ type: 'deliver', client: this.opts.id, conn: this.conn!, node: this.node!, topic, publisher, pubConn, seq, qos, dup })
  }
}
