// Retransmit-limited broadcast queue (memberlist queue.go). Membership
// updates ride on outgoing probes, acks and gossip packets; each is sent
// retransmit_mult * ceil(log10(N + 1)) times, least-sent first, so news
// spreads epidemically in O(log N) rounds without flooding. A newer update
// about the same member replaces the older one still waiting.
import { encodedSize, type Message } from './codec.js'

interface Entry {
  /** The member the update is about: a newer update about it invalidates this one. */
  name: string
  message: Message
  size: number
  transmits: number
  /** Insertion order: among equally-sent entries, newer ones go first. */
  id: number
  /** Resolved once the update has been sent as often as required (used by leave). */
  onDone: (() => void) | undefined
}

export function retransmitLimit (retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1))
}

export class BroadcastQueue {
  private entries: Entry[] = []
  private nextId = 0
  private readonly retransmitMult: number
  private readonly numNodes: () => number
  /** Bounds memory if a huge cluster churns: oldest, most-sent updates go first. */
  private readonly maxEntries: number

  constructor (retransmitMult: number, numNodes: () => number, maxEntries = 1024) {
    this.retransmitMult = retransmitMult
    this.numNodes = numNodes
    this.maxEntries = maxEntries
  }

  get length (): number { return this.entries.length }

  queue (name: string, message: Message, onDone?: () => void): void {
    for (const old of this.entries) if (old.name === name) old.onDone?.()
    this.entries = this.entries.filter((e) => e.name !== name)
    this.entries.push({ name, message, size: encodedSize(message), transmits: 0, id: this.nextId++, onDone })
    if (this.entries.length > this.maxEntries) {
      this.sort()
      for (const dropped of this.entries.splice(this.maxEntries)) dropped.onDone?.()
    }
  }

  /**
   * Takes messages that fit in `limit` bytes (each also costs `overhead`),
   * counting a transmission for each and retiring those sent often enough.
   */
  getBroadcasts (overhead: number, limit: number): Message[] {
    if (this.entries.length === 0) return []
    this.sort()
    const max = retransmitLimit(this.retransmitMult, this.numNodes())
    const out: Message[] = []
    let used = 0
    const keep: Entry[] = []
    for (const e of this.entries) {
      if (used + overhead + e.size > limit) {
        keep.push(e)
        continue
      }
      used += overhead + e.size
      out.push(e.message)
      e.transmits++
      if (e.transmits >= max) e.onDone?.()
      else keep.push(e)
    }
    this.entries = keep
    return out
  }

  /** Drops everything (on shutdown), releasing waiters. */
  reset (): void {
    for (const e of this.entries) e.onDone?.()
    this.entries = []
  }

  private sort (): void {
    this.entries.sort((a, b) => a.transmits - b.transmits || b.id - a.id)
  }
}
