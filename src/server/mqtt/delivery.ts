// Outbound delivery fixes around aedes 2.0.0-beta.1, applied per connection
// (installDeliveryFixes) and broker-wide (composeAuthorizeForward).
import { createRequire } from 'node:module'
import type { Aedes, Client } from 'aedes'
import { internals, type DeliveredPacket } from './aedes-internals.js'
import { topicMatches } from '../../topic-filter.js'
import { isMarker } from './shared-subscriptions.js'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate: (packet: unknown, opts: { protocolVersion: number }) => Buffer }

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

/** Outbound flow control state of one MQTT 5 client with a Receive Maximum below 65535. */
class OutboundFlow {
  inflight = 0
  readonly held: DeliveredPacket[] = []
  constructor (readonly limit: number) {}
}

const flows = new WeakMap<Client, OutboundFlow>()

export interface DeliveryOptions {
  /** Most deliveries held back for one client by its Receive Maximum; the oldest goes first. */
  maxHeld: number
  onHeldDropped: (client: Client) => void
  /**
   * Where the client's persistent session holds this message in its queue,
   * not yet sent (its replay will send it): the entry's index, or -1.
   */
  queuedAt: (clientId: string, packet: DeliveredPacket) => number
  /**
   * For a session that moved here from another node: resolves once what it
   * is still owed from there was queued (bounded; data-plane.ts), so the
   * held deliveries go after it in the publishers' order. Undefined: nothing owed.
   */
  settled?: (clientId: string) => Promise<void> | undefined
}

/**
 * Per-connection delivery fixes; call right after aedes.handle(). aedes reads
 * `client.deliverQoS` when a subscription is made, so replacing it here covers
 * every subscription, restored ones and retained deliveries included.
 *
 * 1. aedes defect: a QoS 2 message reaching a client through a wildcard
 *    subscription granted QoS 1 is delivered at QoS 2; aedes only downgrades
 *    when the topic equals the filter (lib/client.js deliverQoS looks up
 *    `subscriptions[packet.topic]`). [MQTT-3.8.4-8] says min(published,
 *    granted). With overlapping subscriptions the highest matching grant
 *    wins (aedes delivers one copy).
 * 2. aedes defect (documented as advisory): it ignores the Receive Maximum an
 *    MQTT 5 client declares and sends it any number of unacknowledged QoS 1/2
 *    PUBLISHes. [MQTT-3.3.4-9] Beyond the client's window, deliveries are
 *    held (in order) until a PUBACK, PUBCOMP or failing PUBREC frees a slot
 *    (inbound.ts reports those through outboundAck). Clients that declare no
 *    Receive Maximum (65535) take the fast path.
 * 3. aedes defect: a resuming persistent session's subscriptions are live
 *    before its queue is replayed. A message published in between is queued
 *    and sent at once, ahead of older queued ones (out of order), and the
 *    replay, which snapshots the queue, sends it again (twice, a second
 *    packet identifier for QoS 2). Until the replay is over, a live delivery
 *    of a message waiting in the queue is held: the replay sends it in its
 *    place, or, queued after the snapshot, it goes right after the replay
 *    (for a session that just moved between nodes, once what it was owed
 *    from its old node arrived: `settled`).
 */
