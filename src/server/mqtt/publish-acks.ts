// QoS 1 PUBLISH from a client: acknowledged after the message is published.
//
// aedes 2.0.0-beta.1 writes the PUBACK first and publishes afterwards
// (lib/handlers/publish.js), so a node that dies in between has
// acknowledged a message nobody holds. Here the PUBACK waits for
// aedes.publish() to call back: the message is queued for this node's
// persistent sessions and handed to the peers that deliver it, and, with
// `cluster.ack_after: replicated`, held by a second node (the cluster's
// `published` and persistence layers make that call back wait). A QoS 2
// PUBLISH already works this way in aedes (PUBREC after the publish).
//
// A publish the cluster refuses (no node keeps a copy for the sessions it is
// for: rescue-backpressure.ts) is not acknowledged: MQTT 5 gets PUBACK 0x97
// (Quota exceeded) with a Reason String, the connection kept; MQTT 3.1.1 has
// no negative PUBACK, so the connection is closed without one and the client
// sends the message again when it reconnects (section 4.4). (A refused QoS 2
// publish closes the connection in both versions: aedes writes the PUBREC.)
//
// Everything else mirrors aedes' handler for QoS 1 (handlers/index.js and
// publish.js): the Maximum Packet Size check, the keep alive refresh, MQTT 5
// topic aliases, topic validation, authorizePublish with its MQTT 5 answer
// (PUBACK 0x87 and a Reason String, the connection kept).
import { internals, writePacket, brokerInternals, type InboundPacket } from './aedes-internals.js'
import type { Client } from 'aedes'
import { outboundOf } from './delivery.js'
import { BrokerHaError } from '../../errors.js'
import { wireSize } from './wire-writes.js'

/** aedes.publish as aedes calls it for a client's message (its typings omit the client). */
type PublishWithClient = (packet: InboundPacket, client: Client, done: (err?: Error | null) => void) => void

const NOT_AUTHORIZED = 0x87
const TOPIC_ALIAS_INVALID = 0x94
const QUOTA_EXCEEDED = 0x97

function levels (topic: string): number {
  let n = 1
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) n++
  return n
}

/** Handles one QoS 1 PUBLISH; `done` is aedes' per-packet completion (the client's _nextBatch). */
export function handleQos1Publish (client: Client, packet: InboundPacket, done: (err?: Error | null) => void): void {
  const c = internals(client)
  const broker = brokerInternals(c.broker)
  const max = broker.maximumPacketSize
  if (max > 0 && packet.length !== undefined && wireSize(packet.length) > max) {
    (client as unknown as { rejectPacketTooLarge: (size: number, done: () => void) => void }).rejectPacketTooLarge(wireSize(packet.length), () => done())
    return
  }
  if (c._keepaliveInterval > 0) c._keepaliveTimer?.refresh()
  if (client.version === 5 && packet.properties?.topicAlias !== undefined) {
    const err = resolveTopicAlias(client, packet)
    if (err !== undefined) {
      broker.emit('clientError', client, err)
      client.disconnect({ reasonCode: TOPIC_ALIAS_INVALID }, () => done())
      return
    }
  }
  const topic = packet.topic ?? ''
  if (topic.length === 0) return done(new Error('empty topic not allowed in PUBLISH'))
  if (topic.includes('#')) return done(new Error('# is not allowed in PUBLISH'))
  if (topic.includes('+')) return done(new Error('+ is not allowed in PUBLISH'))
  const responseTopic = packet.properties?.responseTopic
  if (typeof responseTopic === 'string' && (responseTopic.includes('#') || responseTopic.includes('+'))) return done(new Error('wildcard is not allowed in Response Topic'))
  if (levels(topic) > broker.maxTopicLevels) return done(new Error('topic has too many levels'))
  broker.authorizePublish(client, packet as never, (err) => {
    if (err !== null && err !== undefined) {
      if (client.version !== 5) return done(err)
      // MQTT 5: the message is dropped, the connection kept, the client told why.
      broker.emit('clientError', client, err)
      const reasonString = c._requestProblemInformation === false ? undefined : err.message
      writePacket(client, { cmd: 'puback', messageId: packet.messageId, reasonCode: NOT_AUTHORIZED, ...(reasonString === undefined ? {} : { properties: { reasonString } }) }, () => done())
      return
    }
    // access control may refuse a v3 publish by acknowledging it itself (authorize.ts).
    if (packet._notAuthorized === true) return done()
    ;(broker.publish as unknown as PublishWithClient)(packet, client, (perr?: Error | null) => {
      if (perr !== null && perr !== undefined) {
        if (client.version !== 5 || !(perr instanceof BrokerHaError && perr.code === 'PUBLISH_REFUSED')) return done(perr)
        broker.emit('clientError', client, perr)
        const reasonString = c._requestProblemInformation === false ? undefined : perr.message
        writePacket(client, { cmd: 'puback', messageId: packet.messageId, reasonCode: QUOTA_EXCEEDED, ...(reasonString === undefined ? {} : { properties: { reasonString } }) }, () => done())
        return
      }
      // The 2-byte form (reason code 0, no properties), as aedes writes it;
      // with the connection's other writes of this turn, in one (outbound-buffer.ts).
      const puback = { cmd: 'puback', messageId: packet.messageId, reasonCode: 0 }
      const outbound = outboundOf(client)
      if (outbound !== undefined) outbound.push(puback, () => done())
      else writePacket(client, puback, (werr) => done(werr))
    })
  })
}

/** MQTT 5 topic alias of an inbound PUBLISH (section 3.3.2.3.4), as aedes resolves it. */
function resolveTopicAlias (client: Client, packet: InboundPacket): Error | undefined {
  const c = internals(client)
  const alias = packet.properties!.topicAlias as number
  const max = brokerInternals(c.broker).topicAliasMaximum
  if (alias < 1 || alias > max) return new Error(`topic alias ${alias} is out of range (broker topicAliasMaximum is ${max})`)
  const topic = packet.topic ?? ''
  if (topic.length > 0) {
    if (!topic.includes('#') && !topic.includes('+')) c._topicAliases.set(alias, topic)
  } else {
    const known = c._topicAliases.get(alias)
    if (known === undefined) return new Error(`unknown topic alias ${alias}`)
    packet.topic = known
  }
  packet.properties!.topicAlias = undefined
  return undefined
}
