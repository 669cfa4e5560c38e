// The per-connection delivery layer (hooks.ts: connection 'delivery'): what
// happens between aedes' emitter handing a message to a client's
// subscription and the PUBLISH on the wire.
//
// - A message queued for the client's stored session (its stamp is in the
//   session's ledger) is the session sender's: the live delivery only wakes
//   it (session-sender.ts sends the queue in order, within the window).
// - Everything else (a clean session, QoS 0, retained messages on SUBSCRIBE,
//   shared-subscription copies) goes out here, with four fixes to aedes
//   2.0.0-beta.1:
//   1. De-duplication by stamp. A message matching two subscriptions of a
//      client reaches it once. aedes remembers the highest counter per
//      broker id and drops anything lower, which loses messages that arrive
//      late by another path; ours remembers the recent stamps themselves.
//   2. The subscription's QoS. A QoS 2 message through a wildcard
//      subscription granted QoS 1 went out at QoS 2 (aedes downgrades only
//      when the topic equals the filter). [MQTT-3.8.4-8] min(published,
//      granted); with overlapping subscriptions the highest grant wins.
//   3. The client's Receive Maximum (MQTT 5). aedes ignores it and sends any
//      number of unacknowledged QoS 1/2 PUBLISHes. [MQTT-3.3.4-9] Beyond the
//      window, deliveries wait in order until an acknowledgement (inbound.ts
//      reports those through outboundAck).
//   4. Subscription Identifiers. aedes gives a message the identifier of the
//      subscription its copy came through; with overlapping subscriptions
//      (`t` id 2, `t/#` id 3) it must carry all of them. [MQTT-3.3.4-3]
//   And the client's Maximum Packet Size (packetSizeLayer): a PUBLISH larger
//   than it is dropped as if sent. [MQTT-3.1.2-25] Deliveries aedes writes in
//   order may use server topic aliases (topic-aliases.ts).
import type { Aedes, Client } from 'aedes'
import { internals, encodePacket, forgetfulDuplicates, type ClientInternals, type DeliveredPacket, type AedesSubscription, type DeliverFunc } from './aedes-internals.js'
import type { SessionStore, StoredPacket } from './persistence.js'
import type { SessionSender } from './session-sender.js'
import { stampOf } from './message-stamp.js'
import { topicMatches } from '../../topic-filter.js'
import { isMarker, isSharedCopy } from './shared-subscriptions.js'
import { markAliasable } from './topic-aliases.js'
import { AedesPacket } from './outgoing-queues.js'
import { OutboundBuffer, publishBytes, type OutboundOptions } from './outbound-buffer.js'

/** Stamps remembered per client for de-duplication: deliveries of one message through several subscriptions come together. */
const RECENT_STAMPS = 256

/**
 * Highest QoS granted to the client by a subscription matching the topic, or
 * 2 when none does (a shared-subscription delivery, already lowered).
 */
export function grantedQos (subscriptions: Record<string, { qos: number }>, topic: string): number {
  let best = -1
  for (const filter in subscriptions) {
    if (isMarker(filter)) continue
    const qos = subscriptions[filter]!.qos
    if (qos > best && topicMatches(filter, topic)) {
      best = qos
      if (best === 2) break
    }
  }
  return best < 0 ? 2 : best
}

/** What the client's subscriptions matching a topic ask of a delivery: Retain As Published, and their Subscription Identifiers. */
export interface MatchedOptions {
  rap: boolean
  /** Every distinct identifier, in subscription order (MQTT 5 section 3.3.4). */
  ids: number[]
}

/** The options of the subscriptions matching `topic`; shared-subscription markers excluded. */
export function matchedOptions (subscriptions: Record<string, AedesSubscription>, topic: string): MatchedOptions {
  let rap = false
  const ids: number[] = []
  for (const filter in subscriptions) {
    if (isMarker(filter) || !topicMatches(filter, topic)) continue
    const sub = subscriptions[filter]!
    if (sub.rap === true) rap = true
    if (sub.si !== undefined && !ids.includes(sub.si)) ids.push(sub.si)
  }
  return { rap, ids }
}

