// Acknowledgements waiting for a peer to settle a publish (forwarding.ts
// held()): released when the peer settles it, when the peer goes (declared
// dead, left, restarted), or after cluster.ack_timeout.
//
// A busy publisher has thousands of these at once, one per message, so they
// cost one record each: per peer, a queue in the order they were made
// (every wait on a peer has the same timeout, so the oldest expires first)
// and one timer, for the oldest wait still open.

/** Why an acknowledgement went without a second node's confirmation. */
export type UnreplicatedReason = 'peer-gone' | 'timeout'

/** A peer link (peer-link.ts), as far as a wait needs it. */
export interface HeldSource {
  readonly peerName: string
  /** Calls `cb` once: true when the peer settled `seq`, false when it is gone first. */
  onHeld: (seq: number, cb: (held: boolean) => void) => void
}

interface Wait { resolve: () => void, deadline: number, open: boolean }

/** `queue[head]` is the oldest open wait: close() moves `head` past the closed ones. */
class PeerWaits {
  readonly queue: Wait[] = []
  head = 0
  timer: NodeJS.Timeout | undefined
}

export class HeldWaits {
  readonly unreplicated: Record<UnreplicatedReason, number> = { 'peer-gone': 0, timeout: 0 }
  private readonly peers = new Map<string, PeerWaits>()

  /**
   * @param timeoutMs cluster.ack_timeout
   * @param timedOut told once per expiry with how many waits it released (logged by the caller)
   */
  constructor (private readonly timeoutMs: number, private readonly timedOut: (peer: string, count: number) => void) {}

  /**
   * A wait for held message `seq` on `link`, resolved by the first of: the
   * link's verdict (held: the peer settled it; not held: the peer is gone),
   * peerGone, or the timeout. Never rejects.
   */
  wait (link: HeldSource, seq: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const peer = link.peerName
      let waits = this.peers.get(peer)
      if (waits === undefined) { waits = new PeerWaits(); this.peers.set(peer, waits) }
      const w: Wait = { resolve, deadline: Date.now() + this.timeoutMs, open: true }
      waits.queue.push(w)
      const owner = waits
      link.onHeld(seq, (held) => { this.close(owner, w, held ? undefined : 'peer-gone') })
      if (w.open && owner.timer === undefined) this.arm(peer, owner)
    })
  }

  /** The peer was declared dead, left, or restarted: nothing waits for it any more. */
  peerGone (peer: string): void {
    const waits = this.peers.get(peer)
    if (waits === undefined) return
    this.peers.delete(peer)
    clearTimeout(waits.timer)
    const left = waits.queue.slice(waits.head)
    waits.queue.length = 0
    waits.head = 0
    for (const w of left) this.close(waits, w, 'peer-gone')
  }

  private close (waits: PeerWaits, w: Wait, reason: UnreplicatedReason | undefined): void {
    if (!w.open) return
    w.open = false
    if (reason !== undefined) this.unreplicated[reason]++
    w.resolve()
    // Settlements come mostly in order: what is closed at the front goes.
    while (waits.head < waits.queue.length && !waits.queue[waits.head]!.open) waits.head++
    if (waits.head === waits.queue.length) {
      waits.queue.length = 0
      waits.head = 0
    } else if (waits.head > 1024 && waits.head * 2 > waits.queue.length) {
      waits.queue.splice(0, waits.head)
      waits.head = 0
    }
  }

  /** One timer per peer, for its oldest open wait. */
  private arm (peer: string, waits: PeerWaits): void {
    const oldest = waits.queue[waits.head]
    if (oldest === undefined) return
    waits.timer = setTimeout(() => { this.expire(peer, waits) }, Math.max(0, oldest.deadline - Date.now()))
    waits.timer.unref()
  }

  private expire (peer: string, waits: PeerWaits): void {
    waits.timer = undefined
    const now = Date.now()
    let expired = 0
    for (let w = waits.queue[waits.head]; w !== undefined && w.deadline <= now; w = waits.queue[waits.head]) {
      expired++
      this.close(waits, w, 'timeout')
    }
    if (waits.head < waits.queue.length) this.arm(peer, waits)
    else if (this.peers.get(peer) === waits) this.peers.delete(peer)
    if (expired > 0) this.timedOut(peer, expired)
  }
}
