// Delivery gates: a session that arrived here (moved, handed off, taken
// over) starts receiving only once what it was owed is in its queue, so
// nothing reaches its client out of order. The MQTT server asks gate()
// before a session's sender starts (its deliveryGate).
//
// What a gate waits for (hold()): the peers' barriers for a moved session
// (barrier()), or the rescues for sessions taken over from a dead node
// (promotion.ts, rescue.ts); several holds on one session add up. Each hold
// is bounded by MOVE_SETTLE_MS: a peer that never answers delays delivery,
// never stops it.
//
// Barriers (barrier-request/-done). When a session moved here from its old
// home, every up peer is asked to confirm that nothing it sent the old home
// is unsettled any more. A peer answers once the old home settled
// everything it had been sent; the old home settles a message for the
// session only once its late copy is held here (session-moves.ts). So when
// every peer answered (or its link dropped for good), every late copy is in
// the queue, in its publisher's order.
import { randomUUID } from 'node:crypto'
import type { DataPlaneContext } from './context.js'
import { sendControl } from './context.js'
import type { PeerLink } from './peer-link.js'

/** Longest a session's delivery waits for what holds it (see the top of the file). */
export const MOVE_SETTLE_MS = 1000

export class DeliveryGates {
  private readonly ctx: DataPlaneContext
  /** Sessions whose delivery waits (moved here, taken over): released when settled. */
  private readonly gates = new Map<string, Promise<void>>()
  /** Barrier rounds this node waits on, by id. */
  private readonly barriers = new Map<string, { waiting: Set<string>, done: () => void }>()
  /** Moves whose barriers all answered, and holds that timed out (broker_cluster_moves_settled_total{by}). */
  readonly settled = { barriers: 0, timeout: 0 }

  constructor (ctx: DataPlaneContext) {
    this.ctx = ctx
  }

  /** For the MQTT server: resolves when a session that just arrived may start receiving. */
  gate (clientId: string): Promise<void> | undefined {
    return this.gates.get(clientId)
  }

  /** Delivery to these sessions waits for `until` (bounded by MOVE_SETTLE_MS). */
  hold (clientIds: string[], until: Promise<unknown>): void {
    let timer: NodeJS.Timeout | undefined
    const bounded = Promise.race([
      until.then(() => {}, () => {}),
      new Promise<void>((resolve) => { timer = setTimeout(() => { this.settled.timeout++; resolve() }, MOVE_SETTLE_MS); timer.unref() })
    ]).finally(() => clearTimeout(timer))
    for (const id of clientIds) {
      const prior = this.gates.get(id)
      const gate: Promise<void> = prior === undefined ? bounded : Promise.all([prior, bounded]).then(() => {})
      this.gates.set(id, gate)
      void gate.then(() => { if (this.gates.get(id) === gate) this.gates.delete(id) })
    }
  }

  /** Asks every up peer to confirm nothing is on its way to `from` any more; resolves when all did (or left). */
  barrier (clientId: string, from: string): Promise<void> {
    const id = randomUUID()
    const waiting = new Set(this.ctx.links.upPeers())
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.barriers.delete(id)
        this.settled.barriers++
        resolve()
      }
      if (waiting.size === 0) { done(); return }
      this.barriers.set(id, { waiting, done })
      for (const peer of waiting) sendControl(this.ctx, peer, { kind: 'barrier-request', id, from })
      this.ctx.log.debug({ client: clientId, from, peers: waiting.size }, 'moved session waits for what is still on its way to its old home')
    })
  }

  /** A peer asks whether anything we sent `from` is unsettled: answered once it is not. */
  async barrierRequested (link: PeerLink, id: string, from: string): Promise<void> {
    const toOld = from === this.ctx.name ? undefined : this.ctx.links.get(from)
    if (toOld !== undefined && toOld.state !== 'stopped') await toOld.whenAllHeld(toOld.lastQueuedSeq)
    sendControl(this.ctx, link.peerName, { kind: 'barrier-done', id })
  }

  barrierDone (peer: string, id: string): void {
    const b = this.barriers.get(id)
    if (b === undefined) return
    b.waiting.delete(peer)
    if (b.waiting.size === 0) b.done()
  }

  /** A link dropped for good: its peer's barrier answers are not waited for. */
  peerGone (peer: string): void {
    for (const b of this.barriers.values()) b.waiting.delete(peer)
    for (const [id, b] of this.barriers) if (b.waiting.size === 0) { this.barriers.delete(id); b.done() }
  }
}
