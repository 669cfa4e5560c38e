// Delivery to a client whose session is stored (persistent, or resumed): the
// session's queue is the one source of what the client gets, in what order.
//
// aedes delivers live messages straight to the connection and replays the
// queue only at CONNECT; with sessions that move between nodes, get late
// copies of messages (a move, a rescue) and have windows (MQTT 5 Receive
// Maximum), those two paths raced: out-of-order deliveries, duplicates, and
// sessions that stopped receiving until their next reconnect. Here a live
// delivery of a queued message only wakes the sender (hooks.ts), and the
// sender sends the queue in order:
//   - on a new connection first what was in flight (same packet identifier,
//     DUP; PUBRELs again), then waiting messages (MQTT 5 section 4.4);
//   - at most the client's Receive Maximum in flight (section 4.9);
//   - with the subscription's QoS (min of published and granted), Retain As
//     Published, every matching Subscription Identifier (section 3.3.4) and
//     the remaining Message Expiry Interval (section 3.3.2.3.3); expired ones
//     are dropped;
//   - a packet identifier is recorded (and, for QoS 2, held by a second node
//     when the cluster asks) before the PUBLISH leaves, so a session that
//     survives this node resends it under the same identifier.
//
// Invariant: while the client is connected and its window has room, no
// waiting message stays unsent. stalled() checks it; the MQTT server sweeps
// every second and says so loudly if it ever fails.
import type { Client } from 'aedes'
import { internals, type ClientInternals, type DeliveredPacket } from './aedes-internals.js'
import type { SessionStore, StoredPacket } from './persistence.js'
import { stampOf } from './message-stamp.js'
import { grantedQos, matchedOptions } from './delivery.js'

/** MQTT 5 section 3.3.4: hop-local properties, set here per delivery. */
const HOP_LOCAL = ['topicAlias', 'subscriptionIdentifier', 'messageExpiryInterval']

export interface SenderOptions {
  store: SessionStore
  /** aedes' authorizeForward chain (ACL read, the client's Maximum Packet Size): null drops the message. */
  authorizeForward: (client: Client, packet: DeliveredPacket) => DeliveredPacket | null | undefined
  /** Writes a packet; returns false when the socket asks to wait for 'drain'. */
  write: (client: Client, packet: object) => boolean
  onExpired?: (clientId: string) => void
  /** A PUBLISH was written (broker_messages_sent). */
  onSent?: () => void
  /** Bytes the client's buffer may still take (mqtt.max_client_buffer_bytes): beyond it messages wait in the queue. */
  room?: (client: Client) => number
}

interface Item {
  entry: StoredPacket
  packet: DeliveredPacket | { cmd: 'pubrel', messageId: number, reasonCode: 0 }
  ready: Promise<unknown> | undefined
}

export class SessionSender {
  readonly client: ClientInternals
  private readonly opts: SenderOptions
  private started = false
  private stopped = false
  private pumping = false
  private again = false
  private waitingDrain = false
  /** The last select() left messages queued for the buffer bound: the next 'drain' sends them. */
  private roomWait = false
  /** Packet identifiers written on this connection (their entries are in flight here). */
  private readonly sentHere = new Set<number>()
  /** Deliveries written (QoS 1/2 and downgraded QoS 0), for tests and metrics. */
  sent = 0
  /** This connection's session is stored (persistent, or resumed): the queue is what it gets. */
  get managing (): boolean {
    return this.client.clean === false || this.opts.store.hasSession(this.client.id)
  }

  constructor (client: Client, options: SenderOptions) {
    this.client = internals(client)
    this.opts = options
  }

  get id (): string { return this.client.id }

  /**
   * The client is connected (CONNACK written): what is queued goes, once
   * `gate` resolved (a session that just moved waits, bounded, for what it
   * is still owed from its old node, so that goes first in its order).
   */
  start (gate?: Promise<void>): void {
    if (this.started || this.stopped) return
    const go = (): void => {
      this.started = true
      this.kick()
    }
    if (gate === undefined) go()
    else gate.then(go, go)
  }