/**
 * A copy that goes out (the first of a message's copies, one per matching
 * subscription) carries the identifiers of all the client's subscriptions
 * that match, not only of the one it came through. [MQTT-3.3.4-3]
 */
function withAllIdentifiers (subscriptions: Record<string, AedesSubscription>, packet: DeliveredPacket): void {
  const { ids } = matchedOptions(subscriptions, packet.topic)
  // aedes made this copy for this client, but its properties object may be shared: replaced, not changed.
  const { subscriptionIdentifier: _one, ...properties } = packet.properties ?? {}
  if (ids.length > 0) properties.subscriptionIdentifier = ids.length === 1 ? ids[0] : ids
  packet.properties = properties
}

/** The next packet identifier of the connection's counter, as aedes' QoSPacket takes it (the session sender shares it). */
function nextMessageId (c: ClientInternals): number {
  const id = c._nextId
  c._nextId = id >= 65535 ? 1 : id + 1
  return id
}

/** Outbound flow control state of one MQTT 5 client with a Receive Maximum below 65535. */
class OutboundFlow {
  inflight = 0
  readonly held: DeliveredPacket[] = []
  constructor (readonly limit: number) {}
}

const QOS0 = { qos: 0 }

/**
 * One connection's delivery state, one object with methods: a heap snapshot
 * of idle connections showed the closures this layer made per connection
 * (ten, with their contexts and an options object) at about 1 KiB of each.
 * The de-duplication set, the outbound buffer and the session sender are
 * made on first use: an idle connection has none.
 */
class Delivery {
  readonly client: ClientInternals
  readonly options: DeliveryOptions
  /** aedes' own deliverQoS of this client (its closure, called unbound). */
  private readonly aedesDeliverQoS: DeliverFunc
  private recent: Set<string> | undefined
  private flowChecked = false
  private flowState: OutboundFlow | undefined
  private buffer: OutboundBuffer | undefined
  /** The client made a subscription with a Subscription Identifier on this connection (restored ones included). */
  usesIdentifiers = false

  constructor (client: Client, options: DeliveryOptions) {
    this.client = internals(client)
    this.options = options
    this.aedesDeliverQoS = this.client.deliverQoS as unknown as DeliverFunc
  }

  get outbound (): OutboundBuffer {
    this.buffer ??= new OutboundBuffer(this.client, this.options.buffer)
    return this.buffer
  }

  /** Receive Maximum flow control, for an MQTT 5 client that asked for a window below 65535 (read once it is connected). */
  get flow (): OutboundFlow | undefined {
    if (!this.flowChecked && this.client.connected) {
      this.flowChecked = true
      if (this.client.version === 5 && this.client.receiveMaximum < 65535) this.flowState = new OutboundFlow(this.client.receiveMaximum)
    }
    return this.flowState
  }

  /** aedes' QoS 1/2 delivery of a clean session (or a retained message), within the buffer bound. */
  deliverQoS (packet: DeliveredPacket, cb: () => void): void {
    const client = this.client
    const outbound = this.outbound
    if (!client.clean) {
      // A retained message to a stored session: aedes records it in the session (outgoingUpdate) and writes it on the next turn.
      outbound.seal()
      return this.aedesDeliverQoS(packet, cb)
    }
    // aedes' deliverQoS for a clean session (lib/client.js), into this turn's batch.
    if (packet.nl === true && packet.clientId === client.id) return outbound.later(cb)
    const broker = client.broker
    const toForward = broker.authorizeForward(client, packet as never) as DeliveredPacket | null | undefined
    if (toForward === null || toForward === undefined) return outbound.later(cb)
    const out = new AedesPacket(toForward as never, broker) as unknown as DeliveredPacket
    // The subscription's QoS when the topic is the filter itself (aedes' downgrade; wildcards below, in deliverWithFixes).
    const sub = client.subscriptions[packet.topic]
    if (sub !== undefined && sub.qos < out.qos) out.qos = sub.qos
    if (out.qos > 0) out.messageId = nextMessageId(client)
    if (!outbound.sendQoS(out, pushTo(outbound))) this.options.counts.dropped++
    outbound.later(cb)
  }

