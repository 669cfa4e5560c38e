// The MQTT 5 properties a message may carry to its subscribers (section
// 3.3.2.3), enforced where every message enters the broker: the `publish`
// seam's 'forwarded-properties' layer (hooks.ts).
//
// A PUBLISH to a subscriber may carry only PUBLISH properties, and of those
// the Topic Alias and Subscription Identifiers are set per connection on the
// way out (section 3.3.4), never taken from the publisher. What else can
// reach aedes.publish:
//  - a will, published with the properties of the CONNECT's will: its Will
//    Delay Interval belongs to the CONNECT only (section 3.1.3.2.2), and a
//    strict client (Eclipse Paho) drops a connection whose PUBLISH carries it;
//  - a client PUBLISH with a Subscription Identifier, which clients must not
//    send [MQTT-3.3.4-6], or any property id mqtt-packet decodes for any
//    packet type.
// Those are taken out here, so no path (local delivery, a stored session's
// queue, a peer, a retained copy) ever sees them. A message whose properties
// are all forwardable, the common case, is passed on untouched.
import type { Aedes } from 'aedes'

/** PUBLISH properties a subscriber may get as the publisher sent them (section 3.3.2.3). */
const FORWARDED = new Set([
  'payloadFormatIndicator',
  'messageExpiryInterval',
  'contentType',
  'responseTopic',
  'correlationData',
  'userProperties'
])

interface WithProperties { properties?: Record<string, unknown> }

/** The properties to forward, or undefined when `properties` can go as they are. */
export function forwardableProperties (properties: Record<string, unknown>): Record<string, unknown> | undefined {
  let strip = false
  for (const key in properties) {
    if (properties[key] !== undefined && !FORWARDED.has(key)) { strip = true; break }
  }
  if (!strip) return undefined
  const out: Record<string, unknown> = {}
  for (const key in properties) {
    if (properties[key] !== undefined && FORWARDED.has(key)) out[key] = properties[key]
  }
  return out
}

/** The `publish` seam's 'forwarded-properties' layer. */
export function forwardedPropertiesLayer (next: Aedes['publish']): Aedes['publish'] {
  return ((packet: WithProperties, ...rest: unknown[]) => {
    const props = packet.properties
    const kept = props === undefined ? undefined : forwardableProperties(props)
    if (kept === undefined) return (next as (...a: unknown[]) => void)(packet, ...rest)
    // A copy: the will's properties object is the stored will's too.
    const { properties: _dropped, ...bare } = packet
    const out = Object.keys(kept).length === 0 ? bare : { ...bare, properties: kept }
    return (next as (...a: unknown[]) => void)(out, ...rest)
  }) as Aedes['publish']
}
