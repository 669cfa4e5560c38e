// The MQTT listeners of a node (mqtt.port, then mqtt.listeners): one TCP
// server each, and per connection the same steps in order:
//   1. the listener's own max_connections;
//   2. with proxy_protocol, the PROXY header (proxy-protocol.ts): the client's real address;
//   3. mqtts/wss: TLS (tls.ts), and a client certificate's identity;
//   4. ws/wss: the HTTP upgrade (websocket.ts);
//   5. the byte stream goes to MqttServer.accept() with what was learned (connection-info.ts).
// Every connection refused on the way is counted by listener and reason.
import { createServer, type Server, type Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { Counter, type Registry } from 'prom-client'
import { isTls, isWebSocket, type Listener } from '../../../config/index.js'
import { BrokerHaError } from '../../../errors.js'
import { rateLimited, type Logger } from '../../../log.js'
import { readProxyHeader } from './proxy-protocol.js'
import { ReloadableTls, certificateIdentity } from './tls.js'
import { webSocketEndpoint } from './websocket.js'
import type { ConnectionInfo } from './connection-info.js'

export { remoteOf, formatRemote, connectionInfo, describeConnection, type ConnectionInfo } from './connection-info.js'
export { loadTlsMaterial, ReloadableTls, TLS_OPTIONS, type TlsMaterial } from './tls.js'

export interface ListenersOptions {
  listeners: readonly Listener[]
  log: Logger
  registry: Registry
  /** Takes a connection's MQTT byte stream. */
  accept: (conn: Socket, info: ConnectionInfo) => void
  /** Time a connection has for its PROXY header and TLS handshake. */
  handshakeTimeoutMs: number
  maxPacketSize: number
  noDelay: boolean
  /** Watch certificate directories (off in tests that drive reloads themselves). */
  watchCertificates?: boolean
}

export type RefusalReason = 'max_connections' | 'proxy_header' | 'tls' | 'client_certificate' | 'path' | 'origin' | 'text_frame'

type Deliver = (conn: Duplex, info: ConnectionInfo) => void

interface Running {
  listener: Listener
  name: string
  server: Server
  /** Open sockets, kept only for a listener with its own max_connections. */
  open: Set<Socket>
  /** Step 3 onwards for a socket past its PROXY header. */
  deliver: Deliver
  tls?: ReloadableTls
  close: Array<() => void>
  /** The close listener of every socket of this listener (one function, not a closure per socket). */
  onClose: (this: Socket) => void
  /**
   * What a plain TCP listener (no PROXY protocol, TLS or WebSocket) knows of
   * each of its sockets: the same for all of them (the address is the
   * socket's own), so one record, not one per connection.
   */
  plain: ConnectionInfo | undefined
}

/** Errors of a listener's sockets are the MQTT layer's to report; this one swallows them for every socket. */
function ignoreError (): void {}

const REFUSED_METRIC = 'broker_mqtt_listener_refused_total'

const addressKey = (s: { remoteAddress?: string | undefined, remotePort?: number | undefined }): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? 0}`

export class Listeners {
  private readonly running: Running[]
  private readonly refused: Counter<'listener' | 'reason'>
  private readonly warn: ReturnType<typeof rateLimited>

  /** Reads and checks every certificate now, so a bad one stops the node before any port opens. */
  constructor (private readonly options: ListenersOptions) {
    this.warn = rateLimited(options.log)
    this.refused = (options.registry.getSingleMetric(REFUSED_METRIC) as Counter<'listener' | 'reason'> | undefined) ?? new Counter({
      name: REFUSED_METRIC,
      help: 'connections a listener closed before MQTT, by listener and reason (max_connections, proxy_header, tls, client_certificate, path, origin, text_frame)',
      labelNames: ['listener', 'reason'] as const,
      registers: [options.registry]
    })
    this.running = options.listeners.map((l) => this.build(l))
  }

  private build (listener: Listener): Running {
    const name = `${listener.type} ${listener.bind}:${listener.port}`
    this.refused.inc({ listener: name, reason: 'max_connections' }, 0)
    if (listener.proxy_protocol) this.refused.inc({ listener: name, reason: 'proxy_header' }, 0)
    const r: Running = {
      listener,
      name,
      open: new Set(),
      server: createServer({ noDelay: this.options.noDelay }, (s) => this.onSocket(r, s)),
      deliver: (conn, info) => this.options.accept(conn as Socket, info),
      close: [],
      onClose: function (this: Socket) { r.open.delete(this) },
      plain: listener.proxy_protocol || isTls(listener.type) || isWebSocket(listener.type)
        ? undefined
        : { listener: name, remote: undefined, certificateIdentity: undefined, usernameMustMatch: listener.username_must_match }
    }
    if (isWebSocket(listener.type)) this.addWebSocket(r)
    if (isTls(listener.type)) this.addTls(r)
    return r
  }

  /** ws, wss: the stream of an upgraded request goes to MQTT; what comes before is HTTP. */
  private addWebSocket (r: Running): void {
    const infos = new WeakMap<object, ConnectionInfo>()
    const ws = webSocketEndpoint({
      path: r.listener.path,
      origins: r.listener.origins,
      maxPayload: Math.min(2 * this.options.maxPacketSize, 268_435_456),
      onRefused: (reason, req) => this.refuse(r, reason, infos.get(req.socket), req.headers.origin),
      onStream: (stream, socket) => {
        const info = infos.get(socket)
        if (info === undefined) {
          stream.destroy()
          return
        }
        this.options.accept(stream as unknown as Socket, info)
      }
    })
    r.close.push(ws.close)
    r.deliver = (conn, info) => {
      infos.set(conn, info)
      ws.http.emit('connection', conn)
      // After a PROXY header the socket is paused with the request's first bytes
      // unshifted; the HTTP server reads its handle directly and would never see them.
      conn.resume()
    }
  }

  /** mqtts, wss: TLS on the socket, then the step after it (MQTT or the WebSocket upgrade). */
  private addTls (r: Running): void {
    const { listener } = r
    const tlsServer = new TlsServer({
      // ALPN `mqtt` (IANA); http/1.1 for wss. A client that offers neither still connects.
      ALPNProtocols: isWebSocket(listener.type) ? ['http/1.1', 'mqtt'] : ['mqtt'],
      requestCert: listener.client_auth !== 'none',
      rejectUnauthorized: listener.client_auth === 'require',
      handshakeTimeout: this.options.handshakeTimeoutMs
    })
    const reloadable = new ReloadableTls({ key: listener.configKey, cert: listener.cert!, keyFile: listener.key!, ca: listener.ca }, this.options.log, (m) => tlsServer.setSecureContext(m.options))
    tlsServer.setSecureContext(reloadable.material.options)
    // The TLS socket shares its TCP connection's addresses: that pair finds what the listener learned before TLS.
    const pending = new Map<string, ConnectionInfo>()
    const after = r.deliver
    tlsServer.on('tlsClientError', (err, socket) => {
      const info = pending.get(addressKey(socket))
      const reason = /certificate|alert (bad|unknown)|peer did not return/i.test(err.message) ? 'client_certificate' : 'tls'
      this.refuse(r, reason, info, err.message)
    })
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      const info = pending.get(addressKey(socket))
      // client_auth optional: no certificate is fine, a certificate that does not verify is not.
      const badCertificate = listener.client_auth === 'optional' && !socket.authorized && Object.keys(socket.getPeerCertificate() ?? {}).length > 0
      if (info === undefined || badCertificate) {
        if (badCertificate) this.refuse(r, 'client_certificate', info, String(socket.authorizationError))
        socket.destroy()
        return
      }
      after(socket, { ...info, certificateIdentity: certificateIdentity(socket, listener.identity) })
    })
    r.tls = reloadable
    r.close.push(() => reloadable.close())
    r.deliver = (conn, info) => {
      const key = addressKey(conn as Socket)
      pending.set(key, info)
      conn.once('close', () => pending.delete(key))
      tlsServer.emit('connection', conn)
    }
  }

  private onSocket (r: Running, socket: Socket): void {
    const { listener } = r
    // Listeners on a socket are cheap until an event has three: then its
    // array grows to 19 slots (176 bytes of every idle connection). aedes puts
    // two on 'error' and 'close'; ours stay off them where they are not needed.
    // A plain socket goes to aedes in this turn, which handles its errors; a
    // socket that waits for a PROXY header, TLS or an HTTP upgrade first needs
    // this one.
    if (listener.proxy_protocol || isTls(listener.type) || isWebSocket(listener.type)) socket.on('error', ignoreError)
    if (listener.max_connections > 0) {
      if (r.open.size >= listener.max_connections) {
        this.refuse(r, 'max_connections', undefined, `${listener.max_connections}`)
        socket.destroy()
        return
      }
      // Counted only where the listener has its own limit.
      r.open.add(socket)
      socket.on('close', r.onClose)
    }
    if (r.plain !== undefined) return r.deliver(socket, r.plain)
    const info: ConnectionInfo = {
      listener: r.name,
      remote: socket.remoteAddress === undefined ? undefined : { address: socket.remoteAddress, port: socket.remotePort },
      certificateIdentity: undefined,
      usernameMustMatch: listener.username_must_match
    }
    if (!listener.proxy_protocol) return r.deliver(socket, info)
    readProxyHeader(socket, this.options.handshakeTimeoutMs).then(({ source }) => {
      r.deliver(socket, { ...info, remote: source ?? info.remote })
    }, (err: Error) => {
      this.refuse(r, 'proxy_header', info, err.message)
      socket.destroy()
    })
  }

  private refuse (r: Running, reason: RefusalReason, info: ConnectionInfo | undefined, detail?: string): void {
    this.refused.inc({ listener: r.name, reason })
    this.warn('warn', { listener: r.name, reason, remote: info?.remote?.address, detail }, 'connection refused by listener')
  }

  async start (): Promise<void> {
    for (const r of this.running) {
      const { bind, port, configKey } = r.listener
      r.server.listen(port, bind)
      try {
        await once(r.server, 'listening')
      } catch (err) {
        await this.stop()
        const key = configKey === 'mqtt.port' ? 'mqtt.port' : `${configKey}.port`
        throw new BrokerHaError('LISTEN_FAILED', `cannot listen for ${r.listener.type} on ${bind}:${port}: ${(err as Error).message}`, { key, cause: err })
      }
      if (this.options.watchCertificates !== false) r.tls?.watch()
      this.options.log.info({ type: r.listener.type, bind, port, ...(r.listener.proxy_protocol ? { proxy_protocol: true } : {}) }, 'MQTT listening')
    }
  }

  /** Stops accepting; the open connections are MqttServer's to end (shutdown.ts). */
  close (callback: () => void): void {
    void this.stop().then(callback)
  }

  async stop (): Promise<void> {
    await Promise.all(this.running.map(async (r) => {
      for (const c of r.close) c()
      if (r.server.listening) await new Promise<void>((resolve) => r.server.close(() => resolve()))
    }))
  }

  /** SIGHUP: every TLS listener reads its files again; a bad file keeps the certificate in use. */
  reloadCertificates (why: string): void {
    for (const r of this.running) r.tls?.reload(why)
  }

  /** Where each listener listens (tests, logs): type, address, port. */
  addresses (): Array<{ type: Listener['type'], address: string, port: number, configKey: string }> {
    return this.running.map((r) => {
      const a = r.server.address()
      if (a === null || typeof a === 'string') throw new Error(`${r.name} is not listening`)
      return { type: r.listener.type, address: a.address, port: a.port, configKey: r.listener.configKey }
    })
  }
}
