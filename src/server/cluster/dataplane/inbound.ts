// Messages from peers into this node's broker.
//
// A forwarded publish goes to aedes.publish() without a client, so the
// `published` layer never forwards it again (no client can publish without
// one: the marker is structural, not a packet field a client could set). It
// keeps its stamp (message-stamp.ts): queued for a session here, it is the
// same message as on every other node. Its Message Expiry Interval counts
// from its publisher's node: it travels as an absolute expiry, and what is
// left of it is what subscribers here see.
//
// When aedes is done with it (queued for the sessions here and, with
// replicated acknowledgements, held by their replica holders; handed to the
// connected subscribers), the message is settled on its link: that is what
// the publisher's acknowledgement on the other node waits for.
//
// A publish addressed to sessions (`sessions`: a late copy for a session
// that moved here) is queued for them only, before the later messages of its
// publisher that are still waiting, so their order holds.
import type { Aedes } from 'aedes'
import { stampOf } from '../../mqtt/message-stamp.js'
import type { Bus } from '../../bus.js'
import type { DataPlaneContext } from './context.js'
import type { ForwardedPublish } from './messages.js'
import type { PeerLink, DeliveryInfo } from './peer-link.js'
import type { Forwarding } from './forwarding.js'

/** The seed's `cluster:message_from` body. */
export interface MessageFromEvent {
  Payload: string
  Topic: string
  Retain: boolean
  Qos: number
}

export interface InboundPacket {
  cmd: 'publish'
  topic: string
  payload: Buffer
  qos: number
  retain: boolean
  dup: boolean
  brokerId: string
  brokerCounter: number
  properties?: Record<string, unknown>
  messageExpiry?: number
  [key: string]: unknown
}

/** A forwarded publish as aedes is to see it: its stamp, and the expiry left of it. */
export function inboundPacket (p: ForwardedPublish, now = Date.now()): InboundPacket | undefined {
  let properties = p.properties
  if (p.messageExpiry !== undefined) {
    const left = p.messageExpiry - now
    if (left <= 0) return undefined
    properties = { ...properties, messageExpiryInterval: Math.ceil(left / 1000) }
  }
  const packet: InboundPacket = {
    cmd: 'publish',
    topic: p.topic,
    payload: p.payload,
    qos: p.qos,
    // Kept for subscribers with Retain As Published; aedes' store gets the
    // message from its replicated entry, not from this publish.
    retain: p.retain,
    dup: false,
    brokerId: p.brokerId,
    brokerCounter: p.brokerCounter
  }
  if (properties !== undefined) packet.properties = properties
  if (p.messageExpiry !== undefined) packet.messageExpiry = p.messageExpiry
  return packet
}


export class Inbound {
  private readonly ctx: DataPlaneContext
  private readonly bus: Bus
  private readonly forwarding: Forwarding
  /** Sessions that moved away from here lately: late copies for them follow them (session-moves.ts). */
  private readonly followers: (topic: string) => Array<{ clientId: string, to: string }>
  /** Queues a late copy for a session that moved here (session-moves.ts queueLate). */
  private readonly queueLate: (clientId: string, packet: InboundPacket) => Promise<void>
  /** Messages handed to aedes and not yet called back. */
  inflight = 0

  constructor (ctx: DataPlaneContext, bus: Bus, forwarding: Forwarding, moves: { followers: (topic: string) => Array<{ clientId: string, to: string }>, queueLate: (clientId: string, packet: InboundPacket) => Promise<void> }) {
    this.ctx = ctx
    this.bus = bus
    this.forwarding = forwarding
    this.followers = moves.followers
    this.queueLate = moves.queueLate
  }

  deliver (link: PeerLink, p: ForwardedPublish, info: DeliveryInfo): void {
    const settle = (): void => { if (info.hold === true && info.source !== undefined) link.settle(info.source) }
    if (this.bus.hasSubscribers('cluster:message_from')) {
      const event: MessageFromEvent = { Payload: p.payload.toString('base64'), Topic: p.topic, Retain: p.retain, Qos: p.qos }
      this.bus.publish('cluster:message_from', event)
    }
    const packet = inboundPacket(p)
    if (packet === undefined) {
      // Expired in transit: as if delivered and expired in a queue. [MQTT-3.3.2-5]
      settle()
      return
    }
    if (p.sessions.length > 0) {
      this.queueFor(p.sessions, packet).then(settle, settle)
      return
    }
    if (!p.plain) {
      for (const key of p.shared) this.forwarding.deliverShared(key, packet)
      settle()
      return
    }
    this.inflight++
    const aedes = this.ctx.aedes as Aedes & { publish: (packet: unknown, done: (err?: Error) => void) => void }
    aedes.publish({ ...packet }, (err) => {
      this.inflight--
      if (err !== undefined && err !== null) this.ctx.warn('warn', { topic: p.topic, err: err.message }, 'message from a peer not delivered')
      for (const key of p.shared) this.forwarding.deliverShared(key, packet)
      const late = this.followLate(packet)
      // Its copies queued here for stored sessions, held by their replica holders (persistence.ts takeHeld).
      const queued = this.ctx.store.takeHeld(stampOf(packet))
      const waits = late === undefined ? queued : queued === undefined ? late : Promise.all([late, queued])
      if (waits === undefined) settle()
      else waits.then(settle, settle)
    })
  }

  /** Queues a late copy for sessions that moved here, each once (the ledger), before its publisher's later messages. */
  async queueFor (clientIds: string[], packet: InboundPacket): Promise<void> {
    await Promise.all(clientIds.map(async (clientId) => await this.queueLate(clientId, packet)))
  }

  /**
   * A message for a session that moved away from here lately goes after it
   * (session-moves.ts), or for those of `only` (a rescued publish, for the
   * sessions it was rescued for); resolves when they are held there.
   */
  followLate (packet: InboundPacket, only?: ReadonlySet<string>): Promise<unknown> | undefined {
    if (packet.qos === 0) return undefined
    let waits: Array<Promise<void>> | undefined
    for (const { clientId, to } of this.followers(packet.topic)) {
      if (only !== undefined && !only.has(clientId)) continue
      const w = this.forwarding.forwardToSession(to, packet, clientId)
      if (w !== undefined) (waits ??= []).push(w)
    }
    return waits === undefined ? undefined : Promise.all(waits)
  }
}
