// Encryption and authentication of every cluster packet and stream
// (memberlist security.go + keyring.go). AES-GCM with a 16, 24 or 32 byte key
// (AES-128/192/256). The first key encrypts; every key in the ring is tried
// for decryption, so a key can be rotated without downtime: add the new key
// as secondary everywhere, make it primary everywhere, then drop the old one.
//
// Sealed layout:  mode (1) | nonce (12) | ciphertext | tag (16)
// Plain layout:   mode (1) | frame
// The mode byte is authenticated as additional data, so a packet cannot be
// downgraded to plain text by flipping it.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { CodecError } from './membership/codec.js'

const MODE_PLAIN = 0
const MODE_AES_GCM = 1
const NONCE = 12
const TAG = 16

export class Keyring {
  private keys: Buffer[]

  /** An empty key list means plain text (a warning is the caller's business). */
  constructor (keys: Array<string | Buffer> = []) {
    this.keys = keys.filter((k) => k.length > 0).map((k) => {
      const key = typeof k === 'string' ? Buffer.from(k, 'utf8') : Buffer.from(k)
      checkKey(key)
      return key
    })
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

  seal (plain: Buffer): Buffer {
    const key = this.keys[0]
    if (key === undefined) return Buffer.concat([Buffer.from([MODE_PLAIN]), plain])
    const nonce = randomBytes(NONCE)
    const cipher = createCipheriv(algorithm(key), key, nonce)
    const mode = Buffer.from([MODE_AES_GCM])
    cipher.setAAD(mode)
    const body = Buffer.concat([cipher.update(plain), cipher.final()])
    return Buffer.concat([mode, nonce, body, cipher.getAuthTag()])
  }

  /** Returns the frame inside, or throws CodecError: nothing unauthenticated gets parsed. */
  open (sealed: Buffer): Buffer {
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
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv(algorithm(key), key, nonce)
        decipher.setAAD(sealed.subarray(0, 1))
        decipher.setAuthTag(tag)
        return Buffer.concat([decipher.update(body), decipher.final()])
      } catch {
        // wrong key (or tampered): try the next one
      }
    }
    throw new CodecError('auth', 'no key authenticates the packet')
  }
}

function checkKey (key: Buffer): void {
  if (![16, 24, 32].includes(key.length)) throw new RangeError(`cluster key must be 16, 24 or 32 bytes, got ${key.length}`)
}

function algorithm (key: Buffer): 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' {
  return key.length === 16 ? 'aes-128-gcm' : key.length === 24 ? 'aes-192-gcm' : 'aes-256-gcm'
}