  stop (): void {
    this.stopped = true
  }

  /** Something changed (a message queued or acknowledged, the socket drained): send what may go. */
  kick (): void {
    if (!this.started || this.stopped) return
    if (this.pumping) {
      this.again = true
      return
    }
    void this.pump()
  }

  /** Entries of the queue waiting to be sent. */
  waiting (): number {
    let n = 0
    for (const e of this.opts.store.queue(this.id)) if (e.messageId === undefined && e.cmd !== 'pubrel') n++
    return n
  }

  /** The invariant at the top of the file does not hold right now (and no send is under way to restore it). */
  stalled (): boolean {
    if (!this.started || this.stopped || this.pumping || this.waitingDrain || this.client.closed) return false
    const queue = this.opts.store.queue(this.id)
    let inflight = 0
    let waiting = false
    for (const e of queue) {
      if (e.messageId !== undefined) {
        inflight++
        if (!this.sentHere.has(e.messageId)) return true
      } else if (e.cmd !== 'pubrel') {
        waiting = true
      }
    }
    return waiting && inflight < this.window
  }

  private get window (): number {
    const max = this.client.version === 5 ? this.client.receiveMaximum : 65535
    return max > 0 ? max : 65535
  }

  private async pump (): Promise<void> {
    this.pumping = true
    try {
      // aedes writes a QoS 0 delivery on the next turn (setImmediate in its
      // deliver0); waiting as long keeps a stored session's QoS 0 and QoS 1/2
      // messages in publish order.
      await new Promise((resolve) => setImmediate(resolve))
      do {
        this.again = false
        if (this.waitingDrain || this.stopped || this.client.closed) return
        this.roomWait = false
        const items = this.select()
        for (const item of items) {
          if (item.ready !== undefined) {
            try {
              await item.ready
            } catch {
              // Not queued any more (acknowledged, dropped, the session moved on): nothing to send.
              continue
            }
          }
          if (this.stopped || this.client.closed) return
          this.write(item)
        }
      } while (this.again && !this.stopped && !this.waitingDrain)
      if (this.roomWait && !this.waitingDrain && !this.stopped) this.waitForRoom()
    } finally {
      this.pumping = false
    }
  }

  /** What may go now, in queue order, with packet identifiers assigned. */
  private select (): Item[] {
    const store = this.opts.store
    const queue = store.queue(this.id)
    const inUse = new Set<number>()
    for (const e of queue) if (e.messageId !== undefined) inUse.add(e.messageId)
    for (const id of this.sentHere) if (!inUse.has(id)) this.sentHere.delete(id)
    let inflight = inUse.size
    // The buffer bound: new messages stay queued once it is used up (at least one goes while there is room).
    let room = this.opts.room?.(this.client) ?? Infinity
    const items: Item[] = []
    const now = Date.now()
    for (const entry of [...queue]) {
      const id = entry.messageId
      if (id !== undefined) {
        if (this.sentHere.has(id)) continue
        // In flight before this connection: sent again under its identifier.
        this.sentHere.add(id)
        // Reason code 0 written in the 2-byte form [MQTT-3.6.2-1], as aedes does:
        // Paho Python's v5 client cannot read a longer PUBREL (0x00 and no properties).
        items.push(entry.cmd === 'pubrel'
          ? { entry, packet: { cmd: 'pubrel', messageId: id, reasonCode: 0 }, ready: undefined }
          : { entry, packet: this.packetFor(entry, id, true, now), ready: undefined })
        continue
      }
      if (entry.cmd === 'pubrel') continue
      if (inflight >= this.window) break
      if (room <= 0) { this.roomWait = true; break }
      room -= entry.topic.length + (entry.payload?.length ?? 0) + 9
      const stamp = stampOf(entry)
      if (entry.messageExpiry !== undefined && entry.messageExpiry <= now) {
        // Expired while queued: never sent. [MQTT-3.3.2-5]
        void store.outgoingClearMessageId({ id: this.id }, entry)
        this.opts.onExpired?.(this.id)
        continue
      }
      const qos = Math.min(entry.qos ?? 0, grantedQos(this.client.subscriptions, entry.topic))
      if (qos === 0 || stamp === undefined) {
        // Granted QoS 0 now (the subscription changed): sent once, no identifier.
        void store.outgoingClearMessageId({ id: this.id }, entry)
        items.push({ entry, packet: { ...this.packetFor(entry, undefined, false, now), qos: 0 }, ready: undefined })
        continue
      }
      const mid = this.allocate(inUse)
      inUse.add(mid)
      this.sentHere.add(mid)
      inflight++
      // The QoS it goes out with is the entry's from now on: a resend must use the same. [MQTT-4.3]
      entry.qos = qos
      const packet = this.packetFor(entry, mid, false, now)
      items.push({ entry, packet, ready: store.assign(this.id, stamp, mid) })
    }
    return items
  }

