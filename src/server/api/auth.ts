// HTTP basic auth for /api, /proxy and /debug (seed: `api.user`). Passwords
// may be plain or scrypt hashes (src/security/password.ts); both compare in
// constant time. A scrypt check costs tens of milliseconds, and tools like the
// admin TUI poll every second, so successful checks are remembered in a
// bounded cache keyed by a digest of the credentials (the plain password is
// never kept).
import { createHash } from 'node:crypto'
import { verifyPassword, constantTimeEqual } from '../../security/password.js'

/** Credentials from an `Authorization: Basic ...` header, or undefined when absent or malformed. */
export function parseBasicAuth (header: string | undefined): { user: string, password: string } | undefined {
  if (header === undefined) return undefined
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)
  if (match === null) return undefined
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

// Enough for every operator and tool of a cluster; evicting the oldest keeps
// a flood of distinct valid logins from growing memory.
const CACHE_LIMIT = 256

export class BasicAuth {
  private users: ReadonlyMap<string, string>
  private readonly verified = new Set<string>()

  constructor (users: Record<string, string>) {
    this.users = new Map(Object.entries(users))
  }

  /** A config reload's api.user: remembered logins go, so a removed or changed password stops working at once. */
  replace (users: Record<string, string>): void {
    this.users = new Map(Object.entries(users))
    this.verified.clear()
  }

  get enabled (): boolean {
    return this.users.size > 0
  }

  /** True when the header carries a configured user and its password. */
  async check (header: string | undefined): Promise<boolean> {
    if (!this.enabled) return true
    const creds = parseBasicAuth(header)
    if (creds === undefined) return false
    const stored = this.users.get(creds.user)
    if (stored === undefined) {
      // Same work as a plain-password check, so an unknown user does not answer faster.
      constantTimeEqual(creds.password, '\u0000unknown-user')
      return false
    }
    const key = createHash('sha256').update(creds.user).update('\u0000').update(creds.password).update('\u0000').update(stored).digest('base64')
    if (this.verified.has(key)) return true
    if (!await verifyPassword(creds.password, stored)) return false
    if (this.verified.size >= CACHE_LIMIT) this.verified.delete(this.verified.values().next().value!)
    this.verified.add(key)
    return true
  }
}
