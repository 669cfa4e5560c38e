// The per-connection inbound pipeline in front of aedes: every packet a client
// sends passes here after mqtt-packet parsed it and before aedes handles it.
//
// Why it exists (each is an aedes 2.0.0-beta.1 gap, see the MqttServer docs):
//  - Ordering. aedes handles all packets parsed from one read concurrently.
//    A SUBSCRIBE whose handling waits on the persistence (a persistent
//    session) is overtaken by the PUBLISHes behind it, so a client that
//    subscribes and at once publishes QoS 0, 1 and 2 to that topic gets only
//    the QoS 1 and 2 ones back. Here CONNECT, SUBSCRIBE and UNSUBSCRIBE are
//    barriers: later packets wait until aedes has finished them. PUBLISH,
//    the hot path, passes straight through as before.
//  - Protocol errors aedes only drops silently: a second CONNECT, packets
//    before CONNECT, server-to-client packet types. Counted, and an MQTT 5
//    client is told why (DISCONNECT 0x82) where it is connected.
//  - Malformed bytes: counted and, for a connected MQTT 5 client, answered
//    with DISCONNECT 0x81 before aedes closes the socket; a half-received
//    packet at close (truncated, then silence or close) is counted too.
//  - Receive Maximum: aedes advertises max_inflight but does not enforce it.
//    QoS 2 publishes past it are held here, in order with what follows them,
//    and handed to aedes as PUBRELs free the window (receive-excess.ts);
//    past mqtt.max_inflight_excess of them: DISCONNECT 0x93, counted.
//    The client's own acknowledgements open its window (delivery.ts).
//  - Client id length: aedes checks it for MQTT 3.1 only.
//  - Keep alive: the limits of keep-alive.ts, applied to the CONNECT; once
//    connected, the time of each packet, which one sweep over all
//    connections checks (sweepKeepAlive) in place of aedes' timer per client.
//  - Shared subscriptions: `$share/g/f` becomes a marker topic aedes accepts
//    (shared-subscriptions.ts), and the CONNACK stops saying they are
//    unavailable; it says session present for a session without
//    subscriptions too (connack.ts).
//  - A QoS 1 PUBLISH is acknowledged after it was published, not before
//    (publish-acks.ts).
import type { Client } from 'aedes'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import {
  internals, inboundAliases, plainParserBuffer, parserSettingsOf, writePacket, takeKeepAlive, keepAliveTimedOut,
  type ClientInternals, type InboundPacket, type PacketParser
} from './aedes-internals.js'
import type { BadPacketReason, LimitName } from './metrics.js'
import { toMarker } from './shared-subscriptions.js'
import { fixConnack } from './connack.js'
import { outboundAck } from './delivery.js'
import { handleQos1Publish } from './publish-acks.js'
import { refuseConnect, CLIENT_ID_NOT_VALID, SERVER_UNAVAILABLE } from './refusal.js'
import { writeDisconnect } from './disconnect.js'
import { keepaliveRefused, serverKeepAlive, keepAliveExpired, type KeepAliveLimits } from './keep-alive.js'
import { ReceiveExcess, passesExcess } from './receive-excess.js'

// MQTT 5 reason codes used here (§2.4).
export const MALFORMED_PACKET = 0x81
export const PROTOCOL_ERROR = 0x82
export const RECEIVE_MAXIMUM_EXCEEDED = 0x93
export const PACKET_TOO_LARGE = 0x95

export interface InboundOptions {
  /** Most unreleased inbound QoS 2 publishes per connection (mqtt.max_inflight). */
  maxInflight: number
  /** Most packets held past that window before DISCONNECT 0x93 (mqtt.max_inflight_excess; receive-excess.ts). */
  maxInflightExcess: number
  maxClientIdLength: number
  /** mqtt.max_keepalive and mqtt.server_keep_alive (keep-alive.ts). */
  keepAlive: KeepAliveLimits
  /** A CONNECT refused by configuration (not bad input). */
  onRefused: (client: Client, detail: string) => void
  onBad: (client: Client, reason: BadPacketReason, detail: string) => void
  onLimit: (client: Client, limit: LimitName) => void
  /** A session is stored for this client id (the CONNACK's session present, connack.ts). */
  hasSession?: (clientId: string) => boolean
  /**
   * A SUBSCRIBE to be refused whole for mqtt.max_subscriptions_per_client
   * (subscription-quota.ts): answered here with this SUBACK code per filter.
   */
  overQuota?: (client: Client, filters: readonly string[]) => number | undefined
}

