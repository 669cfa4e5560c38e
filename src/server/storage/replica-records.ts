// Replicas on disk (storage.dir): the copies this node holds of its peers'
// sessions (replica-store.ts), so that a session survives the loss of its
// home's disk followed by the restart of its replica holder.
//
// Every replica changed in an event-loop turn is written whole, once, as
// `p\0<clientId>` with its home (owner name and identity), connection state,
// stamp, subscriptions, queue, ledger, incoming QoS 2 PUBLISHes and will;
// a replica dropped, taken (a fetch, a promotion) or replaced is erased. At
// start they are read back as unconfirmed replicas: what becomes of each is
// settled with its home (session-reconcile.ts).
import type { Stamp } from '../cluster/dataplane/hlc.js'
import type { ReplicaStore, TakenReplica } from '../cluster/dataplane/replica-store.js'
import { checkIncoming, checkLedger, checkPacket, checkSubscription, checkWill, type TransferredPacket, type TransferredSubscription } from '../cluster/dataplane/session-transfer.js'
import type { DurableStore } from './durable-store.js'

export const REPLICA = 'p\u0000'

/** A replica on disk. */
export interface ReplicaRecord {
  /** The home's member name, and identity (ReplicaSnapshot.home). */
  o: string
  h?: string
  /** The session's stamp: [wall, logical, node]. */
  s: [number, number, string]
  c: boolean
  d?: number
  e?: number
  subscriptions: TransferredSubscription[]
  queue: TransferredPacket[]
  ledger: string[]
  incoming: TransferredPacket[]
  will: TransferredPacket | null
}

export function replicaRecord (r: TakenReplica): ReplicaRecord {
  const { stamp, subscriptions, queue, ledger, incoming } = r.session
  const out: ReplicaRecord = { o: r.owner, s: [stamp.wall, stamp.logical, stamp.node], c: r.connected, subscriptions, queue, ledger, incoming, will: r.will }
  if (r.home !== undefined) out.h = r.home
  if (r.disconnectedAt !== undefined) out.d = r.disconnectedAt
  if (r.expiry !== undefined) out.e = r.expiry
  return out
}

/** A replica record read back, checked; throws (with a reason) on anything malformed. */
export function takenReplica (v: unknown): TakenReplica {
  const r = v as ReplicaRecord
  if (typeof r !== 'object' || r === null || typeof r.o !== 'string' || typeof r.c !== 'boolean') throw new Error('bad replica record')
  if (!Array.isArray(r.s) || r.s.length !== 3 || typeof r.s[0] !== 'number' || typeof r.s[1] !== 'number' || typeof r.s[2] !== 'string') throw new Error('bad replica stamp')
  if (!Array.isArray(r.subscriptions) || !Array.isArray(r.queue)) throw new Error('bad replica record')
  r.subscriptions.forEach(checkSubscription)
  r.queue.forEach(checkPacket)
  // Written before wills were stored without their stamp fields: those are left out here too.
  if (r.will !== null) r.will = checkWill(r.will)
  for (const k of ['d', 'e'] as const) if (r[k] !== undefined && typeof r[k] !== 'number') throw new Error(`bad replica record ${k}`)
  if (r.h !== undefined && typeof r.h !== 'string') throw new Error('bad replica home')
  const stamp: Stamp = { wall: r.s[0], logical: r.s[1], node: r.s[2] }
  return {
    owner: r.o,
    home: r.h,
    connected: r.c,
    disconnectedAt: r.d,
    expiry: r.e,
    will: r.will,
    session: { stamp, subscriptions: r.subscriptions, queue: r.queue, ledger: checkLedger(r.ledger), incoming: checkIncoming(r.incoming), rescueFrom: r.o }
  }
}

export class StoredReplicas {
  private readonly replicas: ReplicaStore
  /** Replicas changed this turn. */
  private readonly dirty = new Set<string>()
  private listening = false

  constructor (replicas: ReplicaStore) {
    this.replicas = replicas
  }

  /** Starts writing changes (after load); `changed` schedules the turn's flush. */
  listen (changed: () => void): void {
    this.listening = true
    this.replicas.changed = (clientId) => {
      this.dirty.add(clientId)
      changed()
    }
  }

  stop (): void {
    if (!this.listening) return
    this.listening = false
    this.replicas.changed = undefined
  }

  /** Every replica held, written again (after a failed commit). */
  rewriteAll (clientIds: Iterable<string>): void { for (const id of clientIds) this.dirty.add(id) }

  /** Writes this turn's changed replicas. */
  flush (store: DurableStore): void {
    for (const clientId of this.dirty) {
      const r = this.replicas.peek(clientId)
      if (r === undefined) void store.remove(REPLICA + clientId)
      else void store.put(REPLICA + clientId, replicaRecord(r))
    }
    this.dirty.clear()
  }

  /** Reads the replicas back (unconfirmed); returns how many, and calls `bad` for a record that does not check. */
  load (store: DurableStore, bad: (key: string, err: unknown) => void): number {
    let n = 0
    for (const { key, value } of store.range(REPLICA)) {
      try {
        this.replicas.restore(key.slice(REPLICA.length), takenReplica(value))
        n++
      } catch (err) {
        bad(key, err)
      }
    }
    return n
  }
}