  /**
   * A packet identifier from the connection's own counter, the one aedes
   * draws from for what it sends itself (retained messages on SUBSCRIBE):
   * two counters would hand out the same identifier twice at once, and the
   * client would take two messages for one.
   */
  private allocate (inUse: ReadonlySet<number>): number {
    const c = this.client
    for (let i = 0; i < 65535; i++) {
      const id = c._nextId
      c._nextId = id >= 65535 ? 1 : id + 1
      if (!inUse.has(id)) return id
    }
    throw new Error('no free packet identifier')
  }

  private packetFor (entry: StoredPacket, messageId: number | undefined, dup: boolean, now: number): DeliveredPacket {
    const { rap, ids } = matchedOptions(this.client.subscriptions, entry.topic)
    let properties: Record<string, unknown> | undefined
    if (this.client.version === 5) {
      properties = {}
      for (const [k, v] of Object.entries(entry.properties ?? {})) if (!HOP_LOCAL.includes(k)) properties[k] = v
      if (entry.messageExpiry !== undefined) properties.messageExpiryInterval = Math.max(1, Math.ceil((entry.messageExpiry - now) / 1000))
      if (ids.length > 0) properties.subscriptionIdentifier = ids.length === 1 ? ids[0] : ids
      if (Object.keys(properties).length === 0) properties = undefined
    }
    return {
      cmd: 'publish',
      topic: entry.topic,
      payload: entry.payload,
      qos: entry.qos ?? 0,
      retain: rap && entry.retain === true,
      dup,
      ...(messageId === undefined ? {} : { messageId }),
      ...(entry.brokerId === undefined ? {} : { brokerId: entry.brokerId, brokerCounter: entry.brokerCounter }),
      ...(properties === undefined ? {} : { properties })
    }
  }

  /** Sends again once the client's socket drained (or soon, when the bound is used by something that does not drain). */
  private waitForRoom (): void {
    this.waitingDrain = true
    const again = (): void => {
      this.waitingDrain = false
      this.kick()
    }
    if (this.client.conn.writableLength > 0) this.client.conn.once('drain', again)
    else setTimeout(again, 50).unref()
  }

  private write (item: Item): void {
    const { packet } = item
    if (packet.cmd === 'publish') {
      const p = packet as DeliveredPacket
      const allowed = this.opts.authorizeForward(this.client, p)
      if (allowed === null || allowed === undefined) {
        // Not for this client after all (the ACL, its Maximum Packet Size): as if sent. [MQTT-3.1.2-25]
        if (p.qos > 0) void this.opts.store.outgoingClearMessageId({ id: this.id }, { messageId: p.messageId })
        return
      }
      this.sent++
      this.opts.onSent?.()
    }
    const { brokerId: _b, brokerCounter: _c, ...wire } = packet as DeliveredPacket
    if (!this.opts.write(this.client, wire)) {
      this.waitingDrain = true
      this.client.conn.once('drain', () => {
        this.waitingDrain = false
        this.kick()
      })
    }
  }
}
