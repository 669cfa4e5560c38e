// Every private part of aedes 2.0.0-beta.1 that broker-ha touches, in one
// place. aedes is pinned to that exact version; if it moves, this file is
// the list of things to re-check (aedes.js, lib/client.js, lib/write.js,
// lib/handlers/*). Nothing outside this file reaches into aedes' objects
// except through these names. Two files lean on how aedes is written rather
// than on its objects, and need the same re-check: empty-replay.ts (aedes
// pipes persistence.outgoingStream() with stream.pipeline) and
// quiet-debug.ts (mqtt-packet's debug namespaces).
import type { EventEmitter } from 'node:events'
import { Socket } from 'node:net'
import { createRequire } from 'node:module'
import type { Aedes, Client } from 'aedes'
import { shortAck, writeShortPublish } from './wire-writes.js'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as {
  writeToStream: (packet: object, stream: NodeJS.WritableStream, opts: { protocolVersion: number }) => boolean
  generate: (packet: object, opts: { protocolVersion: number }) => Buffer
}

// The `bl` that mqtt-packet itself loads, whatever its place in node_modules.
const bl = createRequire(require.resolve('mqtt-packet'))('bl') as { BufferList: new () => { length: number } }

/** mqtt-packet's parser as aedes drives it. */
export interface PacketParser extends EventEmitter {
  /** Bytes received but not yet part of an emitted packet. */
  _list: { length: number }
  /** 0 between packets; otherwise a packet is half parsed. */
  _stateCounter: number
  /** What the parser reads of the CONNECT for later packets; mqtt-packet keeps the whole CONNECT packet here. */
  settings: { protocolVersion?: number, bridgeMode?: boolean }
}

/** A packet as mqtt-packet decodes it (the fields we look at). */
export interface InboundPacket {
  cmd: string
  messageId?: number
  qos?: number
  topic?: string
  payload?: Buffer
  retain?: boolean
  dup?: boolean
  protocolVersion?: number
  clientId?: string
  keepalive?: number
  length?: number
  subscriptions?: Array<{ topic: string, qos: number, nl?: boolean, rap?: boolean, rh?: number }>
  unsubscriptions?: string[]
  properties?: Record<string, unknown>
  [key: string]: unknown
}

export type DeliverFunc = (packet: DeliveredPacket, cb: () => void) => void

export interface DeliveredPacket {
  cmd?: string
  topic: string
  qos: number
  payload: Buffer
  retain: boolean
  dup?: boolean
  messageId?: number
  brokerId?: string | null
  brokerCounter?: number
  clientId?: string
  nl?: boolean
  properties?: Record<string, unknown>
  messageExpiry?: number
  [key: string]: unknown
}

/** aedes' Subscription (lib/handlers/subscribe.js). */
export interface AedesSubscription {
  qos: number
  func: DeliverFunc
  /** Retain Handling, Retain As Published, No Local, Subscription Identifier. */
  rh?: number
  rap?: boolean
  nl?: boolean
  si?: number
}

