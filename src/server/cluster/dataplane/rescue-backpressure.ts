// Backpressure on publishes for a peer declared dead, once the publishes kept
// for whoever takes its sessions over (forwarding.ts keepForRescue) reached
// their bound (cluster.dead_peer_buffer_bytes).
//
// Such a publish is not acknowledged while no copy of it is kept for the dead
// peer's sessions: it waits here until something changed for that peer (the
// takeover of its sessions progressed, it came back, its link was dropped),
// and the caller decides again; or until its deadline, when the caller
// refuses it (PublishRefusedError: no acknowledgement, see publish-acks.ts).
// The wait is what slows the publisher: aedes reads a client's socket again
// only when the packets of its last read are done, so a waiting publish stops
// its connection's reads and TCP pushes back on the client, without a
// disconnect. The memory held by waiting publishes is what the publishers had
// in flight (one read per connection at most): counted here (count, bytes)
// and exported as gauges.
import { BrokerHaError } from '../../../errors.js'

/** A QoS 1/2 publish that no node keeps for the sessions it is for: not acknowledged. */
export class PublishRefusedError extends BrokerHaError {
  constructor (message: string) {
    super('PUBLISH_REFUSED', message)
  }
}

export function isPublishRefused (err: unknown): err is PublishRefusedError {
  return err instanceof BrokerHaError && err.code === 'PUBLISH_REFUSED'
}

interface Waiter { bytes: number, wake: (woken: boolean) => void }

export class RescueBackpressure {
  private readonly waiters = new Map<string, Set<Waiter>>()
  /** Publishes waiting now, and their bytes (gauges). */
  waiting = 0
  waitingBytes = 0
  /** Publishes that waited at least once (counter). */
  waited = 0
  /** Publishes refused after their deadline (counter; broker_cluster_publishes_refused_total). */
  refused = 0

  /**
   * Resolves true when `wake(peer)` is called, false after `timeoutMs`
   * (0 or less: false at once). `bytes` is what the waiting publish holds.
   */
  async wait (peer: string, bytes: number, timeoutMs: number): Promise<boolean> {
    if (timeoutMs <= 0) return false
    return await new Promise<boolean>((resolve) => {
      let set = this.waiters.get(peer)
      if (set === undefined) { set = new Set(); this.waiters.set(peer, set) }
      const waiters = set
      const w: Waiter = {
        bytes,
        wake: (woken) => {
          clearTimeout(timer)
          if (!waiters.delete(w)) return
          if (waiters.size === 0 && this.waiters.get(peer) === waiters) this.waiters.delete(peer)
          this.waiting--
          this.waitingBytes -= bytes
          resolve(woken)
        }
      }
      const timer = setTimeout(() => w.wake(false), timeoutMs)
      timer.unref()
      waiters.add(w)
      this.waiting++
      this.waitingBytes += bytes
    })
  }

  /** Something changed for `peer`: every publish waiting for it decides again, in the order they came. */
  wake (peer: string): void {
    const set = this.waiters.get(peer)
    if (set === undefined) return
    for (const w of [...set]) w.wake(true)
  }

  /** Wakes every waiter (the node stops). */
  wakeAll (): void {
    for (const peer of [...this.waiters.keys()]) this.wake(peer)
  }
}
