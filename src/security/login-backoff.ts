// Per-address backoff after failed logins (API basic auth and MQTT CONNECT).
// An address may fail FREE_FAILURES times in a row; each further failure
// shuts it out for a window that doubles from BASE_MS up to MAX_MS, during
// which its attempts are refused without checking any password. A success
// clears the address; an address that has not failed for FORGET_MS starts
// again from zero. Memory is bounded: at most `capacity` addresses are
// remembered, least recently failed first out, so a flood of distinct
// sources costs a fixed amount of memory (and the oldest of them lose their
// record, which only makes the backoff forget, never refuse more).
//
// A pure state machine: the caller passes the time, so tests need no clock.

/** The numbers, documented in docs/security.md. */
export const LOGIN_BACKOFF = Object.freeze({
  FREE_FAILURES: 5,
  BASE_MS: 1000,
  MAX_MS: 60_000,
  FORGET_MS: 10 * 60_000,
  CAPACITY: 10_000
})

interface Entry { failures: number, lastFailure: number, until: number }

export class LoginBackoff {
  private readonly entries = new Map<string, Entry>() // insertion order = least recently failed first
  private readonly capacity: number

  constructor (options: { capacity?: number } = {}) {
    this.capacity = options.capacity ?? LOGIN_BACKOFF.CAPACITY
  }

  /** Milliseconds this address must still wait before a login is checked; 0: go ahead. */
  blockedFor (address: string, now: number): number {
    const e = this.entries.get(address)
    if (e === undefined) return 0
    if (now - e.lastFailure > LOGIN_BACKOFF.FORGET_MS) {
      this.entries.delete(address)
      return 0
    }
    return Math.max(0, e.until - now)
  }

  failed (address: string, now: number): void {
    let e = this.entries.get(address)
    if (e !== undefined && now - e.lastFailure > LOGIN_BACKOFF.FORGET_MS) e = undefined
    this.entries.delete(address)
    const failures = (e?.failures ?? 0) + 1
    const over = failures - LOGIN_BACKOFF.FREE_FAILURES
    const until = over > 0 ? now + Math.min(LOGIN_BACKOFF.MAX_MS, LOGIN_BACKOFF.BASE_MS * 2 ** Math.min(over - 1, 30)) : 0
    this.entries.set(address, { failures, lastFailure: now, until })
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!)
  }

  succeeded (address: string): void {
    this.entries.delete(address)
  }

  get size (): number { return this.entries.size }
}
