// aedes' message emitter (mqemitter 7.1.0, the version aedes 2.0.0-beta.1
// brings), built here and handed to aedes as its `mq` option, with one
// two changes: its backlog is a FIFO whose shift costs O(1), and it does not
// recurse through its backlog.
//
// mqemitter runs at most `concurrency` messages at a time through the
// subscriptions and keeps the rest in two arrays, taking the next one with
// Array.prototype.shift. V8 shifts a small array in place, but an array past
// ~16k elements lives in large-object space and every shift moves all of it:
// O(backlog) per message. With 100 publishers into one subscriber the
// backlog is tens of thousands of messages, and a --cpu-prof of that run
// spent 68-76% of the broker's time in mqemitter's `released` (the inlined
// shift), for 7,000 msg/s and a p99 of 14 s (docs/benchmarks.md).
//
// How many messages may run at once: aedes' default is 100. A delivery now
// completes on the next turn of the event loop (delivery.ts), so this is also
// how many messages go out per turn. 200 against 1,000, side by side with
// mosquitto (3 rounds each): fan-in QoS 0 57k against 47k msg/s, and fan-in
// QoS 1 p99 0.4-0.6 s against 2.8 s (with 1,000, 100 publishers' messages
// wait behind each other's larger batches).
import { createRequire } from 'node:module'
import type { MQEmitter } from 'mqemitter'

const require = createRequire(import.meta.url)
const mqemitter = require('mqemitter') as (opts: { concurrency: number, matchEmptyLevels: boolean }) => MQEmitter

/** Messages mqemitter runs through the subscriptions at once. */
export const EMITTER_CONCURRENCY = 200

/** A queue with amortised O(1) push and shift, and the array members mqemitter uses (push, shift, length). */
export class Fifo<T> {
  private items: Array<T | undefined> = []
  private head = 0

  get length (): number { return this.items.length - this.head }

  push (item: T): number {
    this.items.push(item)
    return this.length
  }

  shift (): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    // Drop the consumed front once it is most of the array: each element is moved at most once more.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }
}

/** mqemitter's private backlog (mqemitter.js: emit pushes, released shifts) and the step that runs one message. */
interface EmitterBacklog {
  _messageQueue: unknown
  _messageCallbacks: unknown
  _do: (message: unknown, callback: unknown) => unknown
}

/** The emitter aedes gets as `mq`: mqemitter with matchEmptyLevels [MQTT-4.7.1-3], as aedes builds it, and a Fifo backlog. */
export function messageEmitter (concurrency = EMITTER_CONCURRENCY): MQEmitter {
  const mq = mqemitter({ concurrency, matchEmptyLevels: true })
  const backlog = mq as unknown as EmitterBacklog
  if (!Array.isArray(backlog._messageQueue) || !Array.isArray(backlog._messageCallbacks)) {
    throw new Error('mqemitter changed: no _messageQueue/_messageCallbacks arrays (message-emitter.ts)')
  }
  backlog._messageQueue = new Fifo()
  backlog._messageCallbacks = new Fifo()
  // A message that no subscription matches completes synchronously, and
  // mqemitter then takes the next one from the backlog inside that call:
  // a backlog of such messages recursed once per message until the stack
  // overflowed (bare aedes crashed so in the fan-in row, RangeError in
  // qlobber's match, once its subscriber was gone). Messages started from
  // inside a running one wait in order and the outermost call runs them.
  const run = backlog._do
  const pending = new Fifo<[unknown, unknown]>()
  let running = false
  backlog._do = function (message: unknown, callback: unknown): unknown {
    if (running) {
      pending.push([message, callback])
      return this
    }
    running = true
    try {
      run.call(this, message, callback)
      for (let next = pending.shift(); next !== undefined; next = pending.shift()) run.call(this, next[0], next[1])
    } finally {
      running = false
    }
    return this
  }
  return mq
}