export function installDeliveryFixes (client: Client, options: DeliveryOptions): void {
  const c = internals(client)
  /** Live deliveries of queued messages held while the session resumes (3), until 'connected'. */
  let resuming: DeliveredPacket[] | undefined = []
  const deliverQoS = c.deliverQoS
  const broker = client as unknown as { broker: { authorizeForward: (client: Client, packet: DeliveredPacket) => DeliveredPacket | null | undefined } }

  /** Mirrors aedes' own checks (no-local, de-duplication, authorizeForward, downgrade to 0) without their side effects. */
  const willSendWithQos = (packet: DeliveredPacket): boolean => {
    if (packet.qos === 0) return false
    if (packet.clientId === client.id && packet.nl === true) return false
    if (packet.brokerId !== undefined && packet.brokerCounter !== undefined && (c.duplicates[packet.brokerId] ?? 0) >= packet.brokerCounter) return false
    if (c.subscriptions[packet.topic]?.qos === 0) return false
    const forwarded = broker.broker.authorizeForward(client, packet)
    return forwarded !== null && forwarded !== undefined
  }

  c.deliverQoS = function deliverWithFixes (packet: DeliveredPacket, cb: () => void): void {
    if (resuming !== undefined && packet.qos > 0 && client.clean === false && options.queuedAt(client.id, packet) >= 0) {
      // See 3: the replay sends it, in its place; or, queued after the replay's snapshot, the release does.
      resuming.push(packet)
      cb()
      return
    }
    // Only QoS 2 can exceed a grant here: QoS 0 grants use deliver0.
    if (packet.qos === 2 && c.subscriptions[packet.topic] === undefined && grantedQos(c.subscriptions, packet.topic) === 1) {
      // aedes hands each subscription its own packet copy, so this is ours.
      packet.qos = 1
    }
    const flow = flows.get(client)
    if (flow === undefined || !willSendWithQos(packet)) return deliverQoS(packet, cb)
    if (flow.inflight < flow.limit && flow.held.length === 0) {
      flow.inflight++
      return deliverQoS(packet, cb)
    }
    if (options.maxHeld > 0 && flow.held.length >= options.maxHeld) {
      flow.held.shift()
      options.onHeldDropped(client)
    }
    // Held, not blocked: aedes' delivery pipeline (shared by all clients)
    // moves on; for a persistent session the message also stays queued in
    // the persistence until it is sent and acknowledged.
    flow.held.push(packet)
    cb()
  }

  // The window is known once CONNECT is handled (aedes stores it on the client).
  client.once('connected', () => {
    if (client.version === 5 && client.receiveMaximum < 65535) flows.set(client, new OutboundFlow(client.receiveMaximum))
    // The queue replay is over (aedes emits 'connected' after it), and what
    // a moved session was owed is queued: held messages not sent yet go now,
    // in queue order (what was owed went in before later messages of its publisher).
    const release = (): void => {
      const held = (resuming ?? []).map((p) => ({ p, at: options.queuedAt(client.id, p) })).filter((h) => h.at >= 0)
      resuming = undefined
      held.sort((x, y) => x.at - y.at)
      for (const { p } of held) if (!client.closed) pastDedupe(p, c.deliverQoS)
    }
    const owed = options.settled?.(client.id)
    if (owed === undefined) release()
    else owed.then(release, release)
  })

  sendHeldHooks.set(client, (packet: DeliveredPacket) => { pastDedupe(packet, deliverQoS) })

  /**
   * Later messages may have passed aedes' per-client de-duplication while
   * this one was held (QoS 0 ones are never held): it would be taken for a
   * duplicate, and for a persistent session cleared from the queue, lost.
   * Lets it through once, then restores.
   */
  function pastDedupe (packet: DeliveredPacket, deliver: (packet: DeliveredPacket, cb: () => void) => void): void {
    const id = packet.brokerId
    const before = id === undefined ? undefined : c.duplicates[id]
    if (id !== undefined && packet.brokerCounter !== undefined) c.duplicates[id] = packet.brokerCounter - 1
    deliver(packet, () => {})
    if (id !== undefined && before !== undefined && before > (c.duplicates[id] ?? 0)) c.duplicates[id] = before
  }
}

const sendHeldHooks = new WeakMap<Client, (packet: DeliveredPacket) => void>()

/** The client acknowledged (or refused) one of our QoS 1/2 PUBLISHes: its window has room again. */
export function outboundAck (client: Client): void {
  const flow = flows.get(client)
  if (flow === undefined) return
  // Replays of the offline queue on reconnect are not counted (aedes writes
  // them directly), so their acknowledgements must not go below zero.
  if (flow.inflight > 0) flow.inflight--
  const send = sendHeldHooks.get(client)
  while (send !== undefined && flow.inflight < flow.limit && flow.held.length > 0 && !client.closed) {
    flow.inflight++
    send(flow.held.shift()!)
  }
}

/** Deliveries held back for the client by its Receive Maximum (introspection, tests). */
export function heldFor (client: Client): number {
  return flows.get(client)?.held.length ?? 0
}

/** Wire size of a PUBLISH as it would be sent to a v5 client. */
function publishSize (packet: DeliveredPacket): number {
  return mqttPacket.generate({ ...packet, cmd: 'publish', messageId: packet.qos > 0 ? 1 : undefined }, { protocolVersion: 5 }).length
}

/**
 * aedes defect (documented as advisory): it sends PUBLISH packets larger than
 * the Maximum Packet Size the client declared in CONNECT. [MQTT-3.1.2-25]
 * requires discarding them as if sent; returning null from authorizeForward
 * does exactly that (aedes also clears a queued QoS 1/2 copy). Cheap unless
 * the payload is near the client's limit.
 */
export function composeAuthorizeForward (aedes: Aedes): void {
  const inner = aedes.authorizeForward.bind(aedes)
  aedes.authorizeForward = function authorizeForward (client, packet) {
    const max = client.maximumPacketSize
    if (max !== undefined && packet.payload.length + packet.topic.length * 3 + 512 > max) {
      if (publishSize(packet as unknown as DeliveredPacket) > max) return null
    }
    return inner(client, packet)
  }
}
