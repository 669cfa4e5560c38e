// A lean MQTT client on a raw socket for the load generator: CONNECT,
// SUBSCRIBE, pre-encoded PUBLISH batches, acknowledgements written in
// batches, and a framing-only reader, so that the broker, not the client
// library, is what saturates.
import type { Socket } from 'node:net'
import { openTransport, type TransportOptions } from './transport.js'
import { once } from 'node:events'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate: (packet: object, opts?: { protocolVersion: number }) => Buffer }

export function encode (packet: object, protocolVersion: 4 | 5): Buffer {
  return mqttPacket.generate({ protocolVersion, ...packet }, { protocolVersion })
}

/** Splits a byte stream into MQTT packets: onPacket(first byte, body). */
export function framer (onPacket: (header: number, body: Buffer) => void, onChunkEnd?: () => void): (chunk: Buffer) => void {
  let pending: Buffer | undefined
  return (chunk) => {
    const buf = pending === undefined ? chunk : Buffer.concat([pending, chunk])
    let pos = 0
    for (;;) {
      if (buf.length - pos < 2) break
      let len = 0
      let mult = 1
      let i = pos + 1
      let complete = false
      for (; i < buf.length && i < pos + 5; i++) {
        len += (buf[i]! & 0x7F) * mult
        mult *= 128
        if ((buf[i]! & 0x80) === 0) { complete = true; i++; break }
      }
      if (!complete || buf.length - i < len) break
      onPacket(buf[pos]!, buf.subarray(i, i + len))
      pos = i + len
    }
    pending = pos === buf.length ? undefined : Buffer.from(buf.subarray(pos))
    onChunkEnd?.()
  }
}

/** Reads a variable byte integer at `at`: [value, bytes used]. */
function varint (buf: Buffer, at: number): [number, number] {
  let value = 0
  let mult = 1
  for (let i = 0; i < 4; i++) {
    const b = buf[at + i]!
    value += (b & 0x7F) * mult
    if ((b & 0x80) === 0) return [value, i + 1]
    mult *= 128
  }
  return [value, 4]
}

/** Offsets inside a PUBLISH body (MQTT 3.3.2 / 5.0 section 3.3.2). */
export function publishLayout (header: number, body: Buffer, protocolVersion: 4 | 5): { packetId: number | undefined, payloadAt: number } {
  let at = 2 + body.readUInt16BE(0)
  let packetId: number | undefined
  if ((header & 0x06) !== 0) { packetId = body.readUInt16BE(at); at += 2 }
  if (protocolVersion === 5) { const [len, used] = varint(body, at); at += used + len }
  return { packetId, payloadAt: at }
}

export interface RawConnection {
  socket: Socket
  /** Time (ms, timeOrigin clock) the TCP connect started and the CONNACK arrived. */
  startedAt: number
  connackAt: number
}

export class ConnectRefused extends Error {}

/** Fixed headers of the acknowledgements (MQTT 3.4-3.7): PUBREL has flags 0010. */
export const PUBACK = 0x40
export const PUBREC = 0x50
export const PUBREL = 0x62
export const PUBCOMP = 0x70

/**
 * Acknowledgements of one kind for the packet ids given, back to back in one
 * buffer: the two-byte form, which MQTT 5 reads as reason code 0, success.
 */
export function acks (header: number, ids: number[]): Buffer {
  const out = Buffer.allocUnsafe(4 * ids.length)
  for (const [k, id] of ids.entries()) { out[4 * k] = header; out[4 * k + 1] = 0x02; out.writeUInt16BE(id, 4 * k + 2) }
  return out
}

/** CONNECT fields beyond the client id: a login, and `clean: false` for a persistent session. */
export interface Credentials { username?: string | undefined, password?: string | undefined, clean?: boolean }

/** Opens a socket, sends CONNECT and resolves at a successful CONNACK. Packets after it go to onPacket. */
export async function rawConnect (url: string, clientId: string, protocolVersion: 4 | 5, onPacket: (header: number, body: Buffer) => void, timeoutMs = 10_000, onChunkEnd?: () => void, credentials: Credentials = {}, transport: TransportOptions = {}): Promise<RawConnection> {
  const startedAt = performance.timeOrigin + performance.now()
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`connect to ${url} timed out`)), timeoutMs) })
  timedOut.catch(() => {})
  let socket: Socket
  try {
    socket = await Promise.race([openTransport(url, transport), timedOut])
  } catch (err) {
    clearTimeout(timer)
    throw err
  }
  try {
    let connacked!: (code: number) => void
    const connack = new Promise<number>((resolve) => { connacked = resolve })
    socket.on('data', framer((header, body) => {
      // CONNACK: flags, then the return (3.1.1) or reason (5.0) code.
      if ((header & 0xF0) === 0x20) connacked(body[1] ?? 0xFF)
      else onPacket(header, body)
    }, onChunkEnd))
    const auth = { ...(credentials.username === undefined ? {} : { username: credentials.username }), ...(credentials.password === undefined ? {} : { password: Buffer.from(credentials.password) }) }
    socket.write(encode({ cmd: 'connect', protocolId: 'MQTT', clientId, clean: credentials.clean ?? true, keepalive: 300, ...auth }, protocolVersion))
    const closed = once(socket, 'close').then(() => -1)
    const code = await Promise.race([connack, closed, timedOut])
    if (code !== 0) throw new ConnectRefused(`${url} refused ${clientId}: ${code === -1 ? 'connection closed' : `code ${code}`}`)
    return { socket, startedAt, connackAt: performance.timeOrigin + performance.now() }
  } catch (err) {
    socket.destroy()
    throw err
  } finally {
    clearTimeout(timer)
  }
}
