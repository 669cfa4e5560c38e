// Promotion: when a home node dies, the replicas held here for it become
// sessions of this node (stored, routed, replicated onward), and what the
// dead home never settled is rescued for them (rescue.ts). Their clients
// find them here, or fetch them from here, wherever they reconnect.
//
// Wills. A client connected on the dead node is owed its will, after
// min(Will Delay Interval, Session Expiry Interval) from the death, unless it
// connects anywhere first (a client-connected announcement cancels it). But
// a node declared dead may only be cut off: its clients may still be
// connected there (a partition), and a will published now would show an
// online device as offline (Home Assistant availability topics are wills).
// So a will is published at its due time only when the death is known:
// the node's cluster port refuses connections (nothing listens there: the
// process is gone), it came back as a new process, or it left. A node that
// is merely unreachable gets `cluster.partition_will_delay` more; if it
// answers again as the same process, its sessions here are dropped and its
// clients' wills with them (undo).
//
// A promoted session with a Session Expiry Interval expires here (its
// client was gone since the death, or its own disconnect before it).
import type { Client } from 'aedes'
import type { DataPlaneContext } from './context.js'
import { localClient, sendControl } from './context.js'
import type { SessionReplication } from './session-replication.js'
import { sessionExpiresAt, willDueAt, type ReplicaConnection, type TakenReplica } from './replica-store.js'
import type { TransferredPacket } from './session-transfer.js'
import type { Qos } from './retained-store.js'
import type { Rescue } from './rescue.js'

/** Replicas stored at once when a home dies. */
const PROMOTE_CONCURRENCY = 64

export interface PromotionHost {
  /** Stores a session taken over (session-moves.ts), replacing any older copy; resolves when stored. */
  store: (clientId: string, from: string, replica: TakenReplica) => Promise<boolean>
  /** Removes a session held here. */
  remove: (clientId: string) => Promise<void>
  /** Holds delivery to the sessions until the rescues arrived (delivery-gates.ts). */
  hold: (clientIds: string[], until: Promise<unknown>) => void
  /** The client is connecting here and fetching its session right now (session-moves.ts). */
  arriving: (clientId: string) => boolean
}

interface OwedWill {
  will: TransferredPacket
  dueAt: number
  peer: string
  /** When its node became unreachable (this time): partition_will_delay counts from here. */
  since: number
  timer: NodeJS.Timeout | undefined
}

export class Promotion {
  private readonly ctx: DataPlaneContext
  private readonly replication: SessionReplication
  private readonly rescue: Rescue
  private readonly host: PromotionHost
  /**
   * Sessions taken over from a peer believed dead, until their client
   * connects somewhere: if that peer was only cut off, it still holds them,
   * and its copy wins.
   */
  private readonly promotedFrom = new Map<string, string>()
  /** Replicas being promoted, by client id: a session request for one waits until it is stored. */
  readonly promoting = new Map<string, Promise<void>>()
  private readonly wills = new Map<string, OwedWill>()
  private readonly expiries = new Map<string, NodeJS.Timeout>()
  /** Peers known to be down (refused connections, restarted, left): their wills need no extra wait. */
  private readonly confirmed = new Set<string>()
  /** Peers whose promotion is under way, and whether they came back (undo) meanwhile. */
  private readonly underway = new Map<string, { back: boolean }>()
  /** Clients seen connected while their replica was being promoted: no will is owed for them. */
  private readonly seenWhilePromoting = new Set<string>()
  private stopped = false

  constructor (ctx: DataPlaneContext, replication: SessionReplication, rescue: Rescue, host: PromotionHost) {
    this.ctx = ctx
    this.replication = replication
    this.rescue = rescue
    this.host = host
  }

  stop (): void {
    this.stopped = true
    for (const w of this.wills.values()) clearTimeout(w.timer)
    for (const t of this.expiries.values()) clearTimeout(t)
    this.wills.clear()
    this.expiries.clear()
  }

  isPromoted (clientId: string): boolean { return this.promotedFrom.has(clientId) }
  forget (clientId: string): void { this.promotedFrom.delete(clientId) }

