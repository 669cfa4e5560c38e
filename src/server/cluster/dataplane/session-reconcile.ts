// Reconciling the sessions a restarted node read back from its disk with
// the copies its peers hold (docs/storage.md "On restart").
//
// A node killed alone and started again reads its persistent sessions back
// from disk (storage.ts). While it was down, the holder of each session's
// replica took it over (promotion.ts: on the death, or on seeing the new
// process at link-up), and that copy got everything published meanwhile.
// Both copies would be routed and queue every later message until the
// client comes back (then bestSession picks one), or until the session's
// expiry if it never does. So once the restarted node is linked to a peer:
//
//   restarted node A                       peer B
//   A -> B  sessions-held {clientIds}      its sessions read from disk and
//                                          not connected since
//   B: waits for any promotion of them under way, then
//   B -> A  sessions-newer {clientIds}     those B holds a copy of that wins
//                                          by session-transfer.ts's rule:
//                                          connected since (stamped), or
//                                          taken over from a dead node
//   A deletes its disk copies of them: routes, store, disk, replica.
//
// Only the disk copy ever yields, and only to a copy its peer holds at
// home: an unstamped disk copy ranks below a stamped or promoted copy, as in
// bestSession. Two disk copies (every node restarted at once) are left to
// the client's return, as before. A disk copy whose client is connecting
// here (its fetch decides) or connected is kept.
//
// Replicas on disk. A holder with storage keeps the replicas it holds for
// its peers (storage/replica-records.ts) and reads them back at start as
// unconfirmed: not offered to a fetch, since the home may have ended the
// session while the holder was down. Each carries its home's identity
// (its store's, or its process's without storage). A home, on every link
// that comes up, sends its snapshots for that holder and then a
// replicas-done marker with its identity. An unconfirmed replica of that
// home still unrefreshed then is:
//   - dropped when the identity is the one it was made under: the home
//     kept its state (its disk, or it is the same process) and no longer
//     holds the session with us as holder (it ended, moved, or is
//     replicated elsewhere);
//   - promoted when it differs: the home came back without its state (a
//     wiped disk, or no storage and a new process), so this is the
//     session's last copy;
//   - promoted when the home is gone for sure: it left, or it was declared
//     dead and its cluster port refuses connections (a death declared of a
//     slow or starting node promotes the home's other replicas, and is
//     undone when it answers; one of these may be of a session it ended).
import type { DataPlaneContext } from './context.js'
import { localClient, sendControl } from './context.js'
import type { Takeover } from './takeover.js'
import type { Promotion } from './promotion.js'
import type { ReplicaStore } from './replica-store.js'

export interface ReconcileHost {
  takeover: Takeover
  promotion: Promotion
  replicas: ReplicaStore
  /** This node's identity for its replicas (ReplicaSnapshot.home). */
  identity: () => string
  /** The client is connecting here (preConnect to CONNACK) or its session is arriving. */
  busy: (clientId: string) => boolean
  /** Deletes a session held here (session-moves.ts remove). */
  remove: (clientId: string) => Promise<void>
}

/** Client ids per sessions-held / sessions-newer message (about 64 bytes each at most in JSON for usual ids). */
const IDS_PER_MESSAGE = 5000

export class SessionReconcile {
  private readonly ctx: DataPlaneContext
  private readonly host: ReconcileHost
  /** Sessions read from disk at start whose client has not connected here since. */
  private readonly fromDisk = new Set<string>()
  /** Disk copies deleted here because a peer held a newer copy. */
  yielded = 0
  /** Replicas read from disk dropped because their home kept its state and did not refresh them. */
  replicasDropped = 0

  constructor (ctx: DataPlaneContext, host: ReconcileHost) {
    this.ctx = ctx
    this.host = host
  }

  /** Sessions read from this node's disk at start (before its links come up). */
  loaded (clientIds: Iterable<string>): void {
    for (const id of clientIds) this.fromDisk.add(id)
  }

  /** The client connected here, or a session was stored here from elsewhere: not a disk copy any more. */
  settled (clientId: string): void { this.fromDisk.delete(clientId) }

  /** Whether the session held here is a copy read from disk that nothing newer replaced since. */
  isDiskCopy (clientId: string): boolean {
    if (!this.fromDisk.has(clientId)) return false
    const s = this.host.takeover.stampOf(clientId)
    if (!this.ctx.store.hasSession(clientId) || s.wall !== 0 || s.logical !== 0) {
      this.fromDisk.delete(clientId)
      return false
    }
    return true
  }

