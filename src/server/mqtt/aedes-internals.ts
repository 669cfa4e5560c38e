// The parts of aedes 2.0.0-beta.1's Client that are not in its public types
// but that our workarounds rely on. aedes is pinned to that exact version; if
// it moves, this file is the list of things to re-check (lib/client.js).
import type { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { Client } from 'aedes'

/** mqtt-packet's parser as aedes drives it. */
export interface PacketParser extends EventEmitter {
  /** Bytes received but not yet part of an emitted packet. */
  _list: { length: number }
  /** 0 between packets; otherwise a packet is half parsed. */
  _stateCounter: number
}

/** A packet as mqtt-packet decodes it (the fields we look at). */
export interface InboundPacket {
  cmd: string
  messageId?: number
  qos?: number
  topic?: string
  protocolVersion?: number
  clientId?: string
  keepalive?: number
  subscriptions?: Array<{ topic: string, qos: number, nl?: boolean, rap?: boolean, rh?: number }>
  unsubscriptions?: string[]
  properties?: Record<string, unknown>
  [key: string]: unknown
}

export type DeliverFunc = (packet: DeliveredPacket, cb: () => void) => void

export interface DeliveredPacket {
  topic: string
  qos: number
  payload: Buffer
  retain: boolean
  brokerId?: string
  brokerCounter?: number
  clientId?: string
  nl?: boolean
  properties?: Record<string, unknown>
  [key: string]: unknown
}

export interface ClientInternals extends Client {
  conn: Socket & { client?: unknown }
  _parser: PacketParser
  /** Called by aedes when a packet has been handled; reads the next chunk when none is pending. */
  _nextBatch: (err?: Error | null) => void
  _parsingBatch: number
  connackSent: boolean
  errored: boolean
  subscriptions: Record<string, { qos: number, func: DeliverFunc }>
  /** Highest brokerCounter delivered per brokerId (aedes' de-duplication). */
  duplicates: Record<string, number>
  /** Delivery entry points; aedes captures them per subscription at SUBSCRIBE time. */
  deliverQoS: DeliverFunc
  deliver0: DeliverFunc
  pause (): void
  resume (): void
}

export function internals (client: Client): ClientInternals {
  return client as ClientInternals
}
