// How the server ends a connection after telling the client why (an MQTT 5
// DISCONNECT with a reason code, section 3.14, or a refusing CONNACK): in
// order, so that the reason arrives.
//
// Closing a TCP socket while the client's packets are still unread in the
// receive buffer makes the kernel send a reset instead of a FIN, and a
// reset discards what the client had not read yet: the DISCONNECT. That is
// what a client that is told 0x93 (Receive Maximum exceeded) meets most,
// since it is cut off while sending, but any reason can be lost that way.
// So after the reason is written the connection is ended gracefully:
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
// per-connection 'disconnect' layer (hooks.ts) makes those orderly: once a
// DISCONNECT is on its way, the socket's destroy() starts the sequence above
// instead. destroyNow() cuts a connection for real (the end of a shutdown's
// grace period).
import { Socket } from 'node:net'
import type { Client } from 'aedes'
import { internals, encodePacket } from './aedes-internals.js'

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

/** From now on, destroy() on this socket ends it gracefully (aedes' close after a DISCONNECT). */
export function armGracefulEnd (socket: Socket): void {
  if (armed.has(socket)) return
  armed.add(socket)
  socket.destroy = function gracefulDestroy (this: Socket) {
    endGracefully(this)
    return this
  }
}

/** Writes an MQTT 5 DISCONNECT with `reasonCode`; the connection's end is then graceful. */
export function writeDisconnect (socket: Socket, reasonCode: number): void {
  if (socket.destroyed || !socket.writable) return
  socket.write(encodePacket({ cmd: 'disconnect', reasonCode }, 5))
  armGracefulEnd(socket)
}

type Disconnect = (opts?: { reasonCode?: number, properties?: object }, done?: () => void) => void

/**
 * The per-connection 'disconnect' layer: every server DISCONNECT aedes or we
 * send through client.disconnect() is followed by a graceful end. aedes
 * writes a DISCONNECT only to a connected MQTT 5 client that did not fail.
 */
export function gracefulDisconnects (client: Client): void {
  const c = internals(client)
  const target = client as unknown as { disconnect: Disconnect }
  const disconnect = target.disconnect.bind(client)
  target.disconnect = function disconnectGracefully (opts, done) {
    if (client.version === 5 && client.connected && !client.closed && !c.errored) armGracefulEnd(c.conn)
    disconnect(opts, done)
  }
}
