// How a cluster key string becomes key bytes (cluster.config.secret_key and
// secondary_keys). AES takes 16, 24 or 32 bytes (AES-128/192/256):
// - a string of 16, 24 or 32 bytes (UTF-8) is the key itself, as in the seed
//   and memberlist (`openssl rand -hex 16` gives 32 characters: AES-256);
// - any other string must be base64 of 16, 24 or 32 bytes
//   (`openssl rand -base64 32` gives 44 characters: 32 random bytes, AES-256).
// The rule is checked in this order, so every node reads a key the same way.

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const LENGTHS = [16, 24, 32]

/** The key bytes of a configured key, or undefined when it is neither form. */
export function clusterKeyBytes (key: string): Buffer | undefined {
  const raw = Buffer.from(key, 'utf8')
  if (LENGTHS.includes(raw.length)) return raw
  if (key.length % 4 !== 0 || !BASE64.test(key)) return undefined
  const decoded = Buffer.from(key, 'base64')
  return LENGTHS.includes(decoded.length) ? decoded : undefined
}
