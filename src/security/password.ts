// Password storage and comparison shared by MQTT authentication and the API's
// basic auth. Config files may hold a salted scrypt hash instead of the
// plain password, so a leaked ConfigMap does not leak credentials.
//
// Hash format (all fields in one string, so it fits a YAML scalar):
//   scrypt$<log2 N>$<r>$<p>$<salt, base64>$<key, base64>
import { randomBytes, scrypt, scryptSync, timingSafeEqual, createHash, createHmac } from 'node:crypto'
import { promisify } from 'node:util'

const scryptAsync = promisify(scrypt) as (password: Buffer, salt: Buffer, keylen: number, options: { N: number, r: number, p: number, maxmem: number }) => Promise<Buffer>

const PREFIX = 'scrypt$'
const KEY_LENGTH = 32
// N = 2^15, r = 8, p = 1: ~30 ms per check on a laptop core, the cost
// OWASP recommends for scrypt; memory 32 MiB is within scrypt's maxmem below.
const DEFAULT_LOG_N = 15
const DEFAULT_R = 8
const DEFAULT_P = 1
const MAX_MEM = 256 * 1024 * 1024

interface ParsedHash {
  logN: number
  r: number
  p: number
  salt: Buffer
  key: Buffer
}

export function isPasswordHash (value: string): boolean {
  return value.startsWith(PREFIX)
}

// Plain-text passwords from the config are kept only as an HMAC under a key
// that lives in this process and off the V8 heap (a Buffer's bytes are not
// part of a heap snapshot), so a snapshot or a dump of the config object
// shows neither the password nor anything a dictionary attack can use
// without that key. The NUL keeps a configured password from ever being
// mistaken for a protected one.
const PROTECTED_PREFIX = '\u0000hmac$'
const PROCESS_KEY = randomBytes(32)

function processDigest (value: Buffer | string): Buffer {
  return createHmac('sha256', PROCESS_KEY).update(value).digest()
}

/**
 * What a long-lived object may keep of a configured password: a scrypt hash
 * as it is, a plain password as an HMAC under the per-process key. Both are
 * accepted by verifyPassword.
 */
export function protectPassword (configured: string): string {
  if (isPasswordHash(configured) || configured.startsWith(PROTECTED_PREFIX)) return configured
  return PROTECTED_PREFIX + processDigest(configured).toString('base64')
}

/**
 * A stored value that costs a password check as much work as `like` does
 * and never matches: an unknown user is then refused after the same work
 * as a known one with a wrong password, so response times do not tell
 * which user names exist. For a hash, a random salt and key with the same
 * scrypt parameters (nothing is computed up front).
 */
export function decoyPassword (like: string | undefined): string {
  if (like !== undefined && isPasswordHash(like)) {
    const parsed = parsePasswordHash(like)
    if (typeof parsed !== 'string') {
      return `${PREFIX}${parsed.logN}$${parsed.r}$${parsed.p}$${randomBytes(parsed.salt.length).toString('base64')}$${randomBytes(parsed.key.length).toString('base64')}`
    }
  }
  return PROTECTED_PREFIX + randomBytes(32).toString('base64')
}

/** Parses a stored hash; returns an error message when it is malformed. */
export function parsePasswordHash (value: string): ParsedHash | string {
  const parts = value.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') {
    return 'expected scrypt$<log2 N>$<r>$<p>$<salt>$<key> (make one with `broker-ha hash-password`)'
  }
  const [, logN, r, p, salt, key] = parts.map((part, i) => (i >= 1 && i <= 3 ? Number(part) : part)) as [string, number, number, number, string, string]
  if (!Number.isInteger(logN) || logN < 10 || logN > 20) return 'log2 N must be an integer from 10 to 20'
  if (!Number.isInteger(r) || r < 1 || r > 32) return 'r must be an integer from 1 to 32'
  if (!Number.isInteger(p) || p < 1 || p > 16) return 'p must be an integer from 1 to 16'
  const saltBuf = Buffer.from(salt, 'base64')
  const keyBuf = Buffer.from(key, 'base64')
  if (saltBuf.length < 8) return 'salt must be at least 8 bytes (base64)'
  if (keyBuf.length < 16) return 'key must be at least 16 bytes (base64)'
  return { logN, r, p, salt: saltBuf, key: keyBuf }
}

