// Packets we write to a client's socket ourselves, where mqtt-packet's
// writer costs more than the packet: it writes a PUBLISH as six or seven
// writes and an acknowledgement as three, each a chunk of the socket's write
// queue, with debug calls between them. These give the same bytes (the
// tests compare them with mqtt-packet's) and answer undefined for anything
// else, which aedes-internals.ts writeToSocket leaves to mqtt-packet.

/** Bytes of a whole packet whose Remaining Length is `remaining`: the fixed header's type byte, the length's 1 to 4 bytes, the rest. */
export function wireSize (remaining: number): number {
  const lengthBytes = remaining >= 2_097_152 ? 4 : remaining >= 16_384 ? 3 : remaining >= 128 ? 2 : 1
  return 1 + lengthBytes + remaining
}

/** A packet identifier as the wire carries it: an integer from 0 to 65535. */
function isPacketId (id: unknown): boolean {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffff
}

interface ShortPublishFields { topic?: unknown, payload?: unknown, qos?: unknown, messageId?: unknown, dup?: boolean, retain?: boolean, properties?: unknown }

/** No MQTT 5 property to write: none, or only keys set to undefined (mqtt-packet skips those). */
function noProperties (properties: unknown): boolean {
  if (properties === undefined) return true
  if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) return false
  for (const key in properties) if ((properties as Record<string, unknown>)[key] !== undefined) return false
  return true
}

/** A payload up to this size is copied into the packet's one buffer; a larger one is written as a second chunk. */
const INLINE_PAYLOAD = 512
/** MQTT's largest Remaining Length (four bytes of variable byte integer). */
const MAX_REMAINING = 268_435_455

/**
 * Writes a PUBLISH as one buffer (two with a payload over INLINE_PAYLOAD
 * bytes), the bytes mqtt-packet writes in six or seven: header, length,
 * topic length, topic, packet id, (MQTT 5) property length, payload, each a
 * chunk of the socket's write queue (about 1 KB of a delivery's garbage
 * with mqtt-packet's debug calls). MQTT 5 only without properties. Returns
 * what write() returned, or undefined for a packet this does not take
 * (mqtt-packet writes it, or refuses it).
 */
export function writeShortPublish (conn: { write: (b: Buffer) => boolean }, packet: object, version: number): boolean | undefined {
  const p = packet as ShortPublishFields
  const { topic, messageId } = p
  const qos = p.qos ?? 0
  const payload = p.payload ?? EMPTY
  if (typeof topic !== 'string' || (qos !== 0 && qos !== 1 && qos !== 2)) return undefined
  const v5 = version === 5
  if (v5 && !noProperties(p.properties)) return undefined
  if (qos > 0 && !isPacketId(messageId)) return undefined
  const isBuffer = Buffer.isBuffer(payload)
  if (!isBuffer && typeof payload !== 'string') return undefined
  const topicBytes = Buffer.byteLength(topic, 'utf8')
  if (topicBytes > 0xffff) return undefined
  const payloadBytes = isBuffer ? payload.length : Buffer.byteLength(payload, 'utf8')
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payloadBytes
  if (remaining > MAX_REMAINING) return undefined
  const inline = payloadBytes <= INLINE_PAYLOAD
  const b = Buffer.allocUnsafe(wireSize(remaining) - (inline ? 0 : payloadBytes))
  b[0] = 0x30 | (p.dup === true ? 8 : 0) | (qos << 1) | (p.retain === true ? 1 : 0)
  let off = 1
  for (let n = remaining; ; off++) {
    const digit = n % 128
    n = Math.floor(n / 128)
    b[off] = n > 0 ? digit | 0x80 : digit
    if (n === 0) { off++; break }
  }
  off = b.writeUInt16BE(topicBytes, off)
  off += b.write(topic, off, 'utf8')
  if (qos > 0) off = b.writeUInt16BE(messageId as number, off)
  // MQTT 5: a property length of 0.
  if (v5) b[off++] = 0
  if (!inline) {
    conn.write(b)
    return conn.write(isBuffer ? payload : Buffer.from(payload as string, 'utf8'))
  }
  if (isBuffer) payload.copy(b, off)
  else b.write(payload as string, off, 'utf8')
  return conn.write(b)
}

const EMPTY = Buffer.alloc(0)

/** First byte of PUBACK, PUBREC, PUBREL (QoS bit set, [MQTT-3.6.1-1]) and PUBCOMP. */
const ACK_HEADER = new Map([['puback', 0x40], ['pubrec', 0x50], ['pubrel', 0x62], ['pubcomp', 0x70]])

interface ShortAckFields { cmd?: string, messageId?: unknown, dup?: boolean, reasonCode?: number, properties?: unknown }

/**
 * The four bytes of an acknowledgement that has only its packet id: every
 * one before MQTT 5, and an MQTT 5 success without properties (reason code
 * and properties omitted, section 3.4.2.1). mqtt-packet writes the same
 * bytes as three writes (header, length, id), each a chunk of the socket's
 * queue: a QoS 1 publisher's PUBACKs were a tenth of what a publish allocated.
 * Undefined for anything else, which mqtt-packet writes.
 */
export function shortAck (packet: object, version: number): Buffer | undefined {
  const p = packet as ShortAckFields
  const header = p.cmd === undefined ? undefined : ACK_HEADER.get(p.cmd)
  const id = p.messageId
  if (header === undefined || !isPacketId(id) || p.dup === true) return undefined
  if (version === 5 && (p.reasonCode !== 0 || p.properties !== undefined)) return undefined
  const b = Buffer.allocUnsafe(4)
  b[0] = header
  b[1] = 2
  b.writeUInt16BE(id as number, 2)
  return b
}
