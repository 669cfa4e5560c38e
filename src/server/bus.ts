// The in-process event bus (seed "Event bus"): named channels, named bounded
// subscribers. Publishing never blocks and never throws: a subscriber whose
// buffer is full loses the event, and the loss is counted. Nothing that must
// not be lost (QoS 1/2 delivery) may depend on it.

/** Channel names are public through /api/sse; document new ones in docs/http-api.md (POST /api/sse). */
export const CHANNELS = ['cluster:message_to', 'cluster:message_from', 'cluster:new_member'] as const
export type Channel = (typeof CHANNELS)[number]

export interface BusEvent {
  channel: Channel
  data: unknown
}

export interface Subscription {
  readonly name: string
  readonly channels: ReadonlySet<Channel>
  readonly size: number
  /** Events dropped because this subscriber's buffer was full. */
  readonly dropped: number
  /** Resolves with the next event, or undefined once the subscription is closed. */
  next (): Promise<BusEvent | undefined>
  /** Takes whatever is buffered without waiting. */
  drain (): BusEvent[]
  close (): void
}

class BoundedSubscription implements Subscription {
  readonly name: string
  readonly channels: ReadonlySet<Channel>
  readonly size: number
  dropped = 0
  private readonly queue: BusEvent[] = []
  private waiter: ((event: BusEvent | undefined) => void) | undefined
  private closed = false
  private readonly onClose: (sub: BoundedSubscription) => void

  constructor (name: string, channels: Channel[], size: number, onClose: (sub: BoundedSubscription) => void) {
    this.name = name
    this.channels = new Set(channels)
    this.size = size
    this.onClose = onClose
  }

  /** Returns false when the event was dropped. */
  offer (event: BusEvent): boolean {
    if (this.closed) return true
    if (this.waiter !== undefined) {
      const waiter = this.waiter
      this.waiter = undefined
      waiter(event)
      return true
    }
    if (this.queue.length >= this.size) {
      this.dropped++
      return false
    }
    this.queue.push(event)
    return true
  }

  next (): Promise<BusEvent | undefined> {
    const event = this.queue.shift()
    if (event !== undefined || this.closed) return Promise.resolve(event)
    return new Promise((resolve) => { this.waiter = resolve })
  }

  drain (): BusEvent[] {
    return this.queue.splice(0, this.queue.length)
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.queue.length = 0
    this.waiter?.(undefined)
    this.waiter = undefined
    this.onClose(this)
  }
}

export class Bus {
  private readonly subscribers = new Map<Channel, Set<BoundedSubscription>>()
  /** Events dropped per channel across all subscribers (exported as a metric). */
  readonly dropped = new Map<Channel, number>()
  readonly published = new Map<Channel, number>()

  constructor () {
    for (const channel of CHANNELS) {
      this.subscribers.set(channel, new Set())
      this.dropped.set(channel, 0)
      this.published.set(channel, 0)
    }
  }

  /** True when somebody listens on the channel: lets hot paths skip building events. */
  hasSubscribers (channel: Channel): boolean {
    return this.subscribers.get(channel)!.size > 0
  }

  publish (channel: Channel, data: unknown): void {
    this.published.set(channel, this.published.get(channel)! + 1)
    const subs = this.subscribers.get(channel)!
    if (subs.size === 0) return
    const event = { channel, data }
    for (const sub of subs) {
      if (!sub.offer(event)) this.dropped.set(channel, this.dropped.get(channel)! + 1)
    }
  }

  subscribe (name: string, channels: readonly Channel[], size: number): Subscription {
    const sub = new BoundedSubscription(name, [...channels], Math.max(1, size), (s) => {
      for (const channel of s.channels) this.subscribers.get(channel)!.delete(s)
    })
    for (const channel of channels) this.subscribers.get(channel)!.add(sub)
    return sub
  }

  subscriberCount (): number {
    const all = new Set<BoundedSubscription>()
    for (const subs of this.subscribers.values()) for (const s of subs) all.add(s)
    return all.size
  }
}

export function isChannel (name: string): name is Channel {
  return (CHANNELS as readonly string[]).includes(name)
}
