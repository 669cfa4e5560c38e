// Wills on disk (storage.dir): a client connected to a node that dies is
// owed its will (MQTT: its connection ended without DISCONNECT), and the
// node that comes back on the same store publishes it.
//
// Every will aedes stores for a connection (putWill, at CONNECT) is written
// as `w\0<clientId>` with what its due time depends on: the protocol, the
// Session Expiry Interval of the connection, and, once the connection ended
// with its will delayed (MQTT 5 Will Delay Interval), when it ended. It is
// erased when aedes deletes the will (a DISCONNECT, the will published, a
// new connection without one). So what is left on disk at start is the will
// of every client that was connected at the crash (or whose delayed will
// was still running), and it is published at
// min(Will Delay Interval, Session Expiry Interval) after the connection
// ended (for a client connected at the crash: after the restart, as the
// crash time is not known), unless the client connects first, here or on a
// peer (its announcement). In a cluster the node waits for its peers first
// (storage.peers_wait, 15 s), so the will reaches their subscribers and a
// peer's announcement of the client comes before it (a peer announces the
// clients that connected lately again when their link comes up, before its
// route table: takeover.ts announceRecent).
//
// In a cluster the peer holding the client's replica (its will with it)
// publishes the will when this node dies (promotion.ts). So each record
// notes that holder and its process: a node restarted alone, whose holder
// is still the same process, leaves the will to it; after a whole-cluster
// restart (the holder restarted too, its replicas gone) it publishes it.
import type { Aedes, Client } from 'aedes'
import type { Logger } from '../../log.js'
import type { StoredPacket } from '../mqtt/outgoing-queues.js'
import { checkPacket, type TransferredPacket } from '../cluster/dataplane/session-transfer.js'
import { transferable } from '../cluster/dataplane/session-replication.js'

export const WILL = 'w\u0000'

/** A will on disk. */
export interface WillRecord {
  /** The will message. */
  p: TransferredPacket
  /** Protocol version of the connection (only MQTT 5 has a Will Delay Interval). */
  v?: number
  /** Session Expiry Interval (s) of the connection; undefined: none known (the will is not held back by it). */
  e?: number
  /** When the connection ended (ms since the epoch), once it did with the will delayed; undefined: connected. */
  d?: number
  /** The peer holding the replica of the client's session and will, and its process (a cluster). */
  h?: string
  hp?: string
}

export function checkWillRecord (v: unknown): WillRecord {
  const r = v as WillRecord
  if (typeof r !== 'object' || r === null) throw new Error('bad will record')
  checkPacket(r.p)
  if (typeof r.p.topic !== 'string') throw new Error('bad will topic')
  for (const k of ['v', 'e', 'd'] as const) if (r[k] !== undefined && typeof r[k] !== 'number') throw new Error(`bad will record ${k}`)
  for (const k of ['h', 'hp'] as const) if (r[k] !== undefined && typeof r[k] !== 'string') throw new Error(`bad will record ${k}`)
  return r
}

/** When a will on disk is due (ms since the epoch), for a connection that ended at `r.d` or else at `restartedAt`. */
export function willDue (r: WillRecord, restartedAt: number): number {
  const ended = r.d ?? restartedAt
  const props = r.p.properties as { willDelayInterval?: unknown } | undefined
  const delayS = r.v === 5 && typeof props?.willDelayInterval === 'number' ? props.willDelayInterval : 0
  const capS = r.e === undefined ? delayS : Math.min(delayS, r.e)
  return ended + capS * 1000
}

export interface StoredWillsHost {
  aedes: Aedes
  log: Logger
  write: (key: string, value: unknown) => void
  erase: (key: string) => void
  /** Resolves when the node may publish what it owes from disk (a cluster: its peers are linked). */
  ready: () => Promise<void>
  /** The peer holding the client's replica here, if any. */
  holderOf: (clientId: string) => string | undefined
  /** The process of a peer whose link is up, if it is. */
  processOf: (peer: string) => string | undefined
}

export class StoredWills {
  private readonly host: StoredWillsHost
  /** The will on disk per client, as written. */
  private readonly records = new Map<string, WillRecord>()
  /** Wills read from disk and owed, until published or their client is back. */
  private readonly owed = new Map<string, { record: WillRecord, timer: NodeJS.Timeout | undefined }>()
  private stopped = false
  /** Wills published from disk since start (tests, the log). */
  published = 0

  constructor (host: StoredWillsHost) {
    this.host = host
  }

  // ---- changes -----------------------------------------------------------------------------------

  /** aedes stored a will for a connection (putWill, before the connection is registered). */
  stored (clientId: string, will: StoredPacket): void {
    this.cancel(clientId)
    // Without the stamp of the process that stored it: a will is stamped when published.
    const { brokerId: _b, brokerCounter: _c, messageId: _m, clientId: _i, ...p } = transferable(will)
    const r: WillRecord = { p: { ...p, cmd: 'publish' } }
    const c = clientOf(this.host.aedes, clientId)
    if (c !== undefined) this.describe(r, c)
    this.noteHolder(r, this.host.holderOf(clientId))
    this.put(clientId, r)
  }

  /** The client's replica (its will with it) went to a holder: noted, so a restart knows who publishes the will. */
  holderChosen (clientId: string, holder: string): void {
    const r = this.records.get(clientId)
    if (r === undefined || this.owed.has(clientId) || (r.h === holder && r.hp === this.host.processOf(holder))) return
    this.noteHolder(r, holder)
    this.put(clientId, r)
  }

