// Where each connected client connects from and since when, for
// /api/mqtt/clients (Remote, ConnectedAt). Read from aedes' public surface
// only: its 'client' and 'clientDisconnect' events and Client.conn. The MQTT
// side (src/server/mqtt) keeps no such record yet; when it does, the clients
// list should take these fields from there and this file can go.
import type { Aedes, Client } from 'aedes'
import { remoteOf, formatRemote } from '../mqtt/listeners/connection-info.js'

export interface ConnectionDetails { Remote?: string, ConnectedAt: number }

export class ClientConnections {
  /**
   * By client id; the Client object tells a takeover's new connection from
   * the old one. Only the time is kept: the address is formatted when asked
   * (a formatted string and a details object per idle connection were about
   * 100 bytes of each).
   */
  private readonly byId = new Map<string, { client: Client, connectedAt: number }>()
  private readonly onClient = (client: Client): void => {
    this.byId.set(client.id, { client, connectedAt: Math.floor(Date.now() / 1000) })
  }

  private readonly onGone = (client: Client): void => {
    if (this.byId.get(client.id)?.client === client) this.byId.delete(client.id)
  }

  constructor (private readonly aedes: Aedes) {}

  /** Before MQTT listens, so the first clients of a restart are seen too. */
  async start (): Promise<void> {
    this.aedes.on('client', this.onClient)
    this.aedes.on('clientDisconnect', this.onGone)
  }

  async stop (): Promise<void> {
    this.aedes.off('client', this.onClient)
    this.aedes.off('clientDisconnect', this.onGone)
    this.byId.clear()
  }

  of (clientId: string): ConnectionDetails | undefined {
    const entry = this.byId.get(clientId)
    if (entry === undefined) return undefined
    // The listener's record: a PROXY header's address, else the socket's.
    const remote = formatRemote(remoteOf(entry.client.conn))
    return { ...(remote === undefined ? {} : { Remote: remote }), ConnectedAt: entry.connectedAt }
  }
}