export interface ClientInternals extends Client {
  conn: Socket & { client?: unknown }
  broker: Aedes
  _parser: PacketParser
  /** Called by aedes when a packet has been handled; reads the next chunk when none is pending. */
  _nextBatch: (err?: Error | null) => void
  _parsingBatch: number
  connackSent: boolean
  errored: boolean
  /** Wire protocol version (3, 4 or 5), set at CONNECT. */
  _wireVersion: number | null
  _keepaliveInterval: number
  _keepaliveTimer: NodeJS.Timeout | null
  /** MQTT 5 Server Keep Alive (s): sent in CONNACK and used for the keep alive timer instead of the CONNECT's. */
  _serverKeepAlive?: number | undefined
  /** The next packet identifier aedes gives a QoS 1/2 PUBLISH it sends (QoSPacket); the session sender draws from it too. */
  _nextId: number
  /** Inbound topic aliases of this connection (alias -> topic); aedes makes a Map, inboundAliases() below replaces it. */
  _topicAliases: { get: (alias: number) => string | undefined, set: (alias: number, topic: string) => unknown }
  _requestProblemInformation?: boolean
  /** Clean Start of the CONNECT (MQTT 5: can differ from `clean`, the persistence axis). */
  _cleanStart?: boolean
  /** Set when the client sent DISCONNECT (aedes then skips its will). */
  _disconnected: boolean
  subscriptions: Record<string, AedesSubscription>
  /** Highest brokerCounter delivered per brokerId (aedes' de-duplication; replaced, see hooks.ts). */
  duplicates: Record<string, number>
  /** Delivery entry points; aedes captures them per subscription at SUBSCRIBE time. */
  deliverQoS: DeliverFunc
  deliver0: DeliverFunc
  waitForDrain: (callback: (err?: Error | null) => void) => void
  /** Stops aedes' end-of-stream watch of the socket (stream.finished()'s cleanup); close() calls it. */
  _eos: () => void
  pause (): void
  resume (): void
}

export function internals (client: Client): ClientInternals {
  return client as ClientInternals
}

/**
 * mqtt-packet's parser keeps the bytes of a half-received packet in `bl()`,
 * a BufferListStream: a Duplex stream (two stream states, listener tables)
 * that nothing ever pipes or reads as a stream; the parser only appends,
 * reads, slices and consumes. A plain BufferList (the same class without the
 * stream) does all of that: about 1.2 KiB less heap per connection. Only an
 * empty list is swapped (called before the first byte is parsed); after a
 * parse error mqtt-packet makes a stream again, and the connection closes.
 */
export function plainParserBuffer (parser: PacketParser): void {
  if (parser._list.length === 0) parser._list = new bl.BufferList()
}

/**
 * Gives a plain EventEmitter (aedes' Client, mqtt-packet's Parser) a listener
 * table in V8's fast mode. EventEmitter starts it as `{ __proto__: null }`,
 * which V8 makes a dictionary: about 160 bytes more than the same keys in
 * fast mode, on two emitters of every connection (a heap snapshot of idle
 * connections; Node's streams preset their table for this reason). Call
 * once the connection's listeners are on: adding a listener keeps the fast
 * mode, removing an event's last listener (a `delete`) loses it.
 */
export function fastListenerTable (emitter: object): void {
  const holder = emitter as unknown as { _events?: Record<string, unknown> }
  if (holder._events === undefined) return
  holder._events = Object.setPrototypeOf({ ...holder._events }, null) as Record<string, unknown>
}

// One per protocol version and bridge mode: all mqtt-packet's parser reads of its settings.
const PARSER_SETTINGS = new Map<string, PacketParser['settings']>()

/**
 * mqtt-packet's parser keeps the CONNECT it parsed as its settings for the
 * rest of the connection, to read two fields of it (protocolVersion and
 * bridgeMode: how SUBSCRIBE and later packets are decoded). A shared object
 * with those two takes its place once the CONNECT is parsed: the packet
 * object (120 bytes) and what only it holds no longer stay with every
 * connection. Called with the CONNECT the parser just emitted.
 */
export function parserSettingsOf (parser: PacketParser, connect: InboundPacket): void {
  if (parser.settings !== connect) return
  const protocolVersion = connect.protocolVersion ?? 4
  const bridgeMode = connect.bridgeMode === true
  const key = `${protocolVersion}/${String(bridgeMode)}`
  let shared = PARSER_SETTINGS.get(key)
  if (shared === undefined) {
    shared = Object.freeze({ protocolVersion, bridgeMode })
    PARSER_SETTINGS.set(key, shared)
  }
  parser.settings = shared
}

function noWatch (): void {}

