// The pluggable transport under the membership protocol (memberlist
// transport.go). Packets are best-effort datagrams (UDP: probes, acks,
// gossip); an exchange is one request and one response over a reliable
// stream (TCP: join and push/pull). Bytes in, bytes out: framing, encryption
// and decoding are the state machine's, so every transport carries the same
// sealed frames and the in-memory one exercises the real codec and crypto.

export interface Address { host: string, port: number }

export const addressKey = (a: Address): string => `${a.host}:${a.port}`

export interface TransportHandlers {
  packet (from: Address, data: Buffer): void
  /** Answers one exchange; undefined closes the stream without an answer. */
  exchange (from: Address, request: Buffer): Promise<Buffer | undefined>
}

export interface TransportStats {
  bytesSent: number
  bytesReceived: number
}

export interface Transport {
  /** The address we are bound to (advertised unless cluster.advertise says otherwise). */
  readonly local: Address
  readonly stats: TransportStats
  start (handlers: TransportHandlers): Promise<void>
  stop (): Promise<void>
  sendPacket (to: Address, data: Buffer): void
  /** Rejects on connection failure, timeout or a closed stream. */
  exchange (to: Address, request: Buffer, timeoutMs: number): Promise<Buffer>
}

/** Largest stream frame accepted as an answer to our own request: a full state of thousands of members plus user state. */
export const MAX_STREAM_FRAME = 32 * 1024 * 1024

/**
 * Largest request frame read from a connection we did not open, before it
 * authenticated: a member table of some 7,000 members (about 150 bytes
 * each), and no more memory than that per unauthenticated connection.
 */
export const MAX_REQUEST_FRAME = 1024 * 1024

export class TransportError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TransportError'
  }
}