/**
 * Per-connection state kept next to aedes' client: the pipeline between its
 * parser and aedes. One object with methods; the listeners it puts on the
 * parser and the client are shared by every connection (they find the
 * connection from `this`: aedes sets `parser.client`). A heap snapshot of
 * idle connections showed the closures this used to make per connection
 * (nine, their context, an options object each) at about 0.8 KiB of each.
 */
export class ConnectionGuard {
  private badCounted = false
  private readonly client: Client
  private readonly c: ClientInternals
  private readonly options: InboundOptions
  private readonly parser: PacketParser
  /** aedes' own 'packet' listener: hands a packet to aedes. */
  private readonly enqueue: (this: PacketParser, packet: InboundPacket) => void
  /** aedes' own _nextBatch: the next chunk is read once a packet is handled. */
  private readonly nextBatch: (err?: Error | null) => void
  /** Packets that came while a barrier was up (made the first time one waits). */
  private held: InboundPacket[] = NONE_HELD
  private barrier = false
  private paused = false
  private sawConnect = false
  /** QoS 2 publishes received and not yet released by PUBREL, by packet id. */
  private unreleased: Map<number, InboundPacket> | undefined
  /** Packets held past the Receive Maximum, made the first time one is (receive-excess.ts). */
  private excess: ReceiveExcess | undefined
  /** Dropped for a protocol violation: what is still parsed is ignored. */
  private dropped = false
  /** afterBarrier bound to this guard, made the first time a SUBSCRIBE waits for it. */
  private afterBarrierFn: ((err?: Error | null) => void) | undefined
  /** When the last packet arrived (ms, nowMs()). */
  private lastPacket = 0
  /** The keep alive interval (ms) the sweep holds the connection to, from aedes once connected; 0: none. */
  private keepAliveMs = 0

  constructor (client: Client, options: InboundOptions) {
    this.client = client
    this.c = internals(client)
    this.options = options
    this.parser = this.c._parser
    const [enqueue] = this.parser.listeners('packet') as Array<(this: PacketParser, packet: InboundPacket) => void>
    if (enqueue === undefined) throw new Error('aedes client has no packet listener: aedes internals changed')
    this.enqueue = enqueue
    this.nextBatch = this.c._nextBatch
  }

  /** Counts the connection as dropped for bad input, once. */
  bad (reason: BadPacketReason, detail: string): void {
    if (this.badCounted) return
    this.badCounted = true
    this.options.onBad(this.client, reason, detail)
  }

  get counted (): boolean {
    return this.badCounted
  }

  private clearHeld (): void {
    if (this.held.length > 0) this.held.length = 0
  }

  private flush (): void {
    while (!this.barrier && this.held.length > 0) {
      if (this.client.closed) {
        this.held.length = 0
        break
      }
      this.dispatch(this.held.shift()!)
    }
    if (this.held.length === 0 && this.paused) {
      this.paused = false
      if (!this.client.closed) this.c.resume()
    }
  }

  // Stands in for aedes' nextBatch for a barrier packet: releases what
  // queued up behind it, then lets aedes read on.
  private afterBarrier (err?: Error | null): void {
    if (err) {
      this.clearHeld()
      this.nextBatch(err)
      return
    }
    this.barrier = false
    this.flush()
    this.nextBatch(null)
  }