  /** A peer's link came up: it is asked whether it holds newer copies of our disk copies. */
  linkUp (peer: string): void {
    if (this.fromDisk.size === 0) return
    const ids = [...this.fromDisk].filter((id) => this.isDiskCopy(id))
    for (let i = 0; i < ids.length; i += IDS_PER_MESSAGE) sendControl(this.ctx, peer, { kind: 'sessions-held', clientIds: ids.slice(i, i + IDS_PER_MESSAGE) })
  }

  /** A restarted peer holds these sessions from its disk: say which of them we hold a newer copy of. */
  async held (peer: string, clientIds: string[]): Promise<void> {
    const newer: string[] = []
    for (const clientId of clientIds) {
      // A replica of it being taken over here right now (the peer's restart was just seen): wait for it.
      const promoting = this.host.promotion.promoting.get(clientId)
      if (promoting !== undefined) await promoting
      if (this.winsOverDisk(clientId)) newer.push(clientId)
    }
    this.ctx.log.debug({ peer, asked: clientIds.length, newer: newer.length }, 'sessions a restarted peer read from disk: newer copies here')
    for (let i = 0; i < newer.length; i += IDS_PER_MESSAGE) sendControl(this.ctx, peer, { kind: 'sessions-newer', clientIds: newer.slice(i, i + IDS_PER_MESSAGE) })
  }

  /**
   * Whether the copy of a session at home here beats a peer's disk copy:
   * it was connected since this process started (stamped), or taken over
   * from a node believed dead (it holds what was published while that
   * node was down). A disk copy of our own does not.
   */
  private winsOverDisk (clientId: string): boolean {
    if (!this.ctx.store.hasSession(clientId) || this.isDiskCopy(clientId)) return false
    if (this.host.promotion.isPromoted(clientId)) return true
    const s = this.host.takeover.stampOf(clientId)
    return s.wall !== 0 || s.logical !== 0
  }

  /** Home side: a peer's link came up and its snapshots were queued (replication.peerUp): the marker follows them. */
  snapshotsSent (peer: string): void {
    // The replication sends this turn's operations at the end of the turn (a setImmediate queued before this one).
    setImmediate(() => sendControl(this.ctx, peer, { kind: 'replicas-done', home: this.host.identity() }))
  }

  /** Holder side: `peer` sent every snapshot it means us to hold: its replicas read from our disk and not refreshed are settled. */
  replicasDone (peer: string, home: string): void {
    const stale = this.host.replicas.unconfirmedOf(peer)
    if (stale.length === 0) return
    const drop: string[] = []
    const promote: string[] = []
    // No identity recorded (not written by this version): dropped, never brought back unasked.
    for (const r of stale) (r.home === undefined || r.home === home ? drop : promote).push(r.clientId)
    for (const id of drop) this.host.replicas.delete(id)
    this.replicasDropped += drop.length
    this.ctx.log.info({ peer, dropped: drop.length, promoted: promote.length }, promote.length === 0
      ? 'replicas read from disk settled with their home: it kept its state and no longer holds them here, dropped'
      : 'replicas read from disk settled with their home: it came back without its state (a new store, or a new process without one); those it did not refresh are taken over here')
    if (promote.length > 0) this.host.promotion.promote(peer, promote).catch((err: Error) => this.ctx.log.warn({ peer, err: err.message }, 'replicas read from disk not taken over'))
  }

  /** A home left, or died for sure (its cluster port refuses): its replicas read from our disk are the sessions' last copies. */
  homeGone (peer: string): void {
    const ids = this.host.replicas.unconfirmedOf(peer).map((r) => r.clientId)
    if (ids.length === 0) return
    this.ctx.log.info({ peer, replicas: ids.length }, 'replicas read from disk whose home is gone: taken over here')
    this.host.promotion.promote(peer, ids).catch((err: Error) => this.ctx.log.warn({ peer, err: err.message }, 'replicas read from disk not taken over'))
  }

  /** A peer holds newer copies of these sessions of ours from disk: ours go. */
  async newer (peer: string, clientIds: string[]): Promise<void> {
    let n = 0
    for (const clientId of clientIds) {
      if (!this.isDiskCopy(clientId)) continue
      // Its client is connecting or connected here: its fetch (or its connection) decides.
      if (this.host.busy(clientId) || localClient(this.ctx, clientId) !== undefined) continue
      this.fromDisk.delete(clientId)
      await this.host.remove(clientId)
      this.yielded++
      n++
      this.ctx.log.info({ client: clientId, peer }, 'session read from disk deleted: a peer holds a newer copy (taken over while this node was down, or connected since)')
    }
    if (n > 0) this.ctx.log.info({ peer, sessions: n }, 'sessions read from disk reconciled with a peer: its newer copies stay, ours went')
  }
}
