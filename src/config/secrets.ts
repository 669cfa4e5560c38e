// The secrets of a loaded config (the cluster key ring, api.user passwords,
// mqtt.auth passwords) are not kept as strings. Each becomes a getter over
// its bytes, XOR-masked, in a Buffer: a Buffer's bytes live outside the V8
// heap and are not part of a heap snapshot (/debug/pprof/heap), and the
// mask keeps them from showing as text in a core dump. Reading the key
// still gives the string, as before; the reader gets a fresh copy that is
// garbage once it has derived what it keeps (AES keys as Buffers, password
// HMACs or scrypt hashes: src/security/password.ts protectPassword). So a
// component must not keep the string itself in a long-lived object.
import { randomBytes } from 'node:crypto'
import type { Config } from './schema.js'

function seal (holder: object, key: string | number): void {
  const value = (holder as Record<string | number, unknown>)[key]
  if (typeof value !== 'string' || value === '') return
  const masked = Buffer.from(value, 'utf8')
  const pad = randomBytes(masked.length)
  for (let i = 0; i < masked.length; i++) masked[i]! ^= pad[i]!
  Object.defineProperty(holder, key, {
    enumerable: true,
    configurable: false,
    get: () => {
      const out = Buffer.allocUnsafe(masked.length)
      for (let i = 0; i < masked.length; i++) out[i] = masked[i]! ^ pad[i]!
      const text = out.toString('utf8')
      out.fill(0)
      return text
    }
  })
}

/**
 * Copies every string value of the config into a string of its own. The
 * YAML parser hands out slices of the file's text, and a V8 sliced string
 * keeps its whole parent alive: one long-lived value (the node name, a bind
 * address) would keep the config file, secrets and all, in the heap.
 */
function detachStrings (holder: Record<string | number, unknown>): void {
  for (const key of Object.keys(holder)) {
    const value = holder[key]
    if (typeof value === 'string') holder[key] = Buffer.from(value, 'utf8').toString('utf8')
    else if (typeof value === 'object' && value !== null) detachStrings(value as Record<string, unknown>)
  }
}

/**
 * Replaces every secret of `config` (before it is frozen) with a getter over
 * masked bytes, after detaching every string from the text it was parsed from.
 */
export function sealSecrets (config: Config): void {
  detachStrings(config as unknown as Record<string, unknown>)
  seal(config.cluster.config, 'secret_key')
  for (let i = 0; i < config.cluster.config.secondary_keys.length; i++) seal(config.cluster.config.secondary_keys, i)
  for (const name of Object.keys(config.api.user)) seal(config.api.user, name)
  for (const rule of config.mqtt.auth) seal(rule, 'password')
}
