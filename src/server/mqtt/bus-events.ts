// Local publishes onto the event bus channel `cluster:message_to` (seed: "event
// is generated when new MQTT message is published to broker"), in the seed's
// SSE shape. Built only while somebody listens, so the publish hot path pays
// one property check otherwise.
import type { Aedes } from 'aedes'
import type { Bus } from '../bus.js'

/** The seed's event body, field for field. */
export interface MessageToEvent {
  Node: string[]
  Payload: string
  Topic: string
  Retain: boolean
  Qos: number
}

/**
 * Set on a publish packet by the cluster data plane: the peers it was sent
 * to, which become the event's `Node`. Absent (no data plane, or a node
 * without peers): the seed's `["all"]`.
 */
export const MESSAGE_TARGETS: unique symbol = Symbol('broker-ha.messageTargets')

export function messageToEvent (packet: { topic: string, payload: Buffer | string, retain?: boolean, qos?: number, [MESSAGE_TARGETS]?: string[] }): MessageToEvent {
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  return { Node: packet[MESSAGE_TARGETS] ?? ['all'], Payload: payload.toString('base64'), Topic: packet.topic, Retain: packet.retain === true, Qos: packet.qos ?? 0 }
}

/**
 * The 'bus-events' layer of aedes' `published` seam (hooks.ts), called once
 * per accepted publish. Only messages from clients (including their wills)
 * count; aedes' own $SYS traffic, which has no client, never appears.
 */
export function messageToEventsLayer (bus: Bus): (next: Aedes['published']) => Aedes['published'] {
  return (next) => function published (packet, client, done) {
    if (client !== null && client !== undefined && bus.hasSubscribers('cluster:message_to') && packet.topic.charCodeAt(0) !== 36) {
      bus.publish('cluster:message_to', messageToEvent(packet))
    }
    next(packet, client, done)
  }
}
