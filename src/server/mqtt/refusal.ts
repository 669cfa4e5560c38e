// Refusing a connection the MQTT way: a CONNACK with a reason code, then
// close. Used before aedes gets the socket (connection limit) and for CONNECTs
// aedes would accept but our config does not.
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import type { InboundPacket } from './aedes-internals.js'
import { endGracefully } from './disconnect.js'

const require = createRequire(import.meta.url)
interface Parser { on (event: 'packet', fn: (p: InboundPacket) => void): void, on (event: 'error', fn: (e: Error) => void): void, parse (buf: Buffer): number }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts?: object) => Parser
  writeToStream: (packet: object, stream: Socket, opts: { protocolVersion: number }) => boolean
}

/** CONNACK codes for one refusal in both protocol generations. */
export interface RefusalCode {
  /** MQTT 5 reason code (§3.2.2.2). */
  v5: number
  /** MQTT 3.1/3.1.1 return code (1-5). */
  v3: number
}

export const QUOTA_EXCEEDED: RefusalCode = { v5: 0x97, v3: 0x03 }
export const SERVER_UNAVAILABLE: RefusalCode = { v5: 0x88, v3: 0x03 }
export const CLIENT_ID_NOT_VALID: RefusalCode = { v5: 0x85, v3: 0x02 }

/** Writes the refusing CONNACK and ends the connection gracefully (disconnect.ts), at once. */
export function refuseConnect (socket: Socket, protocolVersion: number, code: RefusalCode): void {
  const v5 = protocolVersion === 5
  const connack = v5
    ? { cmd: 'connack', sessionPresent: false, reasonCode: code.v5 }
    : { cmd: 'connack', sessionPresent: false, returnCode: code.v3 }
  try {
    mqttPacket.writeToStream(connack, socket, { protocolVersion: v5 ? 5 : protocolVersion === 3 ? 3 : 4 })
  } catch {
    // Nothing sensible to tell this peer.
  }
  endGracefully(socket, 0)
}

/**
 * Reads the CONNECT of a connection that aedes will never see, answers it with
 * a refusing CONNACK, and closes. Anything else (garbage, silence past
 * `timeout` ms) is just closed.
 */
export function refuseBeforeConnect (socket: Socket, code: RefusalCode, timeout: number): void {
  const parser = mqttPacket.parser()
  const timer = setTimeout(() => socket.destroy(), timeout)
  timer.unref()
  socket.on('error', () => {})
  socket.once('close', () => clearTimeout(timer))
  let answered = false
  parser.on('packet', (packet) => {
    if (answered) return
    answered = true
    socket.removeAllListeners('data')
    clearTimeout(timer)
    if (packet.cmd === 'connect') refuseConnect(socket, packet.protocolVersion ?? 4, code)
    else socket.destroy()
  })
  parser.on('error', () => socket.destroy())
  socket.on('data', (chunk: Buffer) => {
    parser.parse(chunk)
  })
}
