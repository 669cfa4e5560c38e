// At every CONNECT, aedes replays the session's stored messages with
// stream.pipeline(persistence.outgoingStream(client), through(...), done)
// (lib/handlers/connect.js, emptyQueue). broker-ha never has anything for it
// to replay: the session sender (session-sender.ts) sends a stored session's
// queue, so the stream is always empty. The pipeline still costs about 10 KB
// of short-lived objects per connect (an AbortController, an AbortError with
// its stack, end-of-stream listeners on both streams), a quarter of what a
// connect allocates, and a few ticks before the client counts as connected.
// aedes pipes the same stream once more when a clean client goes
// (lib/client.js, emptyOutgoingQueue); the session store drops that queue
// whole itself (persistence.ts, cleanSubscriptions).
//
// skipEmptyReplay() puts in stream.pipeline's place a function that answers
// at once, on the next tick, for the one stream NOTHING_TO_REPLAY, and hands
// every other call to the real pipeline unchanged. aedes imports pipeline
// from 'stream' as an ES module; syncBuiltinESMExports() carries the change
// to that binding. emptyReplay() gives NOTHING_TO_REPLAY only while this is
// stream.pipeline: otherwise a fresh empty stream, which any pipeline ends.
import stream, { Readable } from 'node:stream'
import { syncBuiltinESMExports } from 'node:module'
import { promisify } from 'node:util'

const SKIPPING = Symbol.for('broker-ha.skip-empty-replay')

/** A stream that ends at its first read (Readable.from([]) took an async iterator and more ticks). */
const empty = (): Readable => new Readable({ objectMode: true, read () { this.push(null) } })

/** The stream the skipping pipeline answers for: never read. */
const NOTHING_TO_REPLAY = empty()

type Pipeline = ((...args: unknown[]) => unknown) & { [SKIPPING]?: true, [promisify.custom]?: unknown }

const skipping = (): boolean => (stream.pipeline as unknown as Pipeline)[SKIPPING] === true

/** The stream for aedes' replay at CONNECT when it has nothing to replay. */
export function emptyReplay (): Readable { return skipping() ? NOTHING_TO_REPLAY : empty() }

/** Installs the pipeline that skips NOTHING_TO_REPLAY; false when stream.pipeline cannot be replaced. */
export function skipEmptyReplay (): boolean {
  if (skipping()) return true
  const real = stream.pipeline as unknown as Pipeline
  const skipper: Pipeline = function (this: unknown, ...args: unknown[]): unknown {
    if (args[0] !== NOTHING_TO_REPLAY) return real.apply(this, args)
    const done = args[args.length - 1]
    if (typeof done === 'function') process.nextTick(done as () => void)
    return args[args.length - 2]
  }
  skipper[SKIPPING] = true
  skipper[promisify.custom] = real[promisify.custom]
  try {
    stream.pipeline = skipper as unknown as typeof stream.pipeline
    syncBuiltinESMExports()
  } catch {
    return false
  }
  return skipping()
}