  send (packet: DeliveredPacket): void {
    this.deliverQoS(packet, noop)
  }

  /** The sender writes what it sends a turn later: QoS 0 deliveries after this wait for it, in publish order. */
  private kick (): void {
    this.outbound.seal()
    this.options.sender(this.client).kick()
  }

  /**
   * True when this copy is to be dropped: a copy of it went out already, or
   * the session's queue has it. A QoS 1/2 message for a stored session that
   * its queue lacks (it was queued before the session arrived here) joins
   * the queue now: the queue is the one source of what a stored session gets.
   */
  handledElsewhere (packet: DeliveredPacket): boolean {
    const stamp = stampOf(packet)
    if (stamp === undefined) return false
    const { store } = this.options
    const id = this.client.id
    if (store.seen(id, stamp)) {
      this.kick()
      return true
    }
    if (packet.qos > 0 && this.options.sender(this.client).managing) {
      store.enqueueFor(id, packet as StoredPacket)
      this.kick()
      return true
    }
    const recent = this.recent ??= new Set()
    if (recent.has(stamp)) return true
    recent.add(stamp)
    if (recent.size > RECENT_STAMPS) recent.delete(recent.values().next().value!)
    return false
  }

  /**
   * The copy that goes out carries every matching identifier. Only for a
   * live message: a retained one sent on SUBSCRIBE (unstamped) is that
   * subscription's alone, and a shared-subscription copy carries its group's.
   */
  identified (packet: DeliveredPacket): void {
    if (this.usesIdentifiers && this.client.version === 5 && stampOf(packet) !== undefined && !isSharedCopy(packet)) {
      withAllIdentifiers(this.client.subscriptions, packet)
    }
  }

  counted (): void {
    if (this.client.closed) this.options.counts.dropped++
    else this.options.counts.sent++
  }

  /** aedes' deliver0 (lib/client.js) with its per-message setImmediate and 'drain' wait replaced by the batch (outbound-buffer.ts). */
  deliver0 (packet: DeliveredPacket, cb: () => void): void {
    const client = this.client
    if (this.handledElsewhere(packet)) return this.outbound.later(cb)
    // MQTT 5 No Local [MQTT-3.8.3-3].
    if (packet.nl === true && packet.clientId === client.id) return this.outbound.later(cb)
    this.identified(packet)
    markAliasable(client, packet)
    const toForward = client.broker.authorizeForward(client, packet as never) as DeliveredPacket | null | undefined
    if (toForward === null || toForward === undefined) return this.outbound.later(cb)
    this.counted()
    // A copy: the emitter hands every subscriber the same packet.
    const out = new AedesPacket(toForward as never, client.broker) as unknown as DeliveredPacket
    Object.assign(out, QOS0)
    this.outbound.send0(out, cb)
  }

  deliverWithFixes (packet: DeliveredPacket, cb: () => void): void {
    const client = this.client
    if (packet.qos === 0) return client.deliver0(packet, cb)
    if (this.handledElsewhere(packet)) return this.outbound.later(cb)
    this.identified(packet)
    if (packet.qos === 2 && client.subscriptions[packet.topic] === undefined && grantedQos(client.subscriptions, packet.topic) === 1) {
      // aedes hands each subscription its own packet copy, so this is ours.
      packet.qos = 1
    }
    this.counted()
    // aedes writes these in the order it gets them (topic-aliases.ts); a stored session's go by its sender.
    if (client.clean || packet.retain) markAliasable(client, packet)
    const flow = this.flow
    if (flow === undefined) return this.deliverQoS(packet, cb)
    if (flow.inflight < flow.limit && flow.held.length === 0) {
      flow.inflight++
      return this.deliverQoS(packet, cb)
    }
    const outbound = this.outbound
    if (this.options.maxHeld > 0 && flow.held.length >= this.options.maxHeld) {
      outbound.heldBytes -= publishBytes(flow.held.shift()!)
      this.options.onHeldDropped(client)
    }
    // Held, not blocked: aedes' delivery pipeline (shared by all clients) moves on.
    flow.held.push(packet)
    outbound.heldBytes += publishBytes(packet)
    outbound.later(cb)
  }
}