export function hashPassword (password: string, logN = DEFAULT_LOG_N): string {
  const salt = randomBytes(16)
  const key = scryptSync(password, salt, KEY_LENGTH, { N: 2 ** logN, r: DEFAULT_R, p: DEFAULT_P, maxmem: MAX_MEM })
  return `${PREFIX}${logN}$${DEFAULT_R}$${DEFAULT_P}$${salt.toString('base64')}$${key.toString('base64')}`
}

/**
 * Checks a presented password against a stored one (plain or hashed) in time
 * that does not depend on where the two differ. Plain values are compared as
 * SHA-256 digests so that their lengths do not leak either.
 */
export async function verifyPassword (presented: string | Buffer, stored: string): Promise<boolean> {
  const given = typeof presented === 'string' ? Buffer.from(presented, 'utf8') : presented
  if (isPasswordHash(stored)) {
    const parsed = parsePasswordHash(stored)
    if (typeof parsed === 'string') return false
    // Asynchronous: scrypt is deliberately slow and must not block the event loop.
    const derived = await scryptAsync(given, parsed.salt, parsed.key.length, { N: 2 ** parsed.logN, r: parsed.r, p: parsed.p, maxmem: MAX_MEM })
    return timingSafeEqual(derived, parsed.key)
  }
  if (stored.startsWith(PROTECTED_PREFIX)) {
    const expected = Buffer.from(stored.slice(PROTECTED_PREFIX.length), 'base64')
    const actual = processDigest(given)
    return expected.length === actual.length && timingSafeEqual(actual, expected)
  }
  return constantTimeEqual(given, Buffer.from(stored, 'utf8'))
}

/** Constant-time equality for values of any length (both sides are digested first). */
export function constantTimeEqual (a: Buffer | string, b: Buffer | string): boolean {
  const da = createHash('sha256').update(a).digest()
  const db = createHash('sha256').update(b).digest()
  return timingSafeEqual(da, db)
}

/**
 * verifyPassword with a bounded memory of successful hash checks, for paths
 * where the same credentials come back often (a fleet reconnecting after a
 * node restart): each distinct correct password costs one scrypt, later
 * checks one HMAC. Concurrent checks of the same pair share one scrypt.
 * Failures are not remembered, so a changed config or a guess is always
 * verified for real. Keys are an HMAC (per-process key) of stored + presented,
 * so the memory holds no password and nothing reusable outside this process.
 */
export function cachedPasswordVerifier (options: { maxEntries?: number, verify?: typeof verifyPassword } = {}): ((presented: Buffer, stored: string) => Promise<boolean>) & { readonly size: number } {
  const maxEntries = options.maxEntries ?? 1024
  const verify = options.verify ?? verifyPassword
  const secret = randomBytes(32)
  const verified = new Map<string, true>() // insertion order = least recently used first
  const pending = new Map<string, Promise<boolean>>()

  const check = async (presented: Buffer, stored: string): Promise<boolean> => {
    // Plain passwords are as cheap to compare as a cache lookup.
    if (!isPasswordHash(stored)) return await verifyPassword(presented, stored)
    const key = createHmac('sha256', secret).update(stored).update('\0').update(presented).digest('base64')
    if (verified.has(key)) {
      verified.delete(key)
      verified.set(key, true)
      return true
    }
    let run = pending.get(key)
    if (run === undefined) {
      run = verify(presented, stored).then((ok) => {
        if (ok) {
          verified.set(key, true)
          if (verified.size > maxEntries) verified.delete(verified.keys().next().value!)
        }
        return ok
      }).finally(() => pending.delete(key))
      pending.set(key, run)
    }
    return await run
  }
  return Object.defineProperty(check, 'size', { get: () => verified.size }) as typeof check & { readonly size: number }
}