  /** The peer is known to be down: wills owed for its clients are due at their time. */
  confirmDown (peer: string): void {
    if (this.confirmed.has(peer)) return
    this.confirmed.add(peer)
    for (const [clientId, w] of this.wills) if (w.peer === peer) this.arm(clientId, w)
  }

  /** The peer is a member again: a restart or a return is decided by its link (restarted / back). */
  alive (peer: string): void { this.confirmed.delete(peer) }

  /**
   * The membership hears the peer again, before its link says whether it is
   * the same process (undo) or a new one (confirmDown). Its clients may be
   * connected there: their wills wait, and if it is declared dead again
   * before its link is back, partition_will_delay counts from then.
   */
  reachable (peer: string): void {
    if (this.confirmed.has(peer)) return
    for (const w of this.wills.values()) {
      if (w.peer !== peer || w.timer === undefined) continue
      clearTimeout(w.timer)
      w.timer = undefined
    }
  }

  /** Wills that waited while their peer was reachable: it is unreachable again, from now. */
  private unreachableAgain (peer: string): void {
    const now = Date.now()
    for (const [clientId, w] of this.wills) {
      if (w.peer !== peer || w.timer !== undefined) continue
      w.since = now
      this.arm(clientId, w)
    }
  }

  /**
   * A home node died (or left without handing its sessions off, or
   * restarted): its replicas here become sessions of this node.
   */
  async promote (peer: string, only?: readonly string[]): Promise<void> {
    this.unreachableAgain(peer)
    // `only`: replicas read back from disk whose home came back without their
    // sessions, or is gone for sure (session-reconcile.ts). Otherwise those
    // are left out: a home merely declared dead (it may be slow, or starting)
    // may have ended them, and its word settles them.
    const replicas = this.replication.replicas
    const ids = only === undefined ? replicas.ownedBy(peer).filter((id) => !replicas.isUnconfirmed(id)) : [...only]
    if (ids.length === 0 || this.stopped) return
    let done!: () => void
    const storing = new Promise<void>((resolve) => { done = resolve })
    for (const id of ids) this.promoting.set(id, storing)
    // Delivery to them waits for the rescues, from before they are stored:
    // their client may be connecting right now.
    let rescued!: (p: Promise<unknown>) => void
    const rescues = new Promise<unknown>((resolve) => { rescued = resolve })
    this.host.hold(ids, rescues.then(async (p) => await p))
    const now = Date.now()
    const taken: string[] = []
    const run = { back: false }
    this.underway.set(peer, run)
    try {
      // Several at once: storing one waits for its new replica holder, a
      // round trip that took 12-68 s for 500 sessions one after the other on a
      // starved node, while their clients' fetches waited for it.
      const one = async (clientId: string): Promise<void> => {
        // Only if it is still that peer's: while the ones before it were
        // stored, a snapshot from the session's new home may have replaced it
        // (its client reconnected elsewhere); that replica is not ours to take.
        const replica = this.replication.replicas.take(clientId, peer)
        if (replica === undefined) return
        this.replication.countPromoted(1)
        const ended: ReplicaConnection = { connected: false, disconnectedAt: replica.connected ? now : replica.disconnectedAt, expiry: replica.expiry }
        // Connected here already (it reconnected before the death was declared):
        // its session is live here. One still fetching its session finds
        // this one stored (the replica it would have fetched is taken).
        if (localClient(this.ctx, clientId) !== undefined && !this.host.arriving(clientId)) {
          this.ctx.log.debug({ client: clientId, peer }, 'replica not promoted: its client is connected here')
          return
        }
        // Marked before it is stored: its replica, made while storing, says it yields to the original's.
        // Not a replica its home came back without (`only`): there is no original to yield to.
        if (only === undefined) this.promotedFrom.set(clientId, peer)
        const stored = await this.host.store(clientId, `replica of ${peer}`, replica)
        // The peer answered again while this one was stored (storing waits
        // for its new replica holder): it was cut off and its copy stands,
        // so this one goes, as undo() did for those stored before.
        if (run.back) {
          if (stored) this.dropReturned(peer, clientId)
          return
        }
        if (stored) {
          taken.push(clientId)
        } else {
          if (this.promotedFrom.get(clientId) === peer) this.promotedFrom.delete(clientId)
          this.ctx.log.debug({ client: clientId, peer }, 'replica not promoted: empty, or the session here is newer')
        }
        // Its client connected meanwhile (here or on a peer): nothing is owed for it.
        if (this.seenWhilePromoting.delete(clientId)) return
        this.replication.setConnection(clientId, ended)
        const willAt = willDueAt(replica, now)
        if (willAt !== undefined && replica.will !== null) {
          this.replication.setWill(clientId, replica.will)
          this.oweWill(clientId, replica.will, willAt, peer)
        }
        const expiresAt = sessionExpiresAt(replica, now)
        if (expiresAt !== undefined) this.armExpiry(clientId, expiresAt - now)
      }
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < ids.length) {
          const clientId = ids[next++]!
          await one(clientId).catch((err: Error) => this.ctx.warn('warn', { client: clientId, peer, err: err.message }, 'replica of a dead node not taken over'))
        }
      }
      await Promise.all(Array.from({ length: Math.min(PROMOTE_CONCURRENCY, ids.length) }, worker))
      rescued(taken.length > 0 ? this.rescue.request(peer, taken, true) : Promise.resolve())
    } finally {
      rescued(Promise.resolve())
      for (const id of ids) {
        if (this.promoting.get(id) === storing) this.promoting.delete(id)
        if (!this.promoting.has(id)) this.seenWhilePromoting.delete(id)
      }
      if (this.underway.get(peer) === run) this.underway.delete(peer)
      done()
    }
    if (run.back) return
    this.ctx.log.warn({ peer, sessions: taken.length, replicas: ids.length }, 'node gone: took over the sessions it held whose replicas were here')
  }

  /**
   * A peer this node took sessions over from is back as the same process: it
   * was cut off, not dead, and still holds them. The copies taken over here
   * that no client resumed since are dropped (their client finds the
   * original there), their wills with them.
   */
  undo (peer: string): void {
    const run = this.underway.get(peer)
    if (run !== undefined) run.back = true
    this.ctx.log.debug({ peer, promoting: run !== undefined, wills: [...this.wills.values()].filter((w) => w.peer === peer).length }, 'peer back as the same process: what was taken over from it is given back')
    for (const [clientId, w] of [...this.wills]) {
      if (w.peer !== peer) continue
      clearTimeout(w.timer)
      this.wills.delete(clientId)
      this.replication.willDeleted(clientId)
    }
    const lost: string[] = []
    for (const [clientId, from] of [...this.promotedFrom]) {
      if (from !== peer) continue
      this.promotedFrom.delete(clientId)
      if (localClient(this.ctx, clientId) !== undefined) continue
      lost.push(clientId)
      this.removeReturned(peer, clientId)
    }
    // Their replicas were spent on the promotion: the home sends them again.
    if (lost.length > 0) sendControl(this.ctx, peer, { kind: 'replica-lost', clientIds: lost })
  }

  /** A session promoted after its peer came back (undo ran while it was stored). */
  private dropReturned (peer: string, clientId: string): void {
    // undo() may have seen it marked, and removed it before it was stored: again.
    if (this.promotedFrom.get(clientId) === peer) this.promotedFrom.delete(clientId)
    if (localClient(this.ctx, clientId) !== undefined) return
    this.removeReturned(peer, clientId)
    sendControl(this.ctx, peer, { kind: 'replica-lost', clientIds: [clientId] })
  }

  private removeReturned (peer: string, clientId: string): void {
    this.ctx.log.info({ client: clientId, peer }, 'peer back after being declared dead: session taken over from it dropped here, its copy stays')
    this.host.remove(clientId).catch((err: Error) => this.ctx.warn('warn', { client: clientId, err: err.message }, 'session taken over not dropped'))
  }

  /**
   * The client connected, here or on a peer: a will owed for it is
   * cancelled, its session no longer expires. (Connected here, aedes
   * replaced the will already: delWill, then putWill of the new one.)
   */
  clientSeen (clientId: string, here: boolean): void {
    if (this.promoting.has(clientId)) this.seenWhilePromoting.add(clientId)
    const w = this.wills.get(clientId)
    if (w !== undefined) {
      clearTimeout(w.timer)
      this.wills.delete(clientId)
      if (!here) this.replication.willDeleted(clientId)
    }
    const e = this.expiries.get(clientId)
    if (e !== undefined) {
      clearTimeout(e)
      this.expiries.delete(clientId)
    }
    if (here) this.promotedFrom.delete(clientId)
  }

  private oweWill (clientId: string, will: TransferredPacket, dueAt: number, peer: string): void {
    const prior = this.wills.get(clientId)
    if (prior !== undefined) clearTimeout(prior.timer)
    const w: OwedWill = { will, dueAt, peer, since: Date.now(), timer: undefined }
    this.wills.set(clientId, w)
    this.arm(clientId, w)
  }

  private arm (clientId: string, w: OwedWill): void {
    clearTimeout(w.timer)
    const extra = this.confirmed.has(w.peer) ? 0 : this.ctx.config.cluster.partition_will_delay
    const at = Math.max(w.dueAt, w.since + extra)
    w.timer = setTimeout(() => this.publishWill(clientId, w), Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)))
    w.timer.unref()
  }

  private publishWill (clientId: string, w: OwedWill): void {
    if (this.wills.get(clientId) !== w) return
    this.wills.delete(clientId)
    if (this.stopped || localClient(this.ctx, clientId) !== undefined) return
    this.replication.willDeleted(clientId)
    this.replication.countWill()
    this.ctx.log.info({ client: clientId, topic: w.will.topic, peer: w.peer }, 'publishing the will of a client whose node died')
    publishOrphanWill(this.ctx, w.will)
    // A client with nothing but a will (a clean session) leaves nothing behind.
    if (!this.ctx.store.hasSession(clientId)) this.replication.ended(clientId)
  }

  private armExpiry (clientId: string, delayMs: number): void {
    clearTimeout(this.expiries.get(clientId))
    // setTimeout holds at most ~24.8 days; a longer expiry is re-armed when it fires early.
    const step = Math.min(Math.max(0, delayMs), 2 ** 31 - 1)
    const due = Date.now() + Math.max(0, delayMs)
    const timer = setTimeout(() => {
      this.expiries.delete(clientId)
      if (Date.now() < due) { this.armExpiry(clientId, due - Date.now()); return }
      if (this.stopped || localClient(this.ctx, clientId) !== undefined) return
      this.ctx.log.info({ client: clientId }, 'session of a client whose node died expired')
      this.host.remove(clientId).catch((err: Error) => this.ctx.warn('warn', { client: clientId, err: err.message }, 'expired session not removed'))
    }, step)
    timer.unref()
    this.expiries.set(clientId, timer)
  }
}

