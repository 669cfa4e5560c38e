// One info line when a client connects and one when it goes, with why, as
// mosquitto logs them: an operator following a device at 3 a.m. greps its
// client id and sees where it connected from, as whom, how (protocol, keep
// alive, clean or persistent, session present), and each time it went,
// the reason (its DISCONNECT, a keep alive timeout, a protocol error, a
// takeover by a newer connection here or on another node, an operator's
// client/stop, the node stopping). `log.clients: false` turns them off.
//
// Read from aedes' events ('connackSent', 'clientReady', 'keepaliveTimeout',
// 'clientError', 'clientDisconnect'), Client.disconnectReasonCode, and one
// private field listed in aedes-internals.ts (`_disconnected`).
import type { Aedes, Client } from 'aedes'
import type { Logger } from '../../log.js'
import { internals, brokerInternals } from './aedes-internals.js'
import type { AedesHooks } from './hooks.js'
import { DISCONNECT_REASONS } from './disconnect.js'
import { remoteOf as connectionRemote, formatRemote } from './listeners/connection-info.js'
import { keepsConnection } from './authorize.js'

const PROTOCOLS: Record<number, string> = { 3: '3.1', 4: '3.1.1', 5: '5.0' }

// The address is not kept: the connection's own record (connection-info.ts) still has it when it closes.
interface Seen { connectedAt: number, sessionPresent: boolean }

export class ClientLog {
  private readonly seen = new WeakMap<Client, Seen>()
  private readonly reasons = new WeakMap<Client, string>()

  constructor (
    private readonly log: Logger,
    private readonly userOf: (client: Client) => string | undefined
  ) {}

  /** Why the connection is being closed, when the closer knows better than the close (the first reason given wins). */
  because (client: Client, reason: string): void {
    if (!this.reasons.has(client)) this.reasons.set(client, reason)
  }

  /**
   * The 'client-log' layer of authenticate (hooks.ts): a CONNECT accepted for
   * a client id connected here takes the older connection over. aedes closes
   * that one before it says anything about the new one, so this is where the
   * reason is known.
   */
  installHooks (hooks: AedesHooks, aedes: Aedes): void {
    hooks.use('authenticate', 'client-log', (next) => (client, username, password, callback) => {
      next(client, username, password, (err, ok) => {
        const older = brokerInternals(aedes).clients[client.id]
        if (err === null && ok && older !== undefined && older !== client) {
          this.because(older, `taken over by a new connection on this node${describeRemote(remoteOf(client))}`)
        }
        callback(err, ok)
      })
    })
  }

  attach (aedes: Aedes): void {
    aedes.on('connackSent', (packet: { sessionPresent?: boolean, returnCode?: number, reasonCode?: number }, client: Client) => {
      if ((packet.returnCode ?? packet.reasonCode ?? 0) !== 0) return
      this.seen.set(client, { connectedAt: Date.now(), sessionPresent: packet.sessionPresent === true })
    })
    aedes.on('clientReady', (client: Client) => {
      const c = internals(client)
      const s = this.seen.get(client)
      const user = this.userOf(client)
      this.log.info({
        client: client.id,
        remote: remoteOf(client),
        ...(user === undefined ? {} : { user }),
        protocol: PROTOCOLS[c._wireVersion ?? c.version] ?? String(c.version),
        keepalive: c._keepaliveInterval > 0 ? Math.floor(c._keepaliveInterval / 1500) : 0,
        session: c.clean === false ? 'persistent' : 'clean',
        sessionPresent: s?.sessionPresent === true
      }, 'client connected')
    })
    aedes.on('keepaliveTimeout', (client: Client) => this.because(client, 'keep alive timeout'))
    aedes.on('clientError', (client: Client, err: Error) => { if (!keepsConnection(err)) this.because(client, errorReason(err)) })
    aedes.on('clientDisconnect', (client: Client) => {
      const s = this.seen.get(client)
      this.log.info({
        client: client.id,
        remote: remoteOf(client),
        reason: this.reasonOf(client),
        ...(s === undefined ? {} : { connectedFor: `${((Date.now() - s.connectedAt) / 1000).toFixed(1)}s` })
      }, 'client disconnected')
    })
  }

  private reasonOf (client: Client): string {
    const c = internals(client)
    // A server-sent MQTT 5 DISCONNECT says it best (takeover, administrative action, shutdown).
    const code = c.disconnectReasonCode
    const noted = this.reasons.get(client)
    if (noted !== undefined) return noted
    if (code !== null) return `server sent DISCONNECT: ${DISCONNECT_REASONS[code] ?? `reason 0x${code.toString(16)}`}`
    if (c._disconnected) return 'client sent DISCONNECT'
    return 'connection closed by the client or the network'
  }
}

/** The client's address as its listener knows it (a PROXY header's, else the socket's). */
function remoteOf (client: Client): string | undefined {
  return formatRemote(connectionRemote(internals(client).conn))
}

function describeRemote (remote: string | undefined): string {
  return remote === undefined ? '' : ` from ${remote}`
}

/** aedes' error messages, as an operator reads a reason. */
function errorReason (err: Error): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ECONNRESET') return 'connection reset by the client or the network'
  if (code === 'EPIPE') return 'connection broken while writing'
  if (code !== undefined) return `socket error ${code}`
  return err.message
}
