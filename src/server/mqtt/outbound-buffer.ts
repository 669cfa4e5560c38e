// What a connection has buffered on its way out, and its bound
// (`mqtt.max_client_buffer_bytes`): the delivery layer's (delivery.ts) write
// path for live messages.
//
// Batching. aedes writes each QoS 0 delivery in its own setImmediate, so each
// one is its own writev (mqtt-packet corks a packet only until the next
// tick), and waits for 'drain' per message once the socket is past its
// high-water mark. Here the QoS 0 deliveries a connection gets in one turn of
// the event loop go out together at the end of it (one cork, one writev), and
// their emitter callbacks run after the write: with 100 publishers into one
// subscriber that took writev from 20% of the broker's time to ~1%.
//
// The bound. Bytes buffered for a client = its socket's writableLength + the
// batch not yet written + what the layer holds for it (the MQTT 5 Receive
// Maximum backlog, clean-session QoS 1/2 waiting for room). Past the bound:
//  - QoS 0 is dropped and counted (broker_mqtt_dropped_total{reason="client_buffer"});
//  - QoS 1/2 of a stored session stays in its session queue (session-sender.ts
//    sends no more than the room left);
//  - QoS 1/2 of a clean session waits here (the emitter moves on, nobody else
//    is slowed) until the socket drains below the bound. If it has not within
//    OVERFLOW_GRACE_MS, or the waiting messages alone pass the bound, the
//    client is disconnected: MQTT 5 DISCONNECT 0x97 (Quota exceeded), MQTT 3
//    a closed connection. Its clean session ends there, as with mosquitto's
//    and EMQX's queue limits the messages do not outlive it.
// One message is always accepted while the buffer is under the bound, so a
// packet larger than the bound still goes to a client that reads.
import type { Client } from 'aedes'
import { internals, writeToSocket, type ClientInternals, type DeliveredPacket } from './aedes-internals.js'

/** A clean session's QoS 1/2 may wait this long for its socket to drain below the bound before the client is disconnected. */
export const OVERFLOW_GRACE_MS = 5000

// Shared, never written: sendQoS replaces it with the connection's own array before the first push.
const NONE_WAITING: never[] = []

/** MQTT 5 reason code 0x97, Quota exceeded. */
const QUOTA_EXCEEDED = 0x97

export interface OutboundOptions {
  /** Bytes; 0 = no bound. */
  limit: number
  /** A QoS 0 message was dropped for the bound. */
  onDropped: (client: Client) => void
  /** The client was disconnected for the bound (clean session, QoS 1/2). */
  onOverflow: (client: Client) => void
}

/** Bytes a PUBLISH takes on the wire, near enough for a bound (properties estimated). */
export function publishBytes (packet: DeliveredPacket): number {
  return packet.topic.length + packet.payload.length + (packet.qos > 0 ? 9 : 7) + (packet.properties === undefined ? 0 : 32)
}

interface Batch {
  packets: DeliveredPacket[]
  callbacks: Array<() => void>
  bytes: number
}

export class OutboundBuffer {
  private readonly client: ClientInternals
  private current: Batch | undefined
  private batchBytes = 0
  /** Bytes of the Receive Maximum backlog (delivery.ts keeps it). */
  heldBytes = 0
  /** Clean-session QoS 1/2 waiting for room, oldest first (allocated the first time one waits: most connections never need it). */
  private waiting: Array<{ packet: DeliveredPacket, send: (p: DeliveredPacket) => void }> = NONE_WAITING
  private waitingBytes = 0
  private grace: NodeJS.Timeout | undefined
  private overflowed = false
  /** QoS 0 messages dropped for the bound on this connection. */
  dropped = 0

  constructor (client: Client, private readonly opts: OutboundOptions) {
    this.client = internals(client)
  }

  /** Bytes buffered for the client (see the top of the file). */
  buffered (): number {
    return this.client.conn.writableLength + this.batchBytes + this.heldBytes + this.waitingBytes
  }

  /** No room left: the bound is set and reached. */
  full (): boolean {
    return this.opts.limit > 0 && this.buffered() >= this.opts.limit
  }

  /** Room left under the bound (Infinity with no bound). */
  room (): number {
    return this.opts.limit > 0 ? Math.max(0, this.opts.limit - this.buffered()) : Infinity
  }

