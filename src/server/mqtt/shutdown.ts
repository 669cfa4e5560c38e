// Graceful shutdown of the MQTT listener: stop accepting, tell MQTT 5
// clients why (DISCONNECT 0x8B, Server shutting down, §3.14.2.1) and end
// their connections in order (disconnect.ts), half-close the others so they
// see the end of the stream, wait for them to go for up to the grace
// period, then cut whatever is left.
import type { Socket } from 'node:net'
import type { Aedes, Client } from 'aedes'
import { internals } from './aedes-internals.js'
import { destroyNow } from './disconnect.js'

export const SERVER_SHUTTING_DOWN = 0x8B

export interface ShutdownParts {
  /** What accepts connections (the listeners): closed first. */
  server: { close (callback: () => void): unknown }
  aedes: Aedes
  /** Every open MQTT socket (aedes' and refused ones). */
  sockets: ReadonlySet<Socket>
  graceMs: number
}

/** Resolves once every socket has closed, or after `ms`; true when all closed in time. */
function allClosed (sockets: ReadonlySet<Socket>, ms: number): Promise<boolean> {
  if (sockets.size === 0) return Promise.resolve(true)
  return new Promise((resolve) => {
    let left = sockets.size
    const timer = setTimeout(() => resolve(false), ms)
    for (const socket of sockets) {
      socket.once('close', () => {
        if (--left === 0) {
          clearTimeout(timer)
          resolve(true)
        }
      })
    }
  })
}

/** DISCONNECT 0x8B for MQTT 5, then the end of the stream. */
function sayGoodbye (client: Client, socket: Socket): void {
  // aedes writes the DISCONNECT and closes the client; the 'disconnect'
  // connection layer makes the socket's end orderly, so the reason arrives.
  // [MQTT-3.14.4-2]
  if (client.version === 5) client.disconnect({ reasonCode: SERVER_SHUTTING_DOWN })
  // MQTT 3.1.1 has no server DISCONNECT: the FIN alone says it.
  else socket.end()
}

export async function shutdown ({ server, aedes, sockets, graceMs }: ShutdownParts): Promise<{ cut: number }> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  const clientSockets = new Set<Socket>()
  const clients = (aedes as unknown as { clients: Record<string, Client> }).clients
  for (const client of Object.values(clients)) {
    const socket = internals(client).conn
    clientSockets.add(socket)
    if (client.connected) {
      sayGoodbye(client, socket)
    } else if (client.connecting) {
      // Mid-CONNECT (authentication, or CONNACK just written and the offline
      // queue being replayed): a DISCONNECT must not overtake the CONNACK.
      client.once('connected', () => sayGoodbye(client, socket))
    } else {
      destroyNow(socket)
    }
  }
  // Connections that never finished CONNECT have nothing to wait for.
  for (const socket of sockets) if (!clientSockets.has(socket)) destroyNow(socket)
  const inTime = await allClosed(sockets, graceMs)
  let cut = 0
  if (!inTime) {
    for (const socket of sockets) {
      if (!socket.destroyed) {
        cut++
        destroyNow(socket)
      }
    }
  }
  await new Promise<void>((resolve) => aedes.close(() => resolve()))
  await closed
  return { cut }
}
