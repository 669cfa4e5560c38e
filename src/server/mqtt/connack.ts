// aedes 2.0.0-beta.1 hard-codes "Shared Subscription Available: 0" into every
// MQTT 5 CONNACK (lib/handlers/connect.js connackProperties), because aedes
// itself refuses $share subscriptions. We serve them (shared-subscriptions.ts),
// and a client told 0 should not use them (§3.2.2.3.13), so the property is
// taken out of the CONNACK on its way to the socket: absent means available.
//
// The seam is the socket's write: aedes serialises the CONNACK with
// mqtt-packet's writeToStream, which corks the socket, writes the packet in a
// few synchronous pieces and uncorks on the next tick. We catch those pieces,
// re-encode the packet without the property and write it once. Only the first
// packet sent on an MQTT 5 connection is touched; then write is restored.
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'

const require = createRequire(import.meta.url)
interface Parser { on (event: 'packet', fn: (p: Record<string, unknown>) => void): void, on (event: 'error', fn: (e: Error) => void): void, parse (buf: Buffer): number }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts: { protocolVersion: number }) => Parser
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
}

const CONNACK_TYPE = 0x20

/** The CONNACK without the Shared Subscription Available property; the input when it cannot be parsed. */
export function withoutSharedSubscriptionFlag (bytes: Buffer): Buffer {
  let packet: Record<string, unknown> | undefined
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p) => { packet = p })
  parser.on('error', () => {})
  parser.parse(bytes)
  const properties = packet?.properties as Record<string, unknown> | undefined
  if (packet?.cmd !== 'connack' || properties?.sharedSubscriptionAvailable === undefined) return bytes
  delete properties.sharedSubscriptionAvailable
  const out: Record<string, unknown> = { cmd: 'connack', sessionPresent: packet.sessionPresent, reasonCode: packet.reasonCode }
  if (Object.keys(properties).length > 0) out.properties = properties
  return mqttPacket.generate(out, { protocolVersion: 5 })
}

/** Arms the rewrite for the next CONNACK written to this MQTT 5 connection. */
export function advertiseSharedSubscriptions (socket: Socket): void {
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
        if (!socket.destroyed) socket.write(withoutSharedSubscriptionFlag(bytes))
      })
    }
    if (buf !== undefined) chunks.push(buf)
    else if (typeof chunk === 'string') chunks.push(Buffer.from(chunk))
    return true
  } as Socket['write']
}
