// HTTP basic auth for /api, /proxy and /debug (seed: `api.user`). Passwords
// may be plain or scrypt hashes (src/security/password.ts); both compare in
// constant time. A scrypt check costs tens of milliseconds, and tools like the
// admin TUI poll every second, so successful checks are remembered in a
// bounded cache keyed by a digest of the credentials (the plain password is
// never kept).
import { cachedPasswordVerifier, decoyPassword, isPasswordHash, protectPassword } from '../../security/password.js'

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

export class BasicAuth {
  private users: ReadonlyMap<string, string> = new Map()
  /** What an unknown user name is checked against (password.ts decoyPassword). */
  private decoy = ''
  /**
   * Remembers successful hash checks (256 entries, least recently used out)
   * under an HMAC with a per-process key: the memory holds no password and
   * nothing a dictionary attack could use without that key.
   */
  private verify = cachedPasswordVerifier({ maxEntries: 256 })

  /** Plain passwords are kept only as protected digests (password.ts protectPassword). */
  constructor (users: Record<string, string>) {
    this.replace(users)
  }

  /** A config reload's api.user: remembered logins go, so a removed or changed password stops working at once. */
  replace (users: Record<string, string>): void {
    this.users = new Map(Object.entries(users).map(([name, password]) => [name, protectPassword(password)]))
    this.decoy = decoyPassword([...this.users.values()].find(isPasswordHash))
    this.verify = cachedPasswordVerifier({ maxEntries: 256 })
  }

  get enabled (): boolean {
    return this.users.size > 0
  }

  /**
   * True when the header carries a configured user and its password. An
   * unknown user name costs the same work as a wrong password (a check
   * against a decoy like the configured hashes), so the time to answer does
   * not tell which user names exist.
   */
  async check (header: string | undefined): Promise<boolean> {
    if (!this.enabled) return true
    const creds = parseBasicAuth(header)
    if (creds === undefined) return false
    const stored = this.users.get(creds.user)
    const presented = Buffer.from(creds.password, 'utf8')
    if (stored === undefined) {
      await this.verify(presented, this.decoy)
      return false
    }
    return await this.verify(presented, stored)
  }
}