  private dispatch (packet: InboundPacket): void {
    const { c, client, options, parser } = this
    switch (packet.cmd) {
      case 'connect':
        // Nothing else goes to aedes until the CONNECT is handled.
        this.barrier = true
        fixConnack(c.conn, {
          protocolVersion: packet.protocolVersion ?? 4,
          resume: packet.clean === false,
          hasSession: () => options.hasSession?.(packet.clientId ?? '') === true
        })
        client.once('connected', () => {
          // From now on the sweep checks the keep alive, from this moment
          // (aedes' timer started earlier: the client never gets less time).
          this.keepAliveMs = takeKeepAlive(client)
          this.lastPacket = nowMs()
          this.barrier = false
          this.flush()
        })
        this.enqueue.call(parser, packet)
        return
      case 'subscribe':
      case 'unsubscribe': {
        const refused = packet.cmd === 'subscribe' ? options.overQuota?.(client, (packet.subscriptions ?? []).map((s) => s.topic)) : undefined
        if (refused !== undefined) {
          // Answered here, as aedes would: counted in its batch, released once written.
          c._parsingBatch++
          writePacket(client, { cmd: 'suback', messageId: packet.messageId, granted: (packet.subscriptions ?? []).map(() => refused) }, () => this.nextBatch(null))
          return
        }
        // Packets after it wait until aedes has handled it (subscriptions, then retained messages).
        this.barrier = true
        // aedes passes `client._nextBatch` as this packet's done callback,
        // reading the property at the call.
        c._nextBatch = this.afterBarrierFn ??= (err) => this.afterBarrier(err)
        try {
          this.enqueue.call(parser, packet)
        } finally {
          c._nextBatch = this.nextBatch
        }
        return
      }
      case 'publish':
        if (packet.qos === 1) {
          // PUBACK after the publish, not before (publish-acks.ts). aedes'
          // parser listener counts each packet it hands on; so do we.
          c._parsingBatch++
          handleQos1Publish(client, packet, this.nextBatch)
          return
        }
        this.enqueue.call(parser, packet)
        return
      default:
        this.enqueue.call(parser, packet)
    }
  }

  private protocolError (detail: string): void {
    this.bad('protocol_error', detail)
    this.drop(PROTOCOL_ERROR)
  }

  /** Ends the connection once for a protocol violation; packets parsed after it are ignored. */
  private drop (reasonCode: number): void {
    if (this.dropped) return
    this.dropped = true
    this.clearHeld()
    this.excess?.clear()
    dropClient(this.client, reasonCode)
  }

  /** A packet from the parser, before aedes sees it. */
  packet (packet: InboundPacket): void {
    const { c, options } = this
    this.lastPacket = nowMs()
    if (this.dropped) return
    switch (packet.cmd) {
      case 'publish':
        if (this.excess !== undefined && this.excess.size > 0) return this.holdExcess(packet)
        if (packet.qos === 2 && packet.messageId !== undefined && !this.admitQos2(packet)) return this.holdExcess(packet)
        break
      case 'pubrel':
        if (packet.messageId !== undefined && this.unreleased?.delete(packet.messageId) === true) this.releaseExcess()
        break
      case 'puback':
      case 'pubcomp':
        outboundAck(this.client)
        break
      case 'pingreq':
        // A window whose publishes were all refused (no PUBREL follows) is
        // found free here at the latest.
        this.releaseExcess()
        break
      case 'pubrec':
        // A failing PUBREC ends the QoS 2 flow (MQTT 5 §4.3.3); a good one
        // keeps the slot until PUBCOMP.
        if (typeof packet.reasonCode === 'number' && packet.reasonCode >= 0x80) outboundAck(this.client)
        break
      case 'connect':
        if (this.sawConnect) return this.protocolError('second CONNECT') // [MQTT-3.1.0-2]
        this.sawConnect = true
        parserSettingsOf(this.parser, packet)
        if (typeof packet.clientId === 'string' && packet.clientId.length > options.maxClientIdLength) {
          this.bad('protocol_error', 'client id too long')
          refuseConnect(c.conn, packet.protocolVersion ?? 4, CLIENT_ID_NOT_VALID)
          return
        }
        if (keepaliveRefused(packet, options.keepAlive.maxKeepalive)) {
          // aedes refuses these with return code 6, which MQTT 3.1.1 does not
          // define (clients report "unknown error"); 3.1.1 has no Server Keep
          // Alive to impose the limit instead, so refuse with a defined code.
          options.onRefused(this.client, `keep alive ${String(packet.keepalive)} s over max_keepalive ${options.keepAlive.maxKeepalive} s`)
          refuseConnect(c.conn, packet.protocolVersion ?? 4, SERVER_UNAVAILABLE)
          return
        }
        // aedes puts it in the CONNACK and runs the keep alive timer on it.
        c._serverKeepAlive = serverKeepAlive(packet, options.keepAlive)
        break
      case 'subscribe':
      case 'unsubscribe':
        rewriteShares(packet)
        break
      case 'connack':
      case 'suback':
      case 'unsuback':
      case 'pingresp':
      case 'auth':
        // Server-to-client types, and AUTH which needs an authentication
        // method we never accept.
        return this.protocolError(`unexpected ${packet.cmd}`)
    }
    if (!this.sawConnect) return this.protocolError(`${packet.cmd} before CONNECT`) // [MQTT-3.1.0-1]
    if (this.excess !== undefined && this.excess.size > 0 && !passesExcess(packet)) return this.holdExcess(packet)
    this.admit(packet)
  }

