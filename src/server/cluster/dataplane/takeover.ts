// One connection per client id, cluster-wide.
//
// Every local connection is announced to every peer (client-connected, with
// an HLC stamp). A node holding an older connection of that id closes it as
// aedes closes a local one it takes over (MQTT 5: DISCONNECT 0x8E; the will
// as aedes handles it); the later stamp wins, so two simultaneous connects
// close one. A resuming client's session moved already, before its CONNACK
// (session-moves.ts): the announcement closes what is left, e.g. a
// clean-session connection, and removes an offline copy older than the new
// connection (its client started clean, or resumed another copy).
import type { Client } from 'aedes'
import type { DataPlaneContext } from './context.js'
import { localClient, sendControl } from './context.js'
import { compareStamps, type Stamp } from './hlc.js'
import { brokerInternals } from '../../mqtt/aedes-internals.js'

/** How long a peer's announcement of a connection is remembered against late, older copies of its session. */
const ANNOUNCED_KEEP_MS = 60_000

/** MQTT 5 DISCONNECT reason: another connection with the same client id took the session over. */
export const SESSION_TAKEN_OVER = 0x8E

export interface TakeoverHost {
  /** A client id connected on a peer (its will owed here, if any, is cancelled). */
  seenElsewhere: (clientId: string) => void
  /** Whether a CONNECT of this id is on its way through aedes here, its session fetch included. */
  connecting: (clientId: string) => boolean
  removeSession: (clientId: string) => Promise<void>
}

export class Takeover {
  private readonly ctx: DataPlaneContext
  private readonly host: TakeoverHost
  /** When each local connection registered (HLC): of two connections with one id, the later one wins cluster-wide. */
  private readonly connectedAt = new WeakMap<Client, Stamp>()
  /** Local connections being closed because their client id connected elsewhere. */
  private readonly closing = new WeakMap<Client, Promise<void>>()
  /** When each client id was last connected here (HLC): of two copies of a session, the newer wins. */
  private readonly stamps = new Map<string, Stamp>()
  /** The latest connection of each client id announced by a peer lately, and until when it is kept (ANNOUNCED_KEEP_MS). */
  private readonly announcedAt = new Map<string, { stamp: Stamp, until: number }>()

  constructor (ctx: DataPlaneContext, host: TakeoverHost) {
    this.ctx = ctx
    this.host = host
  }

  /** When the session was last connected here (the zero stamp when never). */
  stampOf (clientId: string): Stamp {
    return this.stamps.get(clientId) ?? { wall: 0, logical: 0, node: this.ctx.name }
  }

  setStamp (clientId: string, stamp: Stamp): void { this.stamps.set(clientId, stamp) }
  forget (clientId: string): void { this.stamps.delete(clientId) }

  /** A local connection registered (aedes' 'client' event): stamped and announced. */
  connected (client: Client): Stamp {
    const stamp = this.ctx.clock.now()
    this.connectedAt.set(client, stamp)
    this.stamps.set(client.id, stamp)
    if (this.ctx.running()) {
      for (const peer of this.ctx.links.peers) sendControl(this.ctx, peer, { kind: 'client-connected', clientId: client.id, stamp })
    }
    return stamp
  }

  /**
   * A link came up: the connections made here lately are announced to the
   * peer again. One made before this node had any link to the peer (after a
   * whole-cluster restart, a client back here before the node holding its
   * will on disk joined) was announced to nobody there, and that node would
   * publish the will of a client that is online. A repeat is harmless: the
   * later stamp wins, as before.
   */
  announceRecent (peer: string): void {
    const since = Date.now() - ANNOUNCED_KEEP_MS
    for (const client of Object.values(brokerInternals(this.ctx.aedes).clients)) {
      if (client === undefined || client.closed) continue
      const stamp = this.connectedAt.get(client)
      if (stamp === undefined || stamp.wall < since) continue
      sendControl(this.ctx, peer, { kind: 'client-connected', clientId: client.id, stamp })
    }
  }

  /** When a live local connection registered. */
  connectedStamp (client: Client): Stamp | undefined { return this.connectedAt.get(client) }

  /**
   * Whether a peer announced a connection of this client id newer than
   * `stamp` lately: a copy of its session from before that connection is
   * stale, even one that arrives after the announcement (a late answer to a
   * session fetch whose CONNECT went on elsewhere).
   */
  announcedAfter (clientId: string, stamp: Stamp): boolean {
    const a = this.announcedAt.get(clientId)
    return a !== undefined && a.until >= Date.now() && compareStamps(stamp, a.stamp) < 0
  }

  /** A client with this id connected on a peer at `stamp`. */
  announced (clientId: string, stamp: Stamp, peer: string): void {
    try { this.ctx.clock.observe(stamp) } catch { /* too far ahead: compared by stamp anyway */ }
    const now = Date.now()
    for (const [id, a] of this.announcedAt) {
      if (a.until >= now) break
      this.announcedAt.delete(id)
    }
    const before = this.announcedAt.get(clientId)
    if (before === undefined || compareStamps(before.stamp, stamp) < 0) {
      this.announcedAt.delete(clientId)
      this.announcedAt.set(clientId, { stamp, until: now + ANNOUNCED_KEEP_MS })
    }
    this.host.seenElsewhere(clientId)
    // The client is back, on another node: a will whose Will Delay Interval
    // is still running here (its connection here ended) is not sent. [MQTT-3.1.3-9]
    brokerInternals(this.ctx.aedes).clearDelayedWill(clientId)
    const local = localClient(this.ctx, clientId)
    if (local === undefined) {
      // An offline copy older than that connection is stale: the client took
      // its session from another copy (this node did not answer in time) or
      // started clean. Kept, it would keep attracting messages for nobody.
      const held = this.stamps.get(clientId)
      if (this.ctx.store.hasSession(clientId) && held !== undefined && compareStamps(held, stamp) < 0 && !this.host.connecting(clientId)) {
        this.ctx.log.info({ client: clientId, peer }, 'client connected on another node with a newer session: stale copy here removed')
        this.host.removeSession(clientId).catch((err: Error) => this.ctx.warn('warn', { client: clientId, err: err.message }, 'stale session not removed'))
      }
      return
    }
    const mine = this.connectedAt.get(local)
    if (mine !== undefined && compareStamps(mine, stamp) >= 0) return // ours is the newer connection
    if (this.closing.has(local)) return
    this.ctx.log.debug({ client: clientId, peer }, 'client id connected on another node: closing the older connection here')
    void this.close(local, peer)
  }

  /**
   * Closes a local connection whose client id connected elsewhere (MQTT 5:
   * DISCONNECT 0x8E), once: the announcement and a session request may both
   * ask, and a second DISCONNECT would race the first.
   */
  close (local: Client, peer: string): Promise<void> {
    let closing = this.closing.get(local)
    if (closing === undefined) {
      this.ctx.mqtt.clientLog.because(local, `taken over by a connection on ${peer}`)
      closing = new Promise<void>((resolve) => {
        (local as Client & { disconnect: (opts: { reasonCode: number }, done: () => void) => void }).disconnect({ reasonCode: SESSION_TAKEN_OVER }, () => resolve())
      })
      this.closing.set(local, closing)
    }
    return closing
  }

  isClosing (local: Client): boolean { return this.closing.has(local) }
}
