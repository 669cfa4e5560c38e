// Two CONNACK fixes, made on the CONNACK's way to the socket:
//
// - aedes 2.0.0-beta.1 hard-codes "Shared Subscription Available: 0" into
//   every MQTT 5 CONNACK (lib/handlers/connect.js connackProperties), because
//   aedes itself refuses $share subscriptions. We serve them
//   (shared-subscriptions.ts), and a client told 0 should not use them
//   (§3.2.2.3.13), so the property is taken out: absent means available.
// - aedes says "session present" only when the session has subscriptions
//   (connect.js restoreSubs). A session is also its queued messages and its
//   client's QoS 2 publishes awaiting PUBREL [MQTT-3.2.2-2]: a client that
//   resumes one without subscriptions (it unsubscribed, or only publishes)
//   must be told, or it would discard its own in-flight state.
//
// The seam is the socket's write: aedes serialises the CONNACK with
// mqtt-packet's writeToStream, which corks the socket, writes the packet in a
// few synchronous pieces and uncorks on the next tick. We catch those pieces,
// re-encode the packet and write it once. Only the first packet sent on a
// connection is touched; then write is restored.
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'

const require = createRequire(import.meta.url)
interface Parser { on (event: 'packet', fn: (p: Record<string, unknown>) => void): void, on (event: 'error', fn: (e: Error) => void): void, parse (buf: Buffer): number }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts: { protocolVersion: number }) => Parser
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
}

const CONNACK_TYPE = 0x20

export interface ConnackFix {
  protocolVersion: number
  /** The CONNECT asked to resume a session (Clean Start / Clean Session 0). */
  resume: boolean
  /** Whether a session is stored for the client now (read as the CONNACK leaves). */
  hasSession: () => boolean
}

/** The CONNACK with both fixes; the input when it cannot be parsed or needs none. */
export function fixedConnack (bytes: Buffer, fix: ConnackFix): Buffer {
  if (fix.protocolVersion !== 5) return fixedConnack311(bytes, fix)
  let packet: Record<string, unknown> | undefined
  const parser = mqttPacket.parser({ protocolVersion: fix.protocolVersion })
  parser.on('packet', (p) => { packet = p })
  parser.on('error', () => {})
  parser.parse(bytes)
  if (packet?.cmd !== 'connack') return bytes
  const accepted = (fix.protocolVersion === 5 ? packet.reasonCode : packet.returnCode) === 0
  const properties = packet.properties as Record<string, unknown> | undefined
  const dropFlag = fix.protocolVersion === 5 && properties?.sharedSubscriptionAvailable !== undefined
  const present = accepted && fix.resume && packet.sessionPresent !== true && fix.hasSession()
  if (!dropFlag && !present) return bytes
  if (dropFlag) delete properties!.sharedSubscriptionAvailable
  const out: Record<string, unknown> = { cmd: 'connack', sessionPresent: present || packet.sessionPresent === true }
  if (fix.protocolVersion === 5) {
    out.reasonCode = packet.reasonCode
    if (properties !== undefined && Object.keys(properties).length > 0) out.properties = properties
  } else {
    out.returnCode = packet.returnCode
  }
  return mqttPacket.generate(out, { protocolVersion: fix.protocolVersion })
}

/**
 * MQTT 3.1 and 3.1.1: a CONNACK is four fixed bytes (type, length 2, flags,
 * return code), and only session present can need fixing: bit 0 of the flags.
 */
function fixedConnack311 (bytes: Buffer, fix: ConnackFix): Buffer {
  if (bytes.length !== 4 || bytes[0] !== CONNACK_TYPE || bytes[1] !== 2) return bytes
  const present = bytes[3] === 0 && fix.resume && (bytes[2]! & 1) === 0 && fix.hasSession()
  if (!present) return bytes
  const out = Buffer.from(bytes)
  out[2] = 1
  return out
}

/**
 * Arms the fixes for the next CONNACK written to this connection. A 3.1 or
 * 3.1.1 clean session needs neither (no properties, never present): its
 * CONNACK goes out untouched, and the connect allocates nothing for it.
 */
export function fixConnack (socket: Socket, fix: ConnackFix): void {
  if (fix.protocolVersion !== 5 && !fix.resume) return
  const write = socket.write
  let chunks: Buffer[] | undefined
  const restore = (): void => { socket.write = write }
  socket.write = function captureConnack (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    const buf = Buffer.isBuffer(chunk) ? chunk : undefined
    if (chunks === undefined) {
      if (buf === undefined || buf.length === 0 || (buf[0]! & 0xF0) !== CONNACK_TYPE) {
        // Not a CONNACK (aedes refused otherwise, or wrote nothing yet): leave it be.
        restore()
        return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
      }
      chunks = []
      // All pieces of one packet are written in this tick.
      process.nextTick(() => {
        restore()
        const bytes = Buffer.concat(chunks!)
        if (!socket.destroyed) socket.write(fixedConnack(bytes, fix))
      })
    }
    if (buf !== undefined) chunks.push(buf)
    else if (typeof chunk === 'string') chunks.push(Buffer.from(chunk))
    return true
  } as Socket['write']
}
