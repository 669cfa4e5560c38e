// Waiting for a condition with a deadline: the only way tests wait for a
// cluster or a client. No fixed sleeps.
import { setTimeout as sleep } from 'node:timers/promises'

export async function waitFor<T> (
  condition: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  { timeout = 10_000, interval = 25, message = 'condition' }: { timeout?: number, interval?: number, message?: string } = {}
): Promise<T> {
  const deadline = Date.now() + timeout
  let lastError: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value !== undefined && value !== false && value !== null) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${lastError === undefined ? '' : `: ${String(lastError)}`}`)
    }
    await sleep(interval)
  }
}
