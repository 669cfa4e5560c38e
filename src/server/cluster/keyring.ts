// Encryption and authentication of every cluster packet and stream
// (memberlist security.go + keyring.go). AES-GCM with a 16, 24 or 32 byte key
// (AES-128/192/256; how a configured string becomes key bytes:
// src/config/cluster-key.ts). The first key encrypts; every key in the ring
// is tried for decryption, so a key can be rotated without downtime: add the
// new key as secondary everywhere, make it primary everywhere, then drop the
// old one.
//
// Sealed layout:  mode (1) | nonce (12) | ciphertext | tag (16)
// Plain layout:   mode (1) | frame
// Authenticated data: the mode byte (a packet cannot be downgraded to plain
// text by flipping it), the cluster label (cluster.label, as memberlist's
// Label: two clusters sharing a key but not a label never accept each
// other's packets) and whatever the caller binds to it (a push/pull answer
// is bound to its request's nonce).
//
// Streams do not use a long-term key directly: derive() gives per-connection
// keys (HKDF-SHA256) for the peer-link handshake (dataplane/link-handshake.ts).
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { clusterKeyBytes } from '../../config/cluster-key.js'
import { CodecError } from './membership/codec.js'

const MODE_PLAIN = 0
const MODE_AES_GCM = 1
const NONCE = 12
const TAG = 16

export interface KeyringOptions {
  /** cluster.label: bound into every sealed packet and every derived key. */
  label?: string
}

export class Keyring {
  private keys: Buffer[]
  private readonly label: Buffer

  /** An empty key list means plain text (a warning is the caller's business). */
  constructor (keys: Array<string | Buffer> = [], options: KeyringOptions = {}) {
    this.keys = keys.filter((k) => k.length > 0).map((k) => {
      const key = typeof k === 'string' ? (clusterKeyBytes(k) ?? Buffer.from(k, 'utf8')) : Buffer.from(k)
      checkKey(key)
      return key
    })
    this.label = Buffer.from(options.label ?? '', 'utf8')
  }

  get encrypted (): boolean { return this.keys.length > 0 }

  /** Adds a key for decryption (it becomes primary only with useKey). */
  addKey (key: Buffer): void {
    checkKey(key)
    if (!this.keys.some((k) => k.equals(key))) this.keys.push(Buffer.from(key))
  }

  /** Makes an installed key the one that encrypts. */
  useKey (key: Buffer): void {
    const i = this.keys.findIndex((k) => k.equals(key))
    if (i < 0) throw new Error('key is not installed')
    this.keys.unshift(...this.keys.splice(i, 1))
  }

  removeKey (key: Buffer): void {
    if (this.keys[0]?.equals(key) === true) throw new Error('cannot remove the primary key')
    this.keys = this.keys.filter((k) => !k.equals(key))
  }

  /**
   * Per-connection key material, one entry per installed key, primary
   * first (empty without a key): HKDF-SHA256 over the key, with `salt` (both
   * sides' random nonces) and `context` plus the cluster label as info.
   */
  derive (salt: Buffer, context: string, length: number): Buffer[] {
    const info = Buffer.concat([Buffer.from(context, 'utf8'), Buffer.from([0]), this.label])
    return this.keys.map((key) => Buffer.from(hkdfSync('sha256', key, salt, info, length)))
  }

  seal (plain: Buffer, bound?: Buffer): Buffer {
    const key = this.keys[0]
    if (key === undefined) return Buffer.concat([Buffer.from([MODE_PLAIN]), plain])
    const nonce = randomBytes(NONCE)
    const cipher = createCipheriv(algorithm(key), key, nonce)
    const mode = Buffer.from([MODE_AES_GCM])
    cipher.setAAD(this.aad(mode, bound))
    const body = Buffer.concat([cipher.update(plain), cipher.final()])
    return Buffer.concat([mode, nonce, body, cipher.getAuthTag()])
  }

  /** Returns the frame inside, or throws CodecError: nothing unauthenticated gets parsed. */
  open (sealed: Buffer, bound?: Buffer): Buffer {
    if (sealed.length < 1) throw new CodecError('decode', 'empty packet')
    const mode = sealed[0]
    if (this.keys.length === 0) {
      if (mode === MODE_PLAIN) return sealed.subarray(1)
      throw new CodecError('encryption', mode === MODE_AES_GCM ? 'encrypted packet but no key is configured' : 'unknown packet mode')
    }
    if (mode !== MODE_AES_GCM) throw new CodecError('encryption', 'unencrypted packet but encryption is required')
    if (sealed.length < 1 + NONCE + TAG) throw new CodecError('auth', 'encrypted packet too short')
    const nonce = sealed.subarray(1, 1 + NONCE)
    const body = sealed.subarray(1 + NONCE, sealed.length - TAG)
    const tag = sealed.subarray(sealed.length - TAG)
    const aad = this.aad(sealed.subarray(0, 1), bound)
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv(algorithm(key), key, nonce)
        decipher.setAAD(aad)
        decipher.setAuthTag(tag)
        return Buffer.concat([decipher.update(body), decipher.final()])
      } catch {
        // wrong key (or tampered, or another cluster's label): try the next one
      }
    }
    throw new CodecError('auth', 'no key authenticates the packet (a wrong key, or another cluster.label)')
  }

  private aad (mode: Buffer, bound: Buffer | undefined): Buffer {
    const label = Buffer.allocUnsafe(2)
    label.writeUInt16BE(this.label.length, 0)
    return Buffer.concat([mode, label, this.label, bound ?? Buffer.alloc(0)])
  }
}

function checkKey (key: Buffer): void {
  if (![16, 24, 32].includes(key.length)) throw new RangeError(`cluster key must be 16, 24 or 32 bytes, got ${key.length}`)
}

function algorithm (key: Buffer): 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' {
  return key.length === 16 ? 'aes-128-gcm' : key.length === 24 ? 'aes-192-gcm' : 'aes-256-gcm'
}