/**
 * aedes watches each client's socket with stream.finished() (lib/client.js),
 * only to call client.close() when the socket ends, fails or closes: seven
 * closures, their context, a bound close and a third 'end' listener (which
 * grows the socket's 'end' array from 2 to 19 slots) for every connection,
 * about 0.7 KiB of each idle one. On a TCP or TLS socket aedes' own 'end'
 * and 'error' listeners already close the client, and finished() calls back
 * on 'finish' only once the read side ended too (the 'end' case); what is
 * left is 'close', which MqttServer's one close listener per socket handles
 * (closeClient below). Other streams (WebSocket) keep aedes' watch.
 * Returns whether the watch was dropped.
 */
export function dropEndOfStreamWatch (client: Client): boolean {
  const c = internals(client)
  if (!(c.conn instanceof Socket)) return false
  c._eos()
  c._eos = noWatch
  // What is left of the 'end' listeners (Node's and aedes') goes back into
  // a two-slot array: removing one leaves the other alone, adding it makes
  // a new pair in the same order.
  const ends = c.conn.rawListeners('end') as Array<(...args: unknown[]) => void>
  if (ends.length === 2) {
    c.conn.removeListener('end', ends[1]!)
    c.conn.on('end', ends[1]!)
  }
  return true
}

/**
 * What aedes' end-of-stream watch did on the socket's 'close', for a client
 * whose watch was dropped: close the client (a no-op when aedes closed it
 * already, the usual case).
 */
export function closeClient (client: Client): void {
  if (!client.closed) client.close()
}

/**
 * What stands in aedes' `_keepaliveTimer` for a client whose keep alive the
 * sweep watches (inbound.ts): aedes refreshes it on every packet it handles
 * and clears it at close; both do nothing here (clearTimeout() ignores an
 * object that is not a timer). `_keepaliveInterval` keeps aedes' value.
 */
const SWEPT_TIMER = {
  refresh (): unknown { return this },
  unref (): unknown { return this },
  ref (): unknown { return this }
} as unknown as NodeJS.Timeout

/**
 * Takes a connected client's keep alive from aedes: stops its Timeout (a
 * Timeout, a closure and its context per connection, about 220 bytes of
 * each idle one) and returns the interval (ms) aedes computed from the
 * CONNECT or the Server Keep Alive, 0 for none. The caller checks it from
 * then on (keepAliveTimedOut() when it passed).
 */
export function takeKeepAlive (client: Client): number {
  const c = internals(client)
  if (c._keepaliveInterval <= 0 || c._keepaliveTimer === null) return 0
  if (c._keepaliveTimer !== SWEPT_TIMER) clearTimeout(c._keepaliveTimer)
  c._keepaliveTimer = SWEPT_TIMER
  return c._keepaliveInterval
}

/**
 * What aedes' keep alive timer does when it fires (lib/handlers/connect.js
 * setKeepAlive): the event, then the error that closes the client.
 */
export function keepAliveTimedOut (client: Client): void {
  const c = internals(client)
  c.broker.emit('keepaliveTimeout', client)
  client.emit('error', new Error('keep alive timeout'))
}

/**
 * Stops reading a client's socket (TCP then pushes back on it). aedes reads
 * again whenever a 'readable' event or a handled packet calls _nextBatch and
 * no packet of the last read is pending, which a packet whose handling waits
 * does not prevent for long ('readable' counts as a handled packet).
 */
export function pauseReads (client: Client): void {
  internals(client).pause()
}

/**
 * Reads again. While paused, aedes' _nextBatch returned before counting the
 * packets handled meanwhile, so its count is started again: the next call
 * reads.
 */
export function resumeReads (client: Client): void {
  const c = internals(client)
  if (c.closed) return
  c._parsingBatch = 1
  c.resume()
}

/** aedes' own fields of the broker. */
export interface AedesInternals extends Aedes {
  clients: Record<string, Client | undefined>
  /** Stamps each new message (aedes-packet increments it). */
  counter: number
  mq: { emit: (packet: unknown, cb?: () => void) => unknown }
  persistence: unknown
  maxTopicLevels: number
  topicAliasMaximum: number
  maximumPacketSize: number
  /** Cancels the Will Delay Interval timer of a client id that closed here (aedes.js scheduleWill). */
  clearDelayedWill: (clientId: string) => void
}

