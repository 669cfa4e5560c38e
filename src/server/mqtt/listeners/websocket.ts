// MQTT over WebSockets (MQTT 5 section 6) with the `ws` package: an HTTP
// server that only upgrades requests for the listener's path, offers the
// subprotocols `mqtt` and `mqttv3.1`, and hands aedes a byte stream of the
// binary frames, so one MQTT packet split over frames and several packets in
// one frame both simply arrive as bytes. Text frames break [MQTT-6.0.0-1]
// and close the connection. The stream goes through the same accept() as a
// TCP socket: the same limits, authentication and ACL.
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws'

export const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const

export interface WebSocketOptions {
  path: string
  /** Allowed Origin headers; empty: any. */
  origins: readonly string[]
  /** Largest WebSocket message accepted (bytes). */
  maxPayload: number
  /** A refused upgrade, for the listener's counters. */
  onRefused: (reason: 'path' | 'origin' | 'text_frame', req: IncomingMessage) => void
  /** The MQTT byte stream of an accepted connection and the upgrade request's socket (TCP or TLS). */
  onStream: (stream: Duplex, socket: Duplex, req: IncomingMessage) => void
}

/** An HTTP server that is fed sockets (`emit('connection', socket)`) by its listener. */
export function webSocketEndpoint (options: WebSocketOptions): { http: HttpServer, close: () => void } {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayload,
    // Compression costs CPU per message and MQTT payloads are often compressed already.
    perMessageDeflate: false,
    handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false
  })
  const http = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
    res.end('MQTT over WebSocket: connect with a WebSocket client (subprotocol mqtt)\n')
  })
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== options.path) return refuse(socket, 404, 'Not Found', () => options.onRefused('path', req))
    const origin = req.headers.origin
    if (options.origins.length > 0 && (origin === undefined || !options.origins.includes(origin))) {
      return refuse(socket, 403, 'Forbidden', () => options.onRefused('origin', req))
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      ws.on('message', (_data, isBinary) => {
        if (!isBinary) {
          options.onRefused('text_frame', req)
          ws.close(1003, 'MQTT needs binary frames')
        }
      })
      const stream = createWebSocketStream(ws)
      // Writes queued while one is being sent go out as one frame: aedes writes a
      // message's packets one by one, and a frame each costs a header and a syscall.
      ;(stream as unknown as { _writev: (chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void) => void })._writev = (chunks, cb) => {
        ws.send(Buffer.concat(chunks.map((c) => c.chunk)), { binary: true }, cb)
      }
      // The stream ends the WebSocket on destroy; errors are the connection's, aedes hears them on the stream.
      options.onStream(stream, socket, req)
    })
  })
  return { http, close: () => { wss.close(); http.close() } }
}

function refuse (socket: Duplex, status: number, text: string, count: () => void): void {
  count()
  socket.on('error', () => {})
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
}
