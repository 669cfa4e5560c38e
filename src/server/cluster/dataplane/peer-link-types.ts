// What a peer link (peer-link.ts) is told and what it tells: how a message
// travels (SendMode) and how a send was answered (SendResult), what a
// delivery carries (DeliveryInfo), the link's states and counters (LinkState,
// LinkStats), and its options with their defaults (resolveLinkOptions).
import type { Socket } from 'node:net'
import type { LinkErrorReason } from './frame-codec.js'
import type { LinkKeys } from './link-handshake.js'

export type LinkState = 'idle' | 'connecting' | 'handshaking' | 'up' | 'backoff' | 'waiting' | 'stopped'

export type SendResult = 'queued' | 'backpressure' | 'shed'

/**
 * How a message travels: 'unreliable' (QoS 0: shed when the link is down or
 * full), 'reliable' (kept until acknowledged; 'backpressure' when the buffer
 * is full), 'held' (as reliable, and kept until the receiver settled it:
 * publishes, retained entries), 'control' (reliable, never refused: routes,
 * sync, session operations; small and few).
 */
export type SendMode = 'unreliable' | 'reliable' | 'held' | 'control'

export interface DeliveryInfo {
  reliable: boolean
  /**
   * Of a reliable message: the sender's incarnation and its sequence number,
   * which name this message uniquely.
   */
  source?: { incarnation: string, seq: number }
  /** A held message: the receiver calls settle(source) when done with it. */
  hold?: boolean
}

/** Counters and gauges of one link, read at scrape time by the metrics adapter. */
export interface LinkStats {
  state: LinkState
  messagesSent: number
  messagesReceived: number
  bytesSent: number
  bytesReceived: number
  /** Reliable messages sent again after a reconnect. */
  retransmitted: number
  /** Reliable messages received again and dropped. */
  duplicates: number
  /** Unreliable messages dropped (link down or buffer full). */
  shed: number
  /** Reliable sends answered 'backpressure'. */
  backpressured: number
  /** socket.write calls (batching makes this much lower than messagesSent). */
  writes: number
  frames: number
  /** Reliable messages not yet acknowledged plus unreliable ones not yet written. */
  queueDepth: number
  bufferedBytes: number
  connects: number
  /** Connections closed for bad bytes, by reason. */
  protocolErrors: Partial<Record<LinkErrorReason | 'idle', number>>
}

/** The counters of LinkStats: kept by the link and its connection, the gauges are computed when read. */
export type LinkCounters = Omit<LinkStats, 'state' | 'queueDepth' | 'bufferedBytes'>

export interface PeerLinkOptions {
  localName: string
  /** This node's process id, sent in the HELLO (Hello.process); the peer's is `remoteProcess` once up. */
  process?: string
  peerName: string
  /** The cluster keys each connection derives its own from (NO_KEY: plain text). */
  keys: LinkKeys
  /** Opens a connection to the peer. Required on the dialing side (the lower name). */
  connect?: () => Socket
  /** Called for each delivered message, in order. */
  onMessage: (payload: Buffer, info: DeliveryInfo) => void
  /**
   * Called after each reliable message was handed to onMessage: a promise
   * delays its acknowledgement until it resolves (a node with storage.sync
   * always acknowledges what it has written to its disk).
   */
  ackGate?: () => Promise<void> | undefined
  /** Called when a connection finished its handshake: send the full route table here. */
  onUp?: () => void
  /**
   * The peer came back as a new process: the held messages its predecessor
   * never settled (oldest first), which the new process will not get.
   */
  onRestart?: (orphans: Array<{ seq: number, payload: Buffer }>) => void
  onStateChange?: (state: LinkState) => void
  /** Bound of unacked reliable bytes plus queued unreliable bytes (default 8 MiB). */
  maxBufferedBytes?: number
  /** Largest single message (default 256 MiB: a session snapshot with a long queue of large messages is one message). */
  maxMessageBytes?: number
  /** A batch is cut into frames of about this many bytes (default 256 KiB). */
  frameBytes?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  /** A PING is sent when nothing was written for this long (default 1000). */
  pingIntervalMs?: number
  /** A connection with nothing received for this long is dropped (default 5000). */
  idleTimeoutMs?: number
  handshakeTimeoutMs?: number
  /** A dial not connected in this long is abandoned and retried (default 1000, as TCP would resend its SYN): it may hang on a lost SYN. */
  connectTimeoutMs?: number
  random?: () => number
  /** Called on connection-level problems (already counted in stats). */
  onError?: (err: Error) => void
}

/** The options with every default filled in; the callbacks and `connect`, `process` stay optional. */
export type ResolvedLinkOptions = PeerLinkOptions &
  Required<Omit<PeerLinkOptions, 'connect' | 'onUp' | 'onStateChange' | 'onError' | 'process' | 'onRestart' | 'ackGate'>>

export function resolveLinkOptions (options: PeerLinkOptions): ResolvedLinkOptions {
  return {
    maxBufferedBytes: 8 * 1024 * 1024,
    maxMessageBytes: 256 * 1024 * 1024,
    frameBytes: 256 * 1024,
    minBackoffMs: 50,
    maxBackoffMs: 1000,
    pingIntervalMs: 1000,
    idleTimeoutMs: 5000,
    handshakeTimeoutMs: 5000,
    connectTimeoutMs: 1000,
    random: Math.random,
    ...options
  }
}
