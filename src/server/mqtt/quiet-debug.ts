// mqtt-packet logs through the `debug` package some twenty times per packet
// it parses or writes (parser.js, writeToStream.js). A disabled debug
// function still gathers its arguments into an array (a rest parameter) and
// reads its `enabled` getter before returning: about 1 KB of garbage per
// message on a node that forwards it, and a tenth of a cross-node QoS 1
// load's throughput (docs/benchmarks.md).
//
// quietPacketDebug(), called before mqtt-packet loads, puts in the debug
// package's place (the copy mqtt-packet loads) a factory that hands
// mqtt-packet's namespaces a function doing nothing,
// unless DEBUG enables them when the process starts (DEBUG=mqtt-packet:*
// still traces every packet). Every other namespace gets the real debug.
// Enabling mqtt-packet's namespaces later, with debug.enable(), has no effect.
import { createRequire } from 'node:module'

type DebugFactory = ((namespace: string) => unknown) & { enabled: (namespace: string) => boolean }

const PACKET_NAMESPACE = 'mqtt-packet:'
const QUIET = Symbol.for('broker-ha.quiet-debug')

/** What mqtt-packet's disabled namespaces get: it only ever calls them. */
function silent (): void {}
silent.enabled = false

/**
 * Installs the factory; returns false when it cannot (debug not found where
 * mqtt-packet would load it, or mqtt-packet already loaded: too late).
 */
export function quietPacketDebug (): boolean {
  const require = createRequire(import.meta.url)
  let debugPath: string
  let packetPath: string
  try {
    packetPath = require.resolve('mqtt-packet')
    debugPath = createRequire(packetPath).resolve('debug')
  } catch {
    return false
  }
  const real = require(debugPath) as DebugFactory & { [QUIET]?: true }
  if (real[QUIET] === true) return true
  const entry = require.cache[debugPath]
  if (entry === undefined || require.cache[packetPath] !== undefined) return false
  const quiet = Object.assign((namespace: string) => {
    return namespace.startsWith(PACKET_NAMESPACE) && !real.enabled(namespace) ? silent : real(namespace)
  }, real, { [QUIET]: true as const })
  entry.exports = quiet
  return true
}

/** For tests: the function a quieted namespace gets. */
export const silentDebug: unknown = silent