  /** Counts a QoS 2 PUBLISH in the Receive Maximum window; false when the window is full. */
  private admitQos2 (packet: InboundPacket): boolean {
    const unreleased = this.unreleased ??= new Map()
    const id = packet.messageId!
    // A resend of an unreleased id takes no further slot.
    if (unreleased.has(id) || unreleased.size < this.options.maxInflight) {
      unreleased.set(id, packet)
      return true
    }
    pruneRefused(unreleased)
    if (unreleased.size >= this.options.maxInflight) return false
    unreleased.set(id, packet)
    return true
  }

  /** A packet behind the full window waits, in order; past the bound the client is dropped (0x93). */
  private holdExcess (packet: InboundPacket): void {
    if (this.dropped) return
    const excess = this.excess ??= new ReceiveExcess(this.options.maxInflightExcess)
    if (excess.size === 0) this.options.onLimit(this.client, 'inflight')
    if (!excess.hold(packet)) {
      this.bad('protocol_error', 'receive maximum exceeded')
      this.drop(RECEIVE_MAXIMUM_EXCEEDED)
    }
  }

  /** A PUBREL opened the window: what was held goes on, in order, as far as it fits. */
  private releaseExcess (): void {
    const excess = this.excess
    if (excess === undefined || excess.size === 0) return
    for (;;) {
      const next = excess.peek()
      if (next === undefined || this.client.closed || this.dropped) break
      if (next.cmd === 'publish' && next.qos === 2 && next.messageId !== undefined && !this.admitQos2(next)) break
      excess.shift()
      this.admit(next)
    }
    if (this.client.closed) excess.clear()
  }

  /** Hands a packet on to aedes, or holds it behind a barrier. */
  private admit (packet: InboundPacket): void {
    const { c } = this
    if (this.barrier || this.held.length > 0) {
      // Stop reading until the barrier lifts: what is held is bounded by
      // one read.
      if (this.held === NONE_HELD) this.held = []
      this.held.push(packet)
      if (!this.paused) {
        this.paused = true
        c.pause()
      }
      return
    }
    this.dispatch(packet)
  }

  /** The parser found a malformed packet. Ahead of aedes' own listener, which destroys the socket (gracefully once a DISCONNECT is written). */
  parserError (err: Error): void {
    this.bad('malformed', err.message)
    this.clearHeld()
    const client = this.client
    if (client.version === 5 && client.connected && !client.closed) writeDisconnect(client, MALFORMED_PACKET)
  }

  /**
   * A client error, before aedes' own listener closes the connection. aedes
   * tells an MQTT 5 client why it refuses an oversize packet (0x95) only once
   * `connected` is set, after the session's replay that follows the CONNACK;
   * a client that sends one right after its CONNACK was just cut off. It has
   * its CONNACK, so it is told too.
   */
  clientError (err: Error): void {
    const client = this.client
    if (err.message === 'packet too large' && client.version === 5 && this.c.connackSent && !client.connected && !client.closed) {
      writeDisconnect(client, PACKET_TOO_LARGE)
    }
  }