function noop (): void {}

const pushers = new WeakMap<OutboundBuffer, (p: DeliveredPacket) => void>()

/** The `send` sendQoS calls once there is room: one per buffer, made the first time one is needed. */
function pushTo (outbound: OutboundBuffer): (p: DeliveredPacket) => void {
  let push = pushers.get(outbound)
  if (push === undefined) {
    push = (p) => outbound.push(p)
    pushers.set(outbound, push)
  }
  return push
}

const states = new WeakMap<Client, Delivery>()

export interface DeliveryOptions {
  store: SessionStore
  /** The client's session sender (stored sessions): made the first time it is asked for. */
  sender: (client: Client) => SessionSender
  /** broker_messages_sent / _dropped (introspection.ts). */
  counts: { sent: number, dropped: number }
  /** Most deliveries held back for one client by its Receive Maximum; the oldest goes first. */
  maxHeld: number
  onHeldDropped: (client: Client) => void
  /** mqtt.max_client_buffer_bytes and what happens past it (outbound-buffer.ts). */
  buffer: OutboundOptions
}

/**
 * Installs the layer on a new connection. aedes reads `client.deliverQoS`
 * and `deliver0` when a subscription is made, so replacing them here covers
 * every subscription, restored ones and retained deliveries included. Its
 * options are shared by every connection.
 */
export function installDelivery (client: Client, options: DeliveryOptions): void {
  const c = internals(client)
  c.duplicates = forgetfulDuplicates()
  const state = new Delivery(client, options)
  states.set(client, state)
  // aedes calls these unbound: two bound methods (48 bytes each; two
  // closures and the context they share were 168).
  c.deliver0 = state.deliver0.bind(state)
  c.deliverQoS = state.deliverWithFixes.bind(state)
}

/**
 * The client subscribes with a Subscription Identifier: from now on each
 * message it gets carries those of all its matching subscriptions (the
 * authorizeSubscribe layer 'subscription-identifiers' tells; clients without
 * identifiers never pay for the search).
 */
export function usesSubscriptionIdentifiers (client: Client): void {
  const state = states.get(client)
  if (state !== undefined) state.usesIdentifiers = true
}

/** The client acknowledged (or refused) one of our QoS 1/2 PUBLISHes: its window has room again. */
export function outboundAck (client: Client): void {
  const state = states.get(client)
  const flow = state?.flow
  if (state === undefined || flow === undefined) return
  if (flow.inflight > 0) flow.inflight--
  while (flow.inflight < flow.limit && flow.held.length > 0 && !client.closed) {
    flow.inflight++
    const packet = flow.held.shift()!
    state.outbound.heldBytes -= publishBytes(packet)
    state.send(packet)
  }
}

/** The client's outbound buffer (its bytes, its bound); undefined before the delivery layer saw it. */
export function outboundOf (client: Client): OutboundBuffer | undefined {
  return states.get(client)?.outbound
}

/** Deliveries held back for the client by its Receive Maximum (introspection, tests). */
export function heldFor (client: Client): number {
  return states.get(client)?.flow?.held.length ?? 0
}

/** Wire size of a PUBLISH as it would be sent to a v5 client. */
function publishSize (packet: DeliveredPacket): number {
  return encodePacket({ ...packet, cmd: 'publish', messageId: packet.qos > 0 ? 1 : undefined }, 5).length
}

/**
 * The authorizeForward layer 'packet-size': a PUBLISH larger than the Maximum
 * Packet Size the client declared in CONNECT is discarded as if sent
 * [MQTT-3.1.2-25] (aedes ignores it). Cheap unless the payload is near the limit.
 */
export function packetSizeLayer (next: Aedes['authorizeForward']): Aedes['authorizeForward'] {
  return function authorizeForward (client, packet) {
    const max = client.maximumPacketSize
    if (max !== undefined && packet.payload.length + packet.topic.length * 3 + 512 > max) {
      if (publishSize(packet as unknown as DeliveredPacket) > max) return null
    }
    return next(client, packet)
  }
}
