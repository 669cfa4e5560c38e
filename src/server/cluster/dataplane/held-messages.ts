// Held messages on a peer link (peer-link.ts; the HELD record in
// frame-codec.ts): reliable messages the receiver settles when it is done
// with them (a publish: queued for its sessions and, where the cluster asks,
// held by a second node), not just when they arrive.
//
// Sender side (HeldMessages): each held message is kept, with its payload,
// until a HELD report covers it, ACK or not. That is what a publisher's
// acknowledgement waits for (waiters resolve true), and what a node taking
// over the receiver's sessions asks for when the receiver died first
// (list()). A receiver that restarted settles nothing of its predecessor's:
// orphan() hands those messages over and resolves their waiters false.
// Acknowledged but unsettled messages still count against the link's memory
// bound (settlingBytes); the unacknowledged ones are counted with the unacked.
//
// Receiver side (Settlements): the held messages delivered and not yet
// settled, and those settled above the lowest unsettled one, so a HELD
// report says "all up to upTo, and these above it" in one bounded record.
import { DATA_HEADER, MAX_HELD_LIST } from './frame-codec.js'

type Waiter = (held: boolean) => void

/** `waiters`: none, one, or several (most held messages have one: the publisher's acknowledgement). */
interface Hold { seq: number, payload: Buffer, acked: boolean, waiters: Waiter | Waiter[] | undefined }

function addWaiter (h: Hold, w: Waiter): void {
  if (h.waiters === undefined) h.waiters = w
  else if (typeof h.waiters === 'function') h.waiters = [h.waiters, w]
  else h.waiters.push(w)
}

function tell (h: Hold, held: boolean): void {
  const w = h.waiters
  if (w === undefined) return
  h.waiters = undefined
  if (typeof w === 'function') w(held)
  else for (const f of w) f(held)
}

/** The sender's held messages not yet settled by the peer, in sequence order. */
export class HeldMessages {
  private readonly holds = new Map<number, Hold>()
  private settling = 0

  /** Bytes of held messages acknowledged but not yet settled (the unacknowledged ones count in unackedBytes). */
  get settlingBytes (): number { return this.settling }

  get size (): number { return this.holds.size }

  add (seq: number, payload: Buffer): void {
    this.holds.set(seq, { seq, payload, acked: false, waiters: undefined })
  }

  /** Held message `seq` was acknowledged: it now counts in settlingBytes until settled. */
  acked (seq: number): void {
    const h = this.holds.get(seq)
    if (h === undefined) return
    h.acked = true
    this.settling += h.payload.length + DATA_HEADER
  }

  /** Calls `cb` once `seq` is settled (true) or orphaned or stopped (false); false (and never calls it) when `seq` is not held. */
  onSettled (seq: number, cb: Waiter): boolean {
    const h = this.holds.get(seq)
    if (h === undefined) return false
    addWaiter(h, cb)
    return true
  }

  /** Settlement of every message held up to `seq`, oldest first (as onSettled). */
  whenSettledUpTo (seq: number): Array<Promise<boolean>> {
    const waits: Array<Promise<boolean>> = []
    for (const h of this.holds.values()) {
      if (h.seq > seq) break
      waits.push(new Promise((resolve) => { addWaiter(h, resolve) }))
    }
    return waits
  }

  /** Oldest first. */
  list (): Array<{ seq: number, payload: Buffer }> {
    return [...this.holds.values()].map((h) => ({ seq: h.seq, payload: h.payload }))
  }

  /** The peer settled every held message up to `upTo` and those in `seqs`. */
  settled (upTo: number, seqs: number[]): void {
    for (const [seq, h] of this.holds) {
      if (seq > upTo) break
      this.release(h)
    }
    for (const seq of seqs) {
      const h = this.holds.get(seq)
      if (h !== undefined) this.release(h)
    }
  }

  /** The peer restarted: every held message is forgotten and returned, oldest first; none will be settled. */
  orphan (): Array<{ seq: number, payload: Buffer }> {
    const orphans = [...this.holds.values()]
    this.holds.clear()
    this.settling = 0
    for (const h of orphans) tell(h, false)
    return orphans.map((h) => ({ seq: h.seq, payload: h.payload }))
  }

  /** The link stopped: every waiter is told no. */
  stop (): void {
    const holds = [...this.holds.values()]
    this.holds.clear()
    this.settling = 0
    for (const h of holds) tell(h, false)
  }

  private release (h: Hold): void {
    this.holds.delete(h.seq)
    if (h.acked) this.settling -= h.payload.length + DATA_HEADER
    tell(h, true)
  }
}

/** The receiver's view of the peer's held messages: what the next HELD record reports. */
export class Settlements {
  /** Held messages delivered and not yet settled, and the ones settled while an earlier one is not. */
  private readonly unsettled = new Set<number>()
  private readonly settledAbove = new Set<number>()

  /** In increasing order (peer-link.ts drops a sequence number it delivered already). */
  delivered (seq: number): void {
    this.unsettled.add(seq)
  }

  /** Marks `seq` settled; false when it was not delivered unsettled (settled already, or another incarnation's). */
  settle (seq: number): boolean {
    if (!this.unsettled.delete(seq)) return false
    const min = this.lowestUnsettled()
    if (seq > min) this.settledAbove.add(seq)
    else for (const s of this.settledAbove) if (s < min) this.settledAbove.delete(s)
    return true
  }

  /** A new sender incarnation: its sequence numbers start again. */
  reset (): void {
    this.unsettled.clear()
    this.settledAbove.clear()
  }

  /**
   * What this side settled: all up to the lowest unsettled one (or up to
   * `delivered` when none is), and at most MAX_HELD_LIST of those above it.
   */
  report (delivered: number): { upTo: number, seqs: number[] } {
    const min = this.lowestUnsettled()
    const upTo = min === Infinity ? delivered : min - 1
    const seqs = [...this.settledAbove].filter((s) => s > upTo).slice(0, MAX_HELD_LIST)
    return { upTo, seqs }
  }

  /** The first one: messages are delivered in sequence order, and a Set keeps insertion order. */
  private lowestUnsettled (): number {
    for (const s of this.unsettled) return s
    return Infinity
  }
}
