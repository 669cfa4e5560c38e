// Wire format of the membership protocol. A plaintext frame is
//   magic (0xB7) | protocol version (1 byte) | JSON body
// where a UDP packet's body is an array of messages (a compound packet, so
// gossip piggybacks on probes) and a TCP exchange's body is one stream
// message. JSON keeps the protocol readable in a packet capture; every field
// is checked on decode, so nothing malformed reaches the state machine.
// Encryption (security.ts) wraps the whole frame.
import type { MemberMeta, MemberState } from './membership.js'
import { isIP } from 'node:net'

const MAGIC = 0xB7

/**
 * Protocol versions this build speaks (memberlist's PMin/PMax/PCur) and the
 * delegate (user state) protocol versions (DMin/DMax/DCur), shown by
 * /api/discovery/members. A frame outside [PMin, PMax] is dropped.
 */
export const PROTOCOL = Object.freeze({ min: 1, max: 1, cur: 1, delegateMin: 0, delegateMax: 0, delegateCur: 0 })
/** [PMin, PMax, PCur, DMin, DMax, DCur] as gossiped in alive messages. */
export type Versions = [number, number, number, number, number, number]
export const OUR_VERSIONS: Versions = [PROTOCOL.min, PROTOCOL.max, PROTOCOL.cur, PROTOCOL.delegateMin, PROTOCOL.delegateMax, PROTOCOL.delegateCur]

export interface NodeAddress { name: string, addr: string, port: number }

export type Message =
  | { type: 'ping', seq: number, node: string, source: NodeAddress }
  | { type: 'indirect-ping', seq: number, target: string, addr: string, port: number, nack: boolean, source: NodeAddress }
  | { type: 'ack', seq: number }
  | { type: 'nack', seq: number }
  | { type: 'alive', incarnation: number, node: string, addr: string, port: number, meta: MemberMeta, vsn: Versions }
  | { type: 'suspect', incarnation: number, node: string, from: string }
  | { type: 'dead', incarnation: number, node: string, from: string }

/** One member as carried by a push/pull full-state exchange. */
export interface NodeState {
  name: string
  addr: string
  port: number
  meta: MemberMeta
  incarnation: number
  state: MemberState
  vsn: Versions
}

export type StreamMessage =
  | { type: 'push-pull', join: boolean, nodes: NodeState[], userState: string }
  | { type: 'error', code: string, message: string }
  /**
   * The TCP fallback probe (state.ts): a ping over a stream, for when UDP
   * probes fail, and its ack; each carries the sender's pending gossip
   * (alive, suspect and dead news), which UDP does not deliver between them.
   */
  | { type: 'ping', seq: number, node: string, gossip: Message[] }
  | { type: 'ack', seq: number, gossip: Message[] }

export type BadPacketReason = 'auth' | 'encryption' | 'version' | 'decode' | 'size' | 'replay' | 'target'

/** A frame that cannot be used; `reason` is the bad-packets metric label. */
export class CodecError extends Error {
  readonly reason: BadPacketReason
  constructor (reason: BadPacketReason, message: string) {
    super(message)
    this.name = 'CodecError'
    this.reason = reason
  }
}

function frame (body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8')
  const out = Buffer.allocUnsafe(2 + json.length)
  out[0] = MAGIC
  out[1] = PROTOCOL.cur
  json.copy(out, 2)
  return out
}

function unframe (buf: Buffer): unknown {
  if (buf.length < 3 || buf[0] !== MAGIC) throw new CodecError('decode', 'not a broker-ha cluster frame')
  const version = buf[1]!
  if (version < PROTOCOL.min || version > PROTOCOL.max) throw new CodecError('version', `protocol version ${version} not in [${PROTOCOL.min}, ${PROTOCOL.max}]`)
  try {
    return JSON.parse(buf.subarray(2).toString('utf8')) as unknown
  } catch {
    throw new CodecError('decode', 'body is not JSON')
  }
}

export function encodePacket (messages: Message[]): Buffer { return frame(messages) }

/** Size of a message inside a packet body (its JSON plus the separating comma). */
export function encodedSize (message: Message): number {
  return Buffer.byteLength(JSON.stringify(message), 'utf8') + 1
}
/** Frame bytes around the messages: magic, version and the JSON brackets. */
export const PACKET_OVERHEAD = 4

export function decodePacket (buf: Buffer): Message[] {
  const body = unframe(buf)
  if (!Array.isArray(body) || body.length === 0 || body.length > 256) throw new CodecError('decode', 'packet body is not a list of messages')
  return body.map(checkMessage)
}

export function encodeStream (message: StreamMessage): Buffer { return frame(message) }

