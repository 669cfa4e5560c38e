// How the server ends a connection after telling the client why (an MQTT 5
// DISCONNECT with a reason code, section 3.14, or a refusing CONNACK): in
// order, so that the reason arrives.
//
// Closing a TCP socket while the client's packets are still unread in the
// receive buffer makes the kernel send a reset instead of a FIN, and a
// reset discards what the client had not read yet: the DISCONNECT. That is
// what a client told 0x93 (Receive Maximum exceeded) meets most, since it is
// cut off while sending. So after the reason is written the connection is
// ended gracefully:
//  1. input is read and dropped from then on (nothing after a DISCONNECT is
//     processed, [MQTT-3.14.4-2]; reading keeps the receive buffer empty);
//  2. the write side is closed FIN_DELAY_MS later (at once after a CONNACK):
//     mqtt.js drops packets that arrive together with the end of the stream,
//     so the DISCONNECT goes out alone first;
//  3. the socket is destroyed when the client closes its side, or after
//     LINGER_MS whatever it does, so a client that keeps sending cannot hold
//     the connection.
//
// aedes ends every connection it closes with `conn.destroy()` (lib/client.js
// close() and _onError()), right after its own DISCONNECTs too (takeover
// 0x8E, packet too large 0x95, topic alias invalid 0x94) and ours through
// client.disconnect() (protocol errors, 0x93, 0x98, shutdown 0x8B). The
// per-connection 'disconnect' layer (hooks.ts) gives each client socket a
// destroy() that ends it as above once a DISCONNECT was written; destroyNow()
// cuts a connection for real (the end of a shutdown's grace period).
import { Socket } from 'node:net'
import type { Client } from 'aedes'
import { internals, encodePacket } from './aedes-internals.js'

/** MQTT 5 DISCONNECT reason codes the server sends (section 3.14.2.1), as words: the Reason String too. */
export const DISCONNECT_REASONS: Readonly<Record<number, string>> = {
  0x00: 'normal disconnection',
  0x81: 'malformed packet',
  0x82: 'protocol error',
  0x87: 'not authorized',
  0x89: 'server busy',
  0x8b: 'server shutting down',
  0x8d: 'keep alive timeout',
  0x8e: 'session taken over',
  0x93: 'receive maximum exceeded',
  0x94: 'topic alias invalid',
  0x95: 'packet too large',
  0x97: 'quota exceeded',
  0x98: 'administrative action'
}

/**
 * The properties of a server DISCONNECT: its reason as a Reason String
 * (section 3.14.2.2.3), unless that would make the packet larger than the
 * client accepts [MQTT-3.14.2-3]. Besides telling a person, it is what lets
 * Eclipse Paho's Python client see the reason code at all: it reads a
 * DISCONNECT's reason code only when properties follow it.
 */
export function disconnectProperties (reasonCode: number, maximumPacketSize?: number): { reasonString: string } | undefined {
  const reasonString = DISCONNECT_REASONS[reasonCode]
  if (reasonString === undefined) return undefined
  if (maximumPacketSize !== undefined && 8 + reasonString.length > maximumPacketSize) return undefined
  return { reasonString }
}

/** Time between a DISCONNECT and our FIN, so that the client reads the DISCONNECT first. */
export const FIN_DELAY_MS = 200
/** Longest a connection that was told to go stays open waiting for the client to close it. */
export const LINGER_MS = 2000

const ending = new WeakSet<Socket>()
const armed = new WeakSet<Socket>()

/** Destroys a socket now, even one whose destroy() was made graceful. */
export function destroyNow (socket: Socket, err?: Error): void {
  Socket.prototype.destroy.call(socket, err)
}

/**
 * Ends a connection gracefully (steps 1 to 3 at the top of the file); safe
 * to call more than once. `finDelayMs` 0: half-close at once.
 */
export function endGracefully (socket: Socket, finDelayMs = FIN_DELAY_MS, lingerMs = LINGER_MS): void {
  if (ending.has(socket) || socket.destroyed) return
  ending.add(socket)
  socket.on('error', () => {})
  // The client's own close ends it; ours follows.
  socket.once('end', () => destroyNow(socket))
  const fin = setTimeout(() => { if (!socket.destroyed) socket.end() }, finDelayMs)
  const linger = setTimeout(() => destroyNow(socket), lingerMs)
  fin.unref()
  linger.unref()
  socket.once('close', () => {
    clearTimeout(fin)
    clearTimeout(linger)
  })
  // After the current turn: aedes detaches its reader as it closes the client.
  setImmediate(() => {
    if (socket.destroyed) return
    socket.removeAllListeners('readable')
    socket.on('data', () => {})
    socket.resume()
  })
}

/** From now on, destroying this socket ends it gracefully (aedes' close after a DISCONNECT). */
export function armGracefulEnd (socket: Socket): void {
  armed.add(socket)
}

/**
 * The destroy() described at the top of the file, one function for every
 * socket (it reads the socket from `this`; a closure per socket was about
 * 100 bytes of every idle connection).
 */
function orderlyDestroy (this: Socket, err?: Error): Socket {
  if (armed.has(this)) endGracefully(this)
  else destroyNow(this, err)
  return this
}

/** Writes an MQTT 5 DISCONNECT with `reasonCode` to a client; the connection's end is then graceful. */
export function writeDisconnect (client: Client, reasonCode: number): void {
  const socket = internals(client).conn
  if (socket.destroyed || !socket.writable) return
  const properties = disconnectProperties(reasonCode, client.maximumPacketSize)
  socket.write(encodePacket({ cmd: 'disconnect', reasonCode, ...(properties === undefined ? {} : { properties }) }, 5))
  armGracefulEnd(socket)
}

type Disconnect = (opts?: { reasonCode?: number, properties?: object }, done?: () => void) => void

/**
 * The per-connection 'disconnect' layer: the socket gets the destroy() of
 * the top of the file, and every server DISCONNECT aedes or we send through
 * client.disconnect() carries its Reason String and is followed by a
 * graceful end. aedes writes a DISCONNECT only to a connected MQTT 5 client
 * that did not fail.
 */
export function orderlyEnds (client: Client): void {
  const c = internals(client)
  c.conn.destroy = orderlyDestroy
  const target = client as unknown as { disconnect: Disconnect }
  // One shared function over aedes' Client.prototype.disconnect (it reads the
  // client from `this`; every caller calls it as a method), not a bound copy
  // and a closure per connection.
  const own = target.disconnect
  if (own === (Object.getPrototypeOf(client) as { disconnect: Disconnect }).disconnect) {
    target.disconnect = disconnectGracefully
    return
  }
  // Someone replaced it already: wrap that one.
  target.disconnect = function (this: Client, opts, done) { gracefully(this, own, opts, done) }
}

function disconnectGracefully (this: Client, opts?: { reasonCode?: number, properties?: object }, done?: () => void): void {
  gracefully(this, (Object.getPrototypeOf(this) as { disconnect: Disconnect }).disconnect, opts, done)
}

function gracefully (client: Client, disconnect: Disconnect, opts?: { reasonCode?: number, properties?: object }, done?: () => void): void {
  const c = internals(client)
  if (client.version === 5 && client.connected && !client.closed && !c.errored) armGracefulEnd(c.conn)
  const reasonCode = opts?.reasonCode ?? 0
  const properties = opts?.properties ?? disconnectProperties(reasonCode, client.maximumPacketSize)
  disconnect.call(client, { ...opts, reasonCode, ...(properties === undefined ? {} : { properties }) }, done)
}