  /** A QoS 0 PUBLISH for this turn's write, or dropped when the buffer is full; `done` runs after the write either way. */
  send0 (packet: DeliveredPacket, done: () => void): void {
    const batch = this.batch()
    // Behind a waiting QoS 1/2 it could overtake the PUBLISH that set its topic alias: dropped too.
    if (this.full() || this.waiting.length > 0) {
      this.dropped++
      this.opts.onDropped(this.client)
    } else {
      const bytes = publishBytes(packet)
      batch.packets.push(packet)
      batch.bytes += bytes
      this.batchBytes += bytes
    }
    batch.callbacks.push(done)
  }

  /** A packet for this turn's write, whatever the bound (QoS 1/2 already admitted by sendQoS, acknowledgements). */
  push (packet: object & { topic?: string, payload?: Buffer }, done?: () => void): void {
    const batch = this.batch()
    const bytes = packet.payload === undefined ? 4 : publishBytes(packet as DeliveredPacket)
    batch.packets.push(packet as DeliveredPacket)
    batch.bytes += bytes
    this.batchBytes += bytes
    if (done !== undefined) batch.callbacks.push(done)
  }

  /** Calls `done` at the end of this turn, with the batch (never synchronously: the emitter would recurse through its backlog). */
  later (done: () => void): void {
    this.batch().callbacks.push(done)
  }

  /** Deliveries after this go in a new batch, written after whatever was scheduled meanwhile (a stored session's sender). */
  seal (): void {
    this.current = undefined
  }

  /**
   * A clean session's QoS 1/2 delivery: sent now (`send`) when there is room
   * and nothing waits before it, else waits for room in order.
   */
  sendQoS (packet: DeliveredPacket, send: (p: DeliveredPacket) => void): boolean {
    if (this.overflowed) return false
    // Over the bound only because of the Receive Maximum backlog: acknowledgements, not 'drain', make room there.
    if (this.waiting.length === 0 && (!this.full() || this.client.conn.writableLength === 0)) {
      send(packet)
      return true
    }
    if (this.waiting === NONE_WAITING) this.waiting = []
    this.waiting.push({ packet, send })
    this.waitingBytes += publishBytes(packet)
    if (this.waitingBytes > this.opts.limit) {
      this.overflow()
      return false
    }
    if (this.waiting.length === 1) {
      this.client.conn.once('drain', this.drained)
      this.grace ??= setTimeout(() => { this.grace = undefined; if (this.waiting.length > 0) this.overflow() }, OVERFLOW_GRACE_MS)
      this.grace.unref?.()
    }
    return true
  }

  private get drained (): () => void {
    this.onDrainBound ??= () => { this.onDrain() }
    return this.onDrainBound
  }

  private onDrainBound: (() => void) | undefined

  private onDrain (): void {
    while (this.waiting.length > 0 && !this.full() && !this.client.closed) {
      const w = this.waiting.shift()!
      this.waitingBytes -= publishBytes(w.packet)
      w.send(w.packet)
    }
    if (this.waiting.length > 0) {
      if (this.client.conn.writableLength > 0) this.client.conn.once('drain', this.drained)
      else setImmediate(this.drained)
    } else if (this.grace !== undefined) {
      clearTimeout(this.grace)
      this.grace = undefined
    }
  }

  private overflow (): void {
    if (this.overflowed) return
    this.overflowed = true
    if (this.waiting !== NONE_WAITING) this.waiting.length = 0
    this.waitingBytes = 0
    if (this.grace !== undefined) clearTimeout(this.grace)
    this.grace = undefined
    this.opts.onOverflow(this.client)
    if (this.client.version === 5 && this.client.connected && !this.client.closed) {
      this.client.disconnect({ reasonCode: QUOTA_EXCEEDED }, () => {})
      // A client that reads nothing never takes the DISCONNECT off the buffer.
      setTimeout(() => this.client.conn.destroy(), 1000).unref()
    } else {
      this.client.conn.destroy()
    }
  }

  private batch (): Batch {
    if (this.current !== undefined) return this.current
    const batch: Batch = { packets: [], callbacks: [], bytes: 0 }
    this.current = batch
    setImmediate(() => this.flush(batch))
    return batch
  }

  private flush (batch: Batch): void {
    if (this.current === batch) this.current = undefined
    this.batchBytes -= batch.bytes
    const c = this.client
    if (batch.packets.length > 0 && (c.connected || c.connecting) && !c.closed) {
      const conn = c.conn
      conn.cork()
      try {
        for (const p of batch.packets) writeToSocket(c, p)
      } catch (err) {
        // mqtt-packet refused to encode one: what aedes does for a write that fails.
        conn.destroy(new Error('packet received not valid', { cause: err }))
      } finally {
        conn.uncork()
      }
    }
    for (const done of batch.callbacks) done()
  }
}