/**
 * Publishes the will of a client whose node died, as its node would have: to
 * local subscribers and to peers. Its Will Delay Interval stays behind, as
 * for every will: aedes.publish's 'forwarded-properties' layer takes it out
 * (MQTT 5 section 3.1.3.2.2).
 */
export function publishOrphanWill (ctx: DataPlaneContext, will: TransferredPacket): void {
  const packet = {
    cmd: 'publish' as const,
    topic: will.topic ?? '',
    payload: will.payload ?? Buffer.alloc(0),
    qos: (will.qos ?? 0) as Qos,
    retain: will.retain === true,
    dup: false,
    ...(will.properties === undefined ? {} : { properties: will.properties })
  }
  // Published as the will of a client that is gone: aedes stamps it here and
  // the `published` layer forwards it like any client message.
  const aedes = ctx.aedes as unknown as { publish: (p: object, client: Client | null, done: (err?: Error) => void) => void }
  aedes.publish(packet, ORPHAN_WILL_CLIENT, (err) => {
    if (err !== undefined && err !== null) ctx.warn('warn', { topic: packet.topic, err: err.message }, 'will of a client whose node died not published')
  })
}

/**
 * The client a will of a dead node's client is published for: aedes'
 * `published` seam forwards only messages with a client (peers' messages
 * have none), and a will is a client's message.
 */
const ORPHAN_WILL_CLIENT = { id: '', closed: true } as unknown as Client
