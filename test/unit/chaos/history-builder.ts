// Hand-written histories for the checker tests: a tiny cluster of two nodes,
// one publisher and one subscriber on node a, and helpers to add events at
// chosen times.
import type { HistoryEvent, NewEvent, Qos } from '../../../src/chaos/history.js'
import { defaultScope } from '../../../src/chaos/invariants.js'
import { DEFAULT_CHECK_OPTIONS, type CheckOptions } from '../../../src/chaos/checker.js'

export class Builder {
  readonly events: HistoryEvent[] = []
  t = 0

  at (t: number): this { this.t = t; return this }
  add (e: NewEvent): this { this.events.push({ ...e, t: this.t } as HistoryEvent); return this }

  /** Run start, both nodes up and seeing each other, a subscriber on a (filter chaos/d/#) and a publisher on a. */
  static clean (): Builder {
    const b = new Builder()
    b.add({ type: 'run-start', seed: 1, nodes: ['a', 'b'], faults: [], durationMs: 10_000 })
    b.add({ type: 'node', node: 'a', state: 'up' }).add({ type: 'node', node: 'b', state: 'up' })
    b.add({ type: 'view', node: 'a', members: { a: 'alive', b: 'alive' } })
    b.add({ type: 'view', node: 'b', members: { a: 'alive', b: 'alive' } })
    b.add({ type: 'connect', client: 'sub-1', conn: 's1', role: 'subscriber', node: 'a', protocol: 5, clean: true, sessionPresent: false })
    b.add({ type: 'subscribed', client: 'sub-1', conn: 's1', node: 'a', filter: 'chaos/d/#' })
    b.add({ type: 'connect', client: 'pub-1', conn: 'p1', role: 'publisher', node: 'a', protocol: 4, clean: true, sessionPresent: false })
    return b.at(1000)
  }

  /** A publish acknowledged at the current time, delivered `deliveredAfter` ms later (null: never). */
  message (seq: number, qos: Qos, deliveredAfter: number | null = 5, topic = `chaos/d/pub-1/q${qos}`): this {
    const base = { client: 'pub-1', conn: 'p1', node: 'a', topic, seq, qos }
    this.add({ type: 'publish', ...base }).add({ type: 'ack', ...base })
    if (deliveredAfter !== null) {
      const t = this.t
      this.at(t + deliveredAfter).deliver(seq, qos, topic).at(t)
    }
    return this.at(this.t + 100)
  }

  deliver (seq: number, qos: Qos, topic = `chaos/d/pub-1/q${qos}`, conn = 's1'): this {
    return this.add({ type: 'deliver', client: 'sub-1', conn, node: 'a', topic, publisher: 'pub-1', pubConn: 'p1', seq, qos, dup: false })
  }

  end (): HistoryEvent[] {
    this.add({ type: 'disconnect', client: 'sub-1', conn: 's1', node: 'a', reason: 'run-end' })
    this.add({ type: 'run-end' })
    return [...this.events].sort((x, y) => x.t - y.t)
  }
}

export function options (crossNode = false, sessions = false): CheckOptions {
  return { ...DEFAULT_CHECK_OPTIONS, scope: defaultScope(crossNode, sessions), convergenceBoundMs: 5000 }
}