  /** Closes the connection as aedes' keep alive timer would, once its interval passed without a packet. */
  keepAliveCheck (now: number): void {
    if (!keepAliveExpired(this.lastPacket, this.keepAliveMs, now) || this.client.closed) return
    this.keepAliveMs = 0
    keepAliveTimedOut(this.client)
  }

  /** The socket closed: a packet cut off halfway is bad input. */
  closed (): void {
    const parser = this.parser
    if (!this.badCounted && (parser._stateCounter !== 0 || parser._list.length > 0)) {
      this.bad('truncated', `${parser._list.length} bytes of an unfinished packet`)
    }
  }
}

/** A monotonic clock in whole ms (a small integer for the first 12 days: no number box per connection). */
function nowMs (): number {
  return Math.floor(performance.now())
}

/**
 * One pass of the keep alive sweep (keep-alive.ts): every connection whose
 * interval passed without a packet is closed, as aedes' timer did it (the
 * 'keepaliveTimeout' event, then the client's error).
 */
export function sweepKeepAlive (sockets: Iterable<Socket>, now = nowMs()): void {
  for (const socket of sockets) {
    const client = (socket as Socket & { client?: Client }).client
    if (client !== undefined) guards.get(client)?.keepAliveCheck(now)
  }
}

/** The held queue of every connection that never had to hold a packet. */
const NONE_HELD: InboundPacket[] = []

const guards = new WeakMap<Client, ConnectionGuard>()

export function guardOf (client: Client): ConnectionGuard | undefined {
  return guards.get(client)
}

/** Ends a connection for a protocol violation, with a reason code on MQTT 5 (ended gracefully: disconnect.ts). */
function dropClient (client: Client, reasonCode: number): void {
  const c = internals(client)
  if (client.version === 5 && client.connected && !client.closed) client.disconnect({ reasonCode })
  else c.conn.destroy()
}

/**
 * A QoS 2 publish the broker refused (aedes marks it `_notAuthorized` and
 * answers PUBREC 0x87) ends its flow there: no PUBREL follows (MQTT 5 §4.3.3),
 * so its packet id is free again and must not count as in flight.
 */
function pruneRefused (unreleased: Map<number, InboundPacket>): void {
  for (const [id, packet] of unreleased) {
    if (packet._notAuthorized === true) unreleased.delete(id)
  }
}

function rewriteShares (packet: InboundPacket): void {
  if (packet.subscriptions !== undefined) {
    for (const sub of packet.subscriptions) {
      if (sub.topic.charCodeAt(0) === 36) sub.topic = toMarker(sub.topic) ?? sub.topic
    }
  }
  if (packet.unsubscriptions !== undefined) {
    packet.unsubscriptions = packet.unsubscriptions.map((t) => t.charCodeAt(0) === 36 ? (toMarker(t) ?? t) : t)
  }
}

// The listeners every connection shares: each finds its guard from `this`.
function onPacket (this: PacketParser & { client: Client }, packet: InboundPacket): void {
  guards.get(this.client)?.packet(packet)
}

function onParserError (this: PacketParser & { client: Client }, err: Error): void {
  guards.get(this.client)?.parserError(err)
}

function onClientError (this: Client, err: Error): void {
  guards.get(this)?.clientError(err)
}

/** Puts the pipeline between the client's parser and aedes. Call right after aedes.handle(); options are shared by every connection. */
export function guardInbound (client: Client, options: InboundOptions): ConnectionGuard {
  const guard = new ConnectionGuard(client, options)
  guards.set(client, guard)
  const c = internals(client)
  c._topicAliases = inboundAliases()
  const parser = c._parser
  plainParserBuffer(parser)
  parser.removeAllListeners('packet')
  parser.on('packet', onPacket)
  parser.prependListener('error', onParserError)
  client.prependListener('error', onClientError)
  return guard
}

/** The connection's socket closed (the 'inbound' layer's close step, hooks.ts). */
export function inboundClosed (client: Client): void {
  guards.get(client)?.closed()
}

