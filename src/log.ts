// Structured logging (pino, fastify's logger): JSON by default, readable when
// attached to a terminal. One child logger per component.
import { writeSync } from 'node:fs'
import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { Config } from './config/index.js'

export type { Logger }

export function createLogger (config: Config['log'], isTTY = process.stderr.isTTY === true): Logger {
  const usePretty = config.format === 'pretty' || (config.format === 'auto' && isTTY)
  const options = { level: config.level, base: { pid: process.pid } }
  // Logs go to stderr so that stdout stays free for command output (--check-config).
  if (usePretty) return pino(options, prettyDestination(isTTY))
  return pino(options, pino.destination({ dest: 2, sync: false }))
}

/** Who speaks on a line that names no component: the node (or command) itself. */
export const ROOT_COMPONENT = 'broker-ha'

/**
 * `[time] LEVEL (component): message`, then the fields, for a person at a
 * terminal. pino-pretty's own prefix is `(name/pid)`: the pid says nothing
 * there, and `name` is a field only some lines carry (a member's name), so
 * prefixes differed from line to line. The component takes that place on
 * every line; a line's own `name` is shown as `node`. JSON output is left as
 * it is.
 */
function prettyDestination (colorize: boolean): { write: (line: string) => void } {
  const format = pretty.prettyFactory({ colorize, ignore: 'pid,hostname' })
  return {
    write: (line: string) => {
      const { component, name, ...rest } = JSON.parse(line) as Record<string, unknown>
      const shown = { ...rest, name: component ?? ROOT_COMPONENT, ...(name === undefined ? {} : { node: name }) }
      // Synchronous, as pino-pretty's own destination was (sync: true): a line
      // logged just before an exit is not lost.
      writeSync(2, format(shown))
    }
  }
}

/**
 * Logs at most one message per interval for a noisy condition (bad packets,
 * refused connections) and says how many were suppressed; the count itself
 * belongs in a metric.
 */
export function rateLimited (log: Logger, intervalMs = 10_000): (level: 'warn' | 'info' | 'error', obj: object, msg: string) => void {
  let last = 0
  let suppressed = 0
  return (level, obj, msg) => {
    const now = Date.now()
    if (now - last < intervalMs) {
      suppressed++
      return
    }
    last = now
    log[level]({ ...obj, suppressed }, msg)
    suppressed = 0
  }
}