  private noteHolder (r: WillRecord, holder: string | undefined): void {
    const process = holder === undefined ? undefined : this.host.processOf(holder)
    if (holder === undefined || process === undefined) { delete r.h; delete r.hp; return }
    r.h = holder
    r.hp = process
  }

  /** aedes deleted the client's will (DISCONNECT, published, or replaced). */
  deleted (clientId: string): void {
    if (!this.records.delete(clientId)) return
    this.host.erase(WILL + clientId)
  }

  /** A connection registered: its will's record gets the connection's protocol and expiry; a will owed from disk is not. */
  connected (client: Client): void {
    this.cancel(client.id)
    const r = this.records.get(client.id)
    if (r === undefined) return
    this.describe(r, client)
    this.put(client.id, r)
  }

  /** The client connected on a peer: a will owed from disk is not published. */
  seenElsewhere (clientId: string): void {
    this.cancel(clientId)
  }

  /** A connection ended: a will still on disk (delayed) now counts from here. */
  ended (client: Client): void {
    const r = this.records.get(client.id)
    if (r === undefined || this.owed.has(client.id)) return
    // A connection replaced by a newer one of the same id: the will on disk is the newer one's.
    const current = clientOf(this.host.aedes, client.id)
    if (current !== undefined && current !== client) return
    r.d = Date.now()
    this.put(client.id, r)
  }

  // ---- start ---------------------------------------------------------------------------------------

  /** Wills read back at start: each is owed, at its due time, once the node is ready. */
  load (wills: Array<[string, WillRecord]>, now: number): void {
    for (const [clientId, record] of wills) {
      this.records.set(clientId, record)
      this.owed.set(clientId, { record, timer: undefined })
    }
    if (wills.length === 0) return
    this.host.log.info({ wills: wills.length }, 'wills of clients connected at the last stop read back: published when due unless their clients come back')
    void this.host.ready().then(() => {
      for (const [clientId, o] of [...this.owed]) {
        if (this.stopped) return
        const { h, hp } = o.record
        if (h !== undefined && hp !== undefined && this.host.processOf(h) === hp) {
          // Its replica holder is the same process as before the crash: it took
          // the session over and publishes the will (promotion.ts). Not twice.
          this.host.log.info({ client: clientId, holder: h }, 'stored will left to the replica holder that outlived this node')
          this.owed.delete(clientId)
          if (this.records.get(clientId) === o.record) this.deleted(clientId)
          continue
        }
        const delay = Math.max(0, willDue(o.record, now) - Date.now())
        o.timer = setTimeout(() => this.publish(clientId), Math.min(delay, 2 ** 31 - 1))
        o.timer.unref()
      }
    })
  }

  stop (): void {
    this.stopped = true
    for (const o of this.owed.values()) clearTimeout(o.timer)
    this.owed.clear()
  }

  // ---- internals -------------------------------------------------------------------------------

  private describe (r: WillRecord, client: Client): void {
    const c = client as Client & { version?: number, sessionExpiryInterval?: number, clean?: boolean }
    if (typeof c.version === 'number') r.v = c.version
    if (c.version === 5 && typeof c.sessionExpiryInterval === 'number') r.e = c.sessionExpiryInterval
    else delete r.e
  }

  private put (clientId: string, r: WillRecord): void {
    this.records.set(clientId, r)
    this.host.write(WILL + clientId, r)
  }

  /** Its client is back: the will owed from disk is dropped (a new connection's will, if any, replaced the record already). */
  private cancel (clientId: string): void {
    const o = this.owed.get(clientId)
    if (o === undefined) return
    clearTimeout(o.timer)
    this.owed.delete(clientId)
    this.host.log.info({ client: clientId }, 'stored will not published: its client connected again (here or on a peer)')
    if (this.records.get(clientId) === o.record) this.deleted(clientId)
  }

  private publish (clientId: string): void {
    const o = this.owed.get(clientId)
    if (o === undefined || this.stopped) return
    this.owed.delete(clientId)
    if (clientOf(this.host.aedes, clientId) !== undefined) return
    const will = o.record.p
    const packet = {
      cmd: 'publish' as const,
      topic: will.topic ?? '',
      payload: will.payload ?? Buffer.alloc(0),
      qos: will.qos ?? 0,
      retain: will.retain === true,
      dup: false,
      ...(will.properties === undefined ? {} : { properties: will.properties })
    }
    this.published++
    this.host.log.info({ client: clientId, topic: packet.topic }, 'publishing the will of a client connected when this node stopped')
    const aedes = this.host.aedes as unknown as { publish: (p: object, client: Client | null, done: (err?: Error) => void) => void }
    aedes.publish(packet, WILL_OF_GONE_CLIENT, (err) => {
      if (err !== undefined && err !== null) this.host.log.warn({ client: clientId, topic: packet.topic, err: err.message }, 'stored will not published')
    })
    if (this.records.get(clientId) === o.record) this.deleted(clientId)
  }
}

function clientOf (aedes: Aedes, clientId: string): Client | undefined {
  return (aedes as unknown as { clients: Record<string, Client | undefined> }).clients[clientId]
}

/**
 * The client a stored will is published for: aedes' `published` seam
 * forwards to peers only messages with a client, and a will is a client's
 * message (as promotion.ts does for the wills of a dead node's clients).
 */
const WILL_OF_GONE_CLIENT = { id: '', closed: true } as unknown as Client
