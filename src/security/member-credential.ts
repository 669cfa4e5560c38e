// How members of a cluster call each other's HTTP API (/proxy fan-out,
// client/stop and client/inflight on the member that has the client)
// without the operator's credentials: a credential derived from the cluster
// key. HKDF-SHA256 over the key with its own label gives a key used for
// nothing else (not for the cluster links' encryption); each request then
// carries `x-broker-ha-member: v1 <ms> <HMAC(method, path, ms)>`, accepted
// within MAX_SKEW_MS of the receiver's clock, so a recorded header is only
// good for the same method and path for a minute. Every key of the ring
// (secret_key and secondary_keys) is accepted, so rotation works as for the
// links; the first one signs. Only derived keys are kept (Buffers: their
// bytes are not in a heap snapshot).
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { clusterKeyBytes } from '../config/cluster-key.js'

export const MEMBER_HEADER = 'x-broker-ha-member'
const LABEL = 'broker-ha/api-member-credential/v1'
const SALT = 'broker-ha'
export const MAX_SKEW_MS = 60_000

export class MemberCredential {
  private readonly keys: Buffer[]

  /**
   * `keys`: the cluster key ring (empty strings skipped; each read as the
   * links read it, config/cluster-key.ts); none: no credential. `label`: the
   * cluster label, bound in as for the links, so two clusters that share a
   * key do not accept each other's calls.
   */
  constructor (keys: string[], label = '') {
    this.keys = keys.filter((k) => k.length > 0).map((k) => {
      const bytes = clusterKeyBytes(k) ?? Buffer.from(k, 'utf8')
      return Buffer.from(hkdfSync('sha256', bytes, SALT, `${LABEL}\n${label}`, 32))
    })
  }

  get enabled (): boolean { return this.keys.length > 0 }

  /** The header value for one request; undefined without a cluster key. */
  sign (method: string, path: string, now = Date.now()): string | undefined {
    const key = this.keys[0]
    if (key === undefined) return undefined
    return `v1 ${now} ${mac(key, method, path, now).toString('base64url')}`
  }

  /** True when `header` was made by a holder of one of our keys for this method and path, recently. */
  verify (header: string | undefined, method: string, path: string, now = Date.now()): boolean {
    if (header === undefined || this.keys.length === 0) return false
    const m = /^v1 (\d{1,16}) ([A-Za-z0-9_-]{43})$/.exec(header)
    if (m === null) return false
    const at = Number(m[1])
    if (Math.abs(now - at) > MAX_SKEW_MS) return false
    const given = Buffer.from(m[2]!, 'base64url')
    let ok = false
    // Every key is tried (no early exit), so timing does not tell which matched.
    for (const key of this.keys) {
      const expected = mac(key, method, path, at)
      if (expected.length === given.length && timingSafeEqual(expected, given)) ok = true
    }
    return ok
  }
}

function mac (key: Buffer, method: string, path: string, at: number): Buffer {
  return createHmac('sha256', key).update(`${method.toUpperCase()}\n${path}\n${at}`).digest()
}
