// A fake clock for the membership state machine: timers fire only when the
// test advances time, in due order, with promise callbacks flushed between
// them so async handlers (exchanges) run as they would on a real loop.
import type { Clock, TimerHandle } from '../../../../src/server/cluster/membership/clock.js'

interface Timer { id: number, due: number, fn: () => void }

export class FakeClock implements Clock {
  private time = 1_700_000_000_000
  private nextId = 1
  private timers: Timer[] = []

  now (): number { return this.time }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    const t = { id: this.nextId++, due: this.time + Math.max(0, ms), fn }
    this.timers.push(t)
    return { id: t.id }
  }

  clearTimeout (handle: TimerHandle | undefined): void {
    if (handle === undefined) return
    this.timers = this.timers.filter((t) => t.id !== handle.id)
  }

  get pending (): number { return this.timers.length }

  /** Runs every timer due within `ms`, in order. */
  async advance (ms: number): Promise<void> {
    const target = this.time + ms
    await flush()
    for (;;) {
      let next: Timer | undefined
      for (const t of this.timers) if (t.due <= target && (next === undefined || t.due < next.due || (t.due === next.due && t.id < next.id))) next = t
      if (next === undefined) break
      this.timers = this.timers.filter((t) => t !== next)
      this.time = next.due
      next.fn()
      await flush()
    }
    this.time = target
  }

  /** Advances in steps until `condition` holds or `limit` ms passed; returns the fake time it took. */
  async until (condition: () => boolean, limit: number, step = 10): Promise<number> {
    const start = this.time
    while (!condition()) {
      if (this.time - start >= limit) throw new Error(`condition not met within ${limit} fake ms`)
      await this.advance(step)
    }
    return this.time - start
  }
}

async function flush (): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}