export function brokerInternals (aedes: Aedes): AedesInternals {
  return aedes as AedesInternals
}

/**
 * Writes a packet to a client as aedes' lib/write.js does (its protocol
 * version, waiting for 'drain' when the socket buffer is full), for the
 * packets broker-ha sends itself: queued deliveries (session-sender.ts),
 * PUBACKs after the publish (publish-acks.ts). `done` gets an error when the
 * connection is gone.
 */
export function writePacket (client: Client, packet: object, done: (err: Error | null) => void): void {
  const c = internals(client)
  if (!client.connected && !(client as Client & { connecting?: boolean }).connecting) {
    setImmediate(done, new Error('connection closed'))
    return
  }
  let ok: boolean
  try {
    ok = mqttPacket.writeToStream(packet, c.conn, { protocolVersion: c._wireVersion ?? 4 })
  } catch (err) {
    setImmediate(done, new Error('packet not valid', { cause: err }))
    return
  }
  if (!ok && !c.errored) c.waitForDrain((err) => done(err ?? null))
  else setImmediate(done, null)
}

const WRITE_OPTS: Record<number, { protocolVersion: number }> = { 3: { protocolVersion: 3 }, 4: { protocolVersion: 4 }, 5: { protocolVersion: 5 } }

/**
 * Writes a packet to the client's socket as aedes' lib/write.js serialises
 * it (the connection's protocol version), and nothing else: no 'drain' wait,
 * no callback. Throws when mqtt-packet cannot encode it. outbound-buffer.ts
 * batches and bounds what goes through here.
 */
export function writeToSocket (c: ClientInternals, packet: object): boolean {
  const version = c._wireVersion ?? 4
  if ((packet as { cmd?: string }).cmd === 'publish') {
    const ok = writeShortPublish(c.conn, packet, version)
    if (ok !== undefined) return ok
  } else {
    const ack = shortAck(packet, version)
    if (ack !== undefined) return c.conn.write(ack)
  }
  return mqttPacket.writeToStream(packet, c.conn, WRITE_OPTS[version] ?? WRITE_OPTS[4]!)
}

/** A packet encoded for a protocol version (size checks, pre-built DISCONNECTs). */
export function encodePacket (packet: object, protocolVersion: number): Buffer {
  return mqttPacket.generate(packet, { protocolVersion })
}

// It remembers nothing, so every client shares one (a Proxy, its target and
// handler with three closures per connection were about 300 bytes of each idle one).
const FORGETFUL = new Proxy({}, { set: () => true, get: () => undefined, has: () => false }) as Record<string, number>

/**
 * aedes' per-client de-duplication keeps the highest counter per broker id
 * and drops anything lower: right for one stream of messages, wrong for a
 * session whose messages arrive by several paths (a move, a rescue). This
 * object takes its place: it remembers nothing, so aedes lets everything
 * through, and hooks.ts de-duplicates by stamp instead.
 */
export function forgetfulDuplicates (): Record<string, number> {
  return FORGETFUL
}

/**
 * Inbound topic aliases (alias -> topic) whose Map is made on the first alias
 * the client registers. aedes gives every client a Map (a 152-byte table with
 * it) that only an MQTT 5 client sending topic aliases ever fills; aedes
 * reads and writes `client._topicAliases` through get() and set() only
 * (lib/handlers/publish.js), as publish-acks.ts does.
 */
class InboundAliases {
  private map: Map<number, string> | undefined
  get (alias: number): string | undefined {
    return this.map?.get(alias)
  }

  set (alias: number, topic: string): this {
    (this.map ??= new Map()).set(alias, topic)
    return this
  }
}

export function inboundAliases (): ClientInternals['_topicAliases'] {
  return new InboundAliases()
}
