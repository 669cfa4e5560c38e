// What the data plane's mechanisms share: the node's parts they act on and a
// few facts about it. data-plane.ts builds one and hands it to each
// mechanism (links, forwarding, inbound, retained, replication, moves,
// takeover, promotion, rescue); none of them builds anything of the others.
import type { Aedes, Client } from 'aedes'
import type { Config } from '../../../config/index.js'
import type { Logger } from '../../../log.js'
import type { MqttServer, SessionStore } from '../../mqtt/index.js'
import { brokerInternals } from '../../mqtt/aedes-internals.js'
import type { HybridLogicalClock } from './hlc.js'
import type { RoutingTable } from './routing-table.js'
import type { LinkSet } from './link-set.js'
import type { PeerLink } from './peer-link.js'
import type { DataPlaneMessage } from './messages.js'
import { encodeMessage } from './messages.js'

export type Warn = (level: 'warn' | 'info' | 'error', obj: object, msg: string) => void

export interface DataPlaneContext {
  /** This node's member name. */
  readonly name: string
  /** This process's aedes id (`name@incarnation`): the brokerId of every message published here. */
  readonly process: string
  readonly config: Config
  readonly log: Logger
  /** Rate-limited warnings (one per 10 s per call site kind). */
  readonly warn: Warn
  readonly mqtt: MqttServer
  readonly aedes: Aedes
  readonly store: SessionStore
  readonly clock: HybridLogicalClock
  readonly routing: RoutingTable
  readonly links: LinkSet
  /** `cluster.ack_after` is `replicated`: acknowledgements wait for a second node. */
  readonly replicatedAcks: boolean
  /** Between start() and stop(). */
  running (): boolean
}

/** The live local connection of a client id, if any. */
export function localClient (ctx: Pick<DataPlaneContext, 'aedes'>, clientId: string): Client | undefined {
  const c = brokerInternals(ctx.aedes).clients[clientId]
  return c === undefined || c.closed ? undefined : c
}

/**
 * Sends a control message (routes, sessions, requests) to a peer, if its
 * link exists; returns the link sequence number it got, or undefined.
 */
export function sendControl (ctx: Pick<DataPlaneContext, 'links' | 'log'>, peer: string, m: DataPlaneMessage): number | undefined {
  const link = ctx.links.get(peer)
  if (link === undefined || link.state === 'stopped') return undefined
  return sendOrReport(ctx, link, m) ? link.lastQueuedSeq : undefined
}

/**
 * Queues a control message; false when the link refused it (a message past
 * maxMessageBytes: a session with an enormous queue, say). Logged as an
 * error, never thrown: a throw here would end the process.
 */
export function sendOrReport (ctx: Pick<DataPlaneContext, 'log'>, link: PeerLink, m: DataPlaneMessage): boolean {
  const payload = encodeMessage(m)
  try {
    link.send(payload, 'control')
    return true
  } catch (err) {
    ctx.log.error({ peer: link.peerName, kind: m.kind, bytes: payload.length, err: (err as Error).message }, 'cluster message not sent')
    return false
  }
}

/** Resolves after `ms`, or at once when ms is 0; the timer does not hold the process. */
export function delay (ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms)
    t.unref()
  })
}
