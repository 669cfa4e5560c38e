// The peer-link handshake: fresh keys for every connection, so that both
// sides prove the cluster key, and a recorded connection replayed later (or
// one frame replayed, dropped or reordered within a connection) fails to
// authenticate.
//
//   dialer   -> PREAMBLE | frame(INIT)           INIT = proto (1) | nonce (32), not sealed
//   acceptor -> PREAMBLE | frame(INIT)           its own fresh nonce
//   dialer   -> frame(seal d2a (HELLO))          proves the key under the acceptor's nonce
//   acceptor -> frame(seal a2d (HELLO | REFUSE)) proves the key under the dialer's nonce
//   then every frame sealed by its direction's key.
//
// Keys: HKDF-SHA256 over the cluster key, salt = dialer nonce | acceptor
// nonce, info = "broker-ha link <proto>" and the cluster label (keyring.ts):
// 64 bytes, the dialer-to-acceptor AES-256-GCM key then the other
// direction's. The GCM nonce of a frame is its number in its direction (a
// 64-bit counter from 0): never reused under one key, and a frame accepted
// only in its place. The acceptor tries every installed key on the dialer's
// HELLO (key rotation: secondary_keys) and answers under the one that opened it.
//
// Without a key the same messages flow with frames in plain text: nothing is
// authenticated then (admission by address, membership/admission.ts, is what
// keeps strangers out).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { LINK_PROTOCOL_VERSION, LinkProtocolError, frame, type FrameCipher } from './frame-codec.js'

export const HANDSHAKE_NONCE = 32
const INIT_LENGTH = 1 + HANDSHAKE_NONCE
const TAG = 16
const KEY = 32

/** Largest frame read before a connection's handshake completed: INIT and HELLO are small. */
export const MAX_HANDSHAKE_FRAME = 4096

/** The long-term keys a link derives its connection keys from; the membership Keyring fits this shape. */
export interface LinkKeys {
  readonly encrypted: boolean
  /** One derivation per installed key, primary first; none without a key. */
  derive (salt: Buffer, context: string, length: number): Buffer[]
}

/** No key: links run in plain text (tests, and clusters without cluster.config.secret_key). */
export const NO_KEY: LinkKeys = { encrypted: false, derive: () => [] }

export function initFrameBody (nonce: Buffer): Buffer {
  return Buffer.concat([Buffer.from([LINK_PROTOCOL_VERSION]), nonce])
}

/** The peer's nonce from its INIT; throws LinkProtocolError for anything else (another protocol version). */
export function parseInit (body: Buffer): Buffer {
  if (body.length !== INIT_LENGTH || body[0] !== LINK_PROTOCOL_VERSION) {
    throw new LinkProtocolError('handshake', `not a link protocol ${LINK_PROTOCOL_VERSION} handshake (${body.length === INIT_LENGTH ? `protocol ${String(body[0])}` : 'a peer of another version?'})`)
  }
  return Buffer.from(body.subarray(1))
}

export function newNonce (): Buffer { return randomBytes(HANDSHAKE_NONCE) }

/** One connection's ciphers, one per direction. */
export class LinkSession implements FrameCipher {
  private readonly sendKey: Buffer | undefined
  private readonly recvKey: Buffer | undefined
  private sent = 0n
  private received = 0n

  constructor (sendKey: Buffer | undefined, recvKey: Buffer | undefined) {
    this.sendKey = sendKey
    this.recvKey = recvKey
  }

  /** The sealed records alone (no length prefix): a view of sealFrame's buffer. */
  seal (plain: Buffer): Buffer {
    if (this.sendKey === undefined) return plain
    return this.sealFrame(plain).subarray(4)
  }

  /** frame(seal(plain)) in one allocation: the length prefix and the sealed records. */
  sealFrame (plain: Buffer): Buffer {
    if (this.sendKey === undefined) return frame(plain)
    const cipher = createCipheriv('aes-256-gcm', this.sendKey, counterNonce(this.sent++))
    const body = cipher.update(plain)
    const last = cipher.final()
    const tag = cipher.getAuthTag()
    const length = body.length + last.length + tag.length
    const head = Buffer.allocUnsafe(4)
    head.writeUInt32BE(length, 0)
    return Buffer.concat([head, body, last, tag], 4 + length)
  }

  open (sealed: Buffer): Buffer {
    if (this.recvKey === undefined) return sealed
    if (sealed.length < TAG) throw new Error('frame too short')
    const decipher = createDecipheriv('aes-256-gcm', this.recvKey, counterNonce(this.received))
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG))
    const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()])
    this.received++
    return plain
  }
}

function counterNonce (n: bigint): Buffer {
  const nonce = Buffer.alloc(12)
  nonce.writeBigUInt64BE(n, 4)
  return nonce
}

function sessions (keys: LinkKeys, dialerNonce: Buffer, acceptorNonce: Buffer, dialer: boolean): LinkSession[] {
  if (!keys.encrypted) return [new LinkSession(undefined, undefined)]
  const salt = Buffer.concat([dialerNonce, acceptorNonce])
  return keys.derive(salt, `broker-ha link ${LINK_PROTOCOL_VERSION}`, 2 * KEY).map((okm) => {
    const d2a = okm.subarray(0, KEY)
    const a2d = okm.subarray(KEY)
    return dialer ? new LinkSession(d2a, a2d) : new LinkSession(a2d, d2a)
  })
}

/** The dialer's session: under its primary key. */
export function dialerSession (keys: LinkKeys, dialerNonce: Buffer, acceptorNonce: Buffer): LinkSession {
  return sessions(keys, dialerNonce, acceptorNonce, true)[0]!
}

/**
 * The acceptor's session: the one under which the dialer's first sealed
 * frame opens (any installed key). Returns it with that frame opened;
 * throws LinkProtocolError('auth') when no key opens it.
 */
export function acceptorSession (keys: LinkKeys, dialerNonce: Buffer, acceptorNonce: Buffer, firstFrame: Buffer): { session: LinkSession, plain: Buffer } {
  for (const session of sessions(keys, dialerNonce, acceptorNonce, false)) {
    try {
      return { session, plain: session.open(firstFrame) }
    } catch {
      // another key, or not the key at all
    }
  }
  throw new LinkProtocolError('auth', 'hello does not authenticate (a wrong cluster key, another cluster.label, or a replayed connection)')
}
