// The byte stream a bench client speaks MQTT over, by URL scheme: mqtt://
// (tcp://) plain TCP, mqtts:// (ssl://, tls://) TLS with ALPN mqtt, ws:// and
// wss:// MQTT over WebSocket (path /mqtt unless the URL names one,
// subprotocol mqtt). The CA to trust (--ca) or none checked (--insecure).
import { createConnection, isIP, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { WebSocket, createWebSocketStream } from 'ws'

export const SCHEMES = ['mqtt:', 'tcp:', 'mqtts:', 'ssl:', 'tls:', 'ws:', 'wss:'] as const

export interface TransportOptions {
  /** PEM of the CAs to trust instead of the system's. */
  ca?: string | undefined
  /** Do not verify the server's certificate (self-signed test brokers). */
  insecure?: boolean | undefined
  /** Source address of a plain TCP connection (several spread many connections over more ephemeral ports). */
  localAddress?: string | undefined
}

const DEFAULT_PORTS: Record<string, number> = { 'mqtt:': 1883, 'tcp:': 1883, 'mqtts:': 8883, 'ssl:': 8883, 'tls:': 8883, 'ws:': 8083, 'wss:': 8084 }

/** Resolves with a connected stream; WebSocket streams have a socket's write/on('data')/destroy surface. */
export async function openTransport (url: string, options: TransportOptions): Promise<Socket> {
  const u = new URL(url)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const port = u.port === '' ? DEFAULT_PORTS[u.protocol] ?? 1883 : Number(u.port)
  const tls = { ...(options.ca === undefined ? {} : { ca: options.ca }), rejectUnauthorized: options.insecure !== true }
  switch (u.protocol) {
    case 'mqtts:': case 'ssl:': case 'tls:': {
      const socket = tlsConnect({ host, port, ...tls, ALPNProtocols: ['mqtt'], ...(isIP(host) === 0 ? { servername: host } : {}) })
      socket.setNoDelay(true)
      await once(socket, 'secureConnect')
      return socket
    }
    case 'ws:': case 'wss:': {
      const path = u.pathname === '/' || u.pathname === '' ? '/mqtt' : u.pathname
      const ws = new WebSocket(`${u.protocol}//${u.host}${path}`, ['mqtt'], { ...tls, perMessageDeflate: false })
      await once(ws, 'open')
      const stream = createWebSocketStream(ws) as unknown as Socket
      // PUBLISHes written while a frame is being sent go out together in the next
      // frame, as a client library's buffered writes would: a frame per packet
      // would measure the generator's syscalls, not the broker.
      ;(stream as unknown as { _writev: (chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void) => void })._writev = (chunks, cb) => {
        ws.send(Buffer.concat(chunks.map((c) => c.chunk)), { binary: true }, cb)
      }
      // A socket-like stream: the bench reads remote errors as closes.
      stream.on('error', () => {})
      return stream
    }
    default: {
      const socket = createConnection({ host, port, noDelay: true, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) })
      await once(socket, 'connect')
      return socket
    }
  }
}