export function decodeStream (buf: Buffer): StreamMessage {
  const m = unframe(buf)
  if (!isObject(m)) throw new CodecError('decode', 'stream message is not an object')
  switch (m.type) {
    case 'push-pull': {
      if (typeof m.join !== 'boolean' || !Array.isArray(m.nodes) || m.nodes.length > 10_000 || typeof m.userState !== 'string') break
      return { type: 'push-pull', join: m.join, nodes: m.nodes.map(checkNodeState), userState: m.userState }
    }
    case 'error':
      if (isString(m.code) && typeof m.message === 'string') return { type: 'error', code: m.code, message: m.message.slice(0, 1000) }
      break
    case 'ping':
      if (isUint(m.seq) && isString(m.node)) return { type: 'ping', seq: m.seq, node: m.node, gossip: checkGossip(m.gossip) }
      break
    case 'ack':
      if (isUint(m.seq)) return { type: 'ack', seq: m.seq, gossip: checkGossip(m.gossip) }
      break
  }
  throw new CodecError('decode', 'malformed stream message')
}

type Obj = Record<string, unknown>
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isPort = (v: unknown): v is number => isUint(v) && v >= 1 && v <= 65535
/** Names and addresses: non-empty, bounded (a hostname is at most 253 bytes). */
const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256
const MEMBER_STATES: readonly string[] = ['alive', 'suspect', 'dead', 'left']

function checkAddress (v: unknown): NodeAddress {
  if (isObject(v) && isString(v.name) && isString(v.addr) && isPort(v.port)) return { name: v.name, addr: v.addr, port: v.port }
  throw new CodecError('decode', 'malformed node address')
}

/**
 * A member's meta: its API and MQTT ports, which other nodes combine with the
 * member's gossip address (an IP literal, checkMemberAddr) to reach it. Only
 * integer ports 1-65535: /proxy and client control build URLs from them
 * (src/server/api/member-url.ts), so nothing here may carry a host or a path.
 */
function checkMeta (v: unknown): MemberMeta {
  if (isObject(v) && isPort(v.api) && isPort(v.mqtt) && typeof v.version === 'string' && v.version.length <= 64) {
    return { api: v.api, mqtt: v.mqtt, version: v.version }
  }
  throw new CodecError('decode', 'malformed member meta')
}

/**
 * A member's advertised address: an IP literal (cluster.advertise is one),
 * never a host name, a path or anything else a URL could be built from.
 */
function isMemberAddr (v: unknown): v is string {
  return typeof v === 'string' && v.length <= 45 && isIP(v) !== 0
}

function checkVersions (v: unknown): Versions {
  if (Array.isArray(v) && v.length === 6 && v.every((x) => isUint(x) && x <= 255)) return v as Versions
  throw new CodecError('decode', 'malformed version vector')
}

function checkNodeState (v: unknown): NodeState {
  if (isObject(v) && isString(v.name) && isMemberAddr(v.addr) && isPort(v.port) && isUint(v.incarnation) &&
    typeof v.state === 'string' && MEMBER_STATES.includes(v.state)) {
    return { name: v.name, addr: v.addr, port: v.port, incarnation: v.incarnation, state: v.state as MemberState, meta: checkMeta(v.meta), vsn: checkVersions(v.vsn) }
  }
  throw new CodecError('decode', 'malformed node state')
}

const GOSSIP: readonly string[] = ['alive', 'suspect', 'dead']

/** News carried by a stream ping or ack: alive, suspect and dead messages only (absent: none). */
function checkGossip (v: unknown): Message[] {
  if (v === undefined) return []
  if (!Array.isArray(v) || v.length > 256) throw new CodecError('decode', 'malformed gossip')
  return v.map((m) => {
    const message = checkMessage(m)
    if (!GOSSIP.includes(message.type)) throw new CodecError('decode', `${message.type} is not gossip`)
    return message
  })
}

function checkMessage (m: unknown): Message {
  if (isObject(m)) {
    switch (m.type) {
      case 'ping':
        if (isUint(m.seq) && isString(m.node)) return { type: 'ping', seq: m.seq, node: m.node, source: checkAddress(m.source) }
        break
      case 'indirect-ping':
        if (isUint(m.seq) && isString(m.target) && isString(m.addr) && isPort(m.port) && typeof m.nack === 'boolean') {
          return { type: 'indirect-ping', seq: m.seq, target: m.target, addr: m.addr, port: m.port, nack: m.nack, source: checkAddress(m.source) }
        }
        break
      case 'ack':
      case 'nack':
        if (isUint(m.seq)) return { type: m.type, seq: m.seq }
        break
      case 'alive':
        if (isUint(m.incarnation) && isString(m.node) && isMemberAddr(m.addr) && isPort(m.port)) {
          return { type: 'alive', incarnation: m.incarnation, node: m.node, addr: m.addr, port: m.port, meta: checkMeta(m.meta), vsn: checkVersions(m.vsn) }
        }
        break
      case 'suspect':
      case 'dead':
        if (isUint(m.incarnation) && isString(m.node) && isString(m.from)) return { type: m.type, incarnation: m.incarnation, node: m.node, from: m.from }
        break
    }
  }
  throw new CodecError('decode', 'malformed message')
}
