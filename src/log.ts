// Structured logging (pino, fastify's logger): JSON by default, readable when
// attached to a terminal. One child logger per component.
import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { Config } from './config/index.js'

export type { Logger }

export function createLogger (config: Config['log'], isTTY = process.stderr.isTTY === true): Logger {
  const usePretty = config.format === 'pretty' || (config.format === 'auto' && isTTY)
  const options = { level: config.level, base: { pid: process.pid } }
  // Logs go to stderr so that stdout stays free for command output (--check-config).
  if (usePretty) return pino(options, pretty({ destination: 2, colorize: isTTY, sync: true }))
  return pino(options, pino.destination({ dest: 2, sync: false }))
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
