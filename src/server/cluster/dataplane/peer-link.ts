// One long-lived link to one peer: the data plane's transport. This file is
// the reliable stream; link-connection.ts carries it over one TCP connection
// at a time (dial, accept, handshake, heartbeat, backoff), held-messages.ts
// keeps what is held and settled on both sides, and peer-link-types.ts has
// the options, states and counters.
//
// What it promises (see docs/data-plane.md):
// - Reliable messages (QoS 1/2 publishes, route deltas, retained entries) are
//   delivered to the peer's handler once each, in send order, across
//   connection drops: each gets a sequence number, the sender keeps it until a
//   cumulative ACK covers it and resends the unacknowledged ones after every
//   reconnect; the receiver drops anything at or below the highest sequence it
//   delivered for the sender's incarnation (the sender's process lifetime).
//   The receiver's state lives in this object, so a restart of the receiving
//   process loses it: then the sender resends what was unacked, which the
//   restarted node has never seen.
// - Unreliable messages (QoS 0) share the ordered stream but are not kept:
//   when the link is down or the send buffer is full they are shed (counted).
// - Held messages (publishes) are reliable messages the receiver settles when
//   it is done with them (settle()); the sender keeps each until its HELD
//   report (frame-codec.ts), not just its ACK: onHeld() is what a
//   publisher's acknowledgement waits for, and unheld() is what a node taking
//   over the receiver's sessions asks for when the receiver died first. A
//   receiver that restarts (a new `process` in its HELLO) settles nothing of
//   its predecessor's: those messages are handed to onRestart and not sent
//   to the new process.
// - Memory is bounded: unacked reliable bytes plus held messages not yet
//   settled plus queued unreliable bytes stay under maxBufferedBytes. Past
//   it, send() sheds unreliable messages and answers 'backpressure' for held
//   ones (not queued: the caller holds the message and waits for
//   whenWritable(), which is how a slow peer slows the publishers instead of
//   growing the heap).
// - Batching: messages sent in one turn of the event loop leave in one frame
//   and one write (flushed on setImmediate: a lone message waits for no timer).
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { DATA_HEADER, MAX_HELD_LIST, MAX_SEQ, encodeRecord, writeDataHeader, type Hello } from './frame-codec.js'
import { HeldMessages, Settlements } from './held-messages.js'
import { LinkConnection, type StreamRecord } from './link-connection.js'
import type { LinkSession } from './link-handshake.js'
import {
  resolveLinkOptions,
  type LinkCounters, type LinkState, type LinkStats, type PeerLinkOptions, type ResolvedLinkOptions,
  type SendMode, type SendResult
} from './peer-link-types.js'

export { dialsTo } from './link-connection.js'
export type { DeliveryInfo, LinkState, LinkStats, PeerLinkOptions, SendMode, SendResult } from './peer-link-types.js'

interface Outgoing { seq: number, payload: Buffer, hold: boolean }

export class PeerLink {
  readonly localName: string
  readonly peerName: string
  /** This process's sender identity on this link. */
  readonly incarnation = randomBytes(8).toString('hex')
  private readonly opts: ResolvedLinkOptions
  private readonly connection: LinkConnection

  // sender side
  private nextSeq = 1
  /** Highest sequence ever written to a socket: what is resent below it is a retransmission. */
  private highestWritten = 0
  private readonly unacked: Outgoing[] = []
  private unackedHead = 0
  private unackedBytes = 0
  /** Held messages not yet settled by the peer. */
  private readonly holds = new HeldMessages()
  /** Records waiting to be written on the current connection (reliable ones are also in unacked). */
  private outbox: Outgoing[] = []
  private outboxUnreliableBytes = 0
  private ackDue = false
  private heldDue = false
  private pingDue = false
  private flushScheduled: NodeJS.Immediate | undefined
  private waitingDrain = false
  private drainWaiters: Array<() => void> = []
  /** whenAcked() waiters, in ascending seq order. */
  private ackWaiters: Array<{ seq: number, resolve: (acked: boolean) => void }> = []
  private ackedUpTo = 0

  // receiver side
  private recvIncarnation: string | null = null
  /** The peer's process id from its last HELLO (Hello.process). */
  remoteProcess: string | undefined
  private delivered = 0
  /** Highest delivered seq whose handling is written (ackGate): what acks say. */
  private ackable = 0
  /** The latest write acknowledgements wait for, and up to which seq. */
  private gatedAck: { gate: Promise<void>, upTo: number, incarnation: string | null } | undefined
  /** The peer's held messages delivered here, and which of them are settled. */
  private readonly settlements = new Settlements()

  private readonly counters: LinkCounters = {
    messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0, retransmitted: 0, duplicates: 0,
    shed: 0, backpressured: 0, writes: 0, frames: 0, connects: 0, protocolErrors: {}
  }

  constructor (options: PeerLinkOptions) {
    if (options.localName === options.peerName) throw new RangeError('a peer link needs two different names')
    this.localName = options.localName
    this.peerName = options.peerName
    this.opts = resolveLinkOptions(options)
    this.connection = new LinkConnection(this.opts, {
      helloFields: () => ({
        incarnation: this.incarnation,
        recv: { incarnation: this.recvIncarnation, seq: this.delivered }
      }),
      resume: (hello) => this.resume(hello),
      up: () => {
        this.opts.onUp?.()
        this.scheduleFlush()
      },
      record: (r) => this.record(r),
      closed: () => this.connectionClosed(),
      pingDue: () => {
        this.pingDue = true
        this.scheduleFlush()
      }
    }, this.counters)
  }

  get state (): LinkState { return this.connection.state }

  /** This side dials (the lower name); the other only accepts. */
  get dialer (): boolean { return this.connection.dialer }


  /** The latest dial was refused: nothing listened at the peer's address then. */
  get refused (): boolean { return this.connection.refused }

  /** Largest sealed frame this link accepts from its peer. */
  get maxFrameBytes (): number { return this.connection.maxFrameBytes }

  start (): void {
    this.connection.start()
  }

  stop (): void {
    if (this.state === 'stopped') return
    this.connection.stop()
    this.releaseDrainWaiters()
    const waiters = this.ackWaiters
    this.ackWaiters = []
    for (const w of waiters) w.resolve(false)
    this.holds.stop()
  }

  /**
   * Queues a message (see SendMode). 'reliable' and 'held' answer
   * 'backpressure' (not queued) when the buffer is full; 'unreliable' is
   * 'shed' then, or when the link is not up; 'control' is always queued:
   * route deltas, sync and session operations are small and few, and must
   * not be refused, or a peer's view would silently go stale. `overBound`
   * queues a 'held' message past the bound too (for a peer declared dead:
   * kept for whoever takes its sessions over; forwarding.ts bounds it).
   */
  send (payload: Buffer, mode: SendMode, overBound = false): SendResult {
    if (payload.length > this.opts.maxMessageBytes) throw new RangeError(`message of ${payload.length} bytes exceeds maxMessageBytes`)
    if (this.state === 'stopped') throw new Error('peer link is stopped')
    const size = payload.length + DATA_HEADER
    const full = this.bufferedBytes > 0 && this.bufferedBytes + size > this.opts.maxBufferedBytes
    if (mode === 'unreliable') {
      if (full || this.state !== 'up') { this.counters.shed++; return 'shed' }
      this.outbox.push({ seq: 0, payload, hold: false })
      this.outboxUnreliableBytes += size
      this.scheduleFlush()
      return 'queued'
    }
    if (full && mode !== 'control' && !overBound) { this.counters.backpressured++; return 'backpressure' }
    if (this.nextSeq > MAX_SEQ) throw new Error('sequence space exhausted')
    const out = { seq: this.nextSeq++, payload, hold: mode === 'held' }
    this.unacked.push(out)
    this.unackedBytes += size
    if (out.hold) this.holds.add(out.seq, payload)
    if (this.state === 'up') {
      this.outbox.push(out)
      this.scheduleFlush()
    }
    return 'queued'
  }

  /**
   * Calls `cb` once: true when the peer settled held message `seq` (or had,
   * or it was never held: at once), false when the link stops or the peer
   * restarted before settling it. A callback, not a promise: a publisher's
   * acknowledgement waits here for every message (held-waits.ts).
   */
  onHeld (seq: number, cb: (held: boolean) => void): void {
    if (!this.holds.onSettled(seq, cb)) cb(this.state !== 'stopped' || seq <= this.ackedUpTo)
  }

  /**
   * Resolves once every held message up to `seq` is settled (true), or the
   * link stops or the peer restarts first (false).
   */
  async whenAllHeld (seq: number): Promise<boolean> {
    const waits = this.holds.whenSettledUpTo(seq)
    if (waits.length === 0) return this.state !== 'stopped'
    return (await Promise.all(waits)).every(Boolean)
  }

  /** Held messages the peer has not settled, oldest first: what a node taking over its sessions asks for when it died. */
  unheld (): Array<{ seq: number, payload: Buffer }> {
    return this.holds.list()
  }

  /** Held messages not yet settled by the peer. */
  get unheldCount (): number { return this.holds.size }

  /**
   * The receiving side is done with held message `source` (see
   * DeliveryInfo.hold): reported to the sender in the next HELD record.
   * Ignored for a previous incarnation of the sender.
   */
  settle (source: { incarnation: string, seq: number }): void {
    if (source.incarnation !== this.recvIncarnation || !this.settlements.settle(source.seq)) return
    this.heldDue = true
    this.scheduleFlush()
  }

  /** Sequence number of the last reliable message queued (0: none yet). */
  get lastQueuedSeq (): number { return this.nextSeq - 1 }

  /**
   * Resolves true once the peer acknowledged (delivered) reliable message
   * `seq`, false if the link stops first. For a QoS 1/2 publish whose PUBACK
   * should wait until another node holds it.
   */
  async whenAcked (seq: number): Promise<boolean> {
    if (seq <= this.ackedUpTo) return true
    if (this.state === 'stopped') return false
    return await new Promise<boolean>((resolve) => {
      const w = { seq, resolve }
      const last = this.ackWaiters[this.ackWaiters.length - 1]
      if (last === undefined || last.seq <= seq) this.ackWaiters.push(w)
      else this.ackWaiters.splice(this.ackWaiters.findIndex((x) => x.seq > seq), 0, w)
    })
  }

  /** Resolves when the buffer is below half its bound (or the link stopped). */
  async whenWritable (): Promise<void> {
    if (this.bufferedBytes <= this.opts.maxBufferedBytes / 2 || this.state === 'stopped') return
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve))
  }

  get bufferedBytes (): number { return this.unackedBytes + this.holds.settlingBytes + this.outboxUnreliableBytes }

  /** Reliable messages sent and not yet acknowledged. */
  get unackedCount (): number { return this.unacked.length - this.unackedHead }

  stats (): LinkStats {
    let unreliableQueued = 0
    for (const o of this.outbox) if (o.seq === 0) unreliableQueued++
    return {
      ...this.counters,
      protocolErrors: { ...this.counters.protocolErrors },
      state: this.state,
      queueDepth: this.unackedCount + unreliableQueued,
      bufferedBytes: this.bufferedBytes
    }
  }

  /** Drops the current connection (tests, and an operator's "reset link"); the link reconnects. */
  dropConnection (): void {
    this.connection.drop()
  }

  /** Dials at once if waiting out a backoff, or if a dial is stale (see LinkConnection.redialNow). */
  redialNow (): void {
    this.connection.redialNow()
  }

  /** Takes an inbound connection the acceptor already read the preamble and HELLO of (see LinkConnection.adopt). */
  adopt (socket: Socket, hello: Hello, rest: Buffer, session: LinkSession): void {
    this.connection.adopt(socket, hello, rest, session)
  }

  // ---- the connection's life (LinkStream) ---------------------------------------------

  /** A connection is up: the stream resumes where the peer's HELLO says it is. */
  private resume (hello: Hello): void {
    const before = this.remoteProcess
    this.remoteProcess = hello.process
    if (before !== undefined && hello.process !== undefined && before !== hello.process) this.orphanHolds()
    if (hello.incarnation !== this.recvIncarnation) {
      // A new sender lifetime: its sequence numbers start again.
      this.recvIncarnation = hello.incarnation
      this.delivered = 0
      this.ackable = 0
      this.gatedAck = undefined
      this.settlements.reset()
    }
    // What the peer already delivered needs no resending.
    if (hello.recv.incarnation === this.incarnation) this.acknowledge(hello.recv.seq)
    // Its settlements may have been lost with the last connection: said again.
    this.heldDue = true
    this.outbox = this.unacked.slice(this.unackedHead)
    this.outboxUnreliableBytes = 0
    for (const o of this.outbox) if (o.seq <= this.highestWritten) this.counters.retransmitted++
  }

  private connectionClosed (): void {
    if (this.flushScheduled !== undefined) { clearImmediate(this.flushScheduled); this.flushScheduled = undefined }
    this.waitingDrain = false
    this.ackDue = false
    this.heldDue = false
    this.pingDue = false
    // Unreliable messages not yet written are lost with the connection; reliable ones stay in unacked.
    for (const o of this.outbox) if (o.seq === 0) this.counters.shed++
    this.outbox = []
    this.outboxUnreliableBytes = 0
    this.releaseDrainWaitersIfBelow()
  }

  // ---- receiving -----------------------------------------------------------------------

  private record (r: StreamRecord): void {
    switch (r.type) {
      case 'ack':
        this.acknowledge(r.seq)
        return
      case 'held':
        this.holds.settled(r.upTo, r.seqs)
        this.releaseDrainWaitersIfBelow()
        return
      case 'data':
        if (r.seq !== 0) {
          if (r.seq <= this.delivered) { this.counters.duplicates++; return }
          this.delivered = r.seq
          if (r.hold) this.settlements.delivered(r.seq)
        }
        this.counters.messagesReceived++
        try {
          this.opts.onMessage(r.payload, r.seq === 0 ? { reliable: false } : { reliable: true, source: { incarnation: this.recvIncarnation ?? '', seq: r.seq }, ...(r.hold ? { hold: true } : {}) })
        } catch (err) {
          // The message counts as delivered: redelivering would hit the same bug forever.
          this.opts.onError?.(err instanceof Error ? err : new Error(String(err)))
        }
        if (r.seq !== 0) this.ackWhenDone(r.seq)
    }
  }

  /**
   * Acknowledges up to `seq`, once what handling it changed is written
   * (ackGate), if anything. Acks are cumulative: while a write is pending,
   * later messages wait for it too, even those that changed nothing; the
   * messages of one write share one wait.
   */
  private ackWhenDone (seq: number): void {
    const gate = this.opts.ackGate?.()
    const pending = this.gatedAck
    if (gate === undefined && pending === undefined) return this.ackUpTo(seq)
    if (pending !== undefined && (gate === undefined || gate === pending.gate)) { pending.upTo = seq; return }
    // A newer write: the store commits in order, so it is on disk after the pending one.
    const g = { gate: gate!, upTo: seq, incarnation: this.recvIncarnation }
    this.gatedAck = g
    g.gate.then(() => {
      if (this.gatedAck === g) this.gatedAck = undefined
      if (this.recvIncarnation === g.incarnation) this.ackUpTo(g.upTo)
    }, () => {})
  }

  private ackUpTo (seq: number): void {
    if (seq <= this.ackable) return
    this.ackable = seq
    this.ackDue = true
    this.scheduleFlush()
  }

  private acknowledge (seq: number): void {
    while (this.unackedHead < this.unacked.length && this.unacked[this.unackedHead]!.seq <= seq) {
      const o = this.unacked[this.unackedHead]!
      this.unackedBytes -= o.payload.length + DATA_HEADER
      this.unackedHead++
      if (o.hold) this.holds.acked(o.seq)
    }
    if (seq > this.ackedUpTo) this.ackedUpTo = Math.min(seq, this.nextSeq - 1)
    let n = 0
    while (n < this.ackWaiters.length && this.ackWaiters[n]!.seq <= this.ackedUpTo) this.ackWaiters[n++]!.resolve(true)
    if (n > 0) this.ackWaiters.splice(0, n)
    if (this.unackedHead > 1024 && this.unackedHead * 2 > this.unacked.length) {
      this.unacked.splice(0, this.unackedHead)
      this.unackedHead = 0
    }
    this.releaseDrainWaitersIfBelow()
  }

  /** The peer restarted: what its predecessor never settled is handed to onRestart, not resent. */
  private orphanHolds (): void {
    if (this.holds.size === 0) return
    const orphans = this.holds.orphan()
    const gone = new Set(orphans.map((o) => o.seq))
    const kept = this.unacked.slice(this.unackedHead).filter((o) => !gone.has(o.seq))
    this.unacked.length = 0
    this.unacked.push(...kept)
    this.unackedHead = 0
    this.unackedBytes = kept.reduce((n, o) => n + o.payload.length + DATA_HEADER, 0)
    this.opts.onRestart?.(orphans)
  }

  /**
   * Wakes every sender waiting for room (whenWritable), full or not: the
   * peer was declared dead, so the link will not drain, and they must decide
   * what to do with their message instead (forwarding.ts).
   */
  wakeWriters (): void {
    this.releaseDrainWaiters()
  }

  private releaseDrainWaitersIfBelow (): void {
    if (this.drainWaiters.length > 0 && this.bufferedBytes <= this.opts.maxBufferedBytes / 2) this.releaseDrainWaiters()
  }

  private releaseDrainWaiters (): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  // ---- sending -------------------------------------------------------------------------

  private scheduleFlush (): void {
    if (this.flushScheduled !== undefined || this.waitingDrain || this.state !== 'up') return
    this.flushScheduled = setImmediate(() => {
      this.flushScheduled = undefined
      this.flush()
    })
  }

  /**
   * Writes what is queued: control records first, then messages in order,
   * cut into frames of about frameBytes, all frames of this turn in one
   * write. Stops at about 4 frames per turn so acks from the peer get read
   * in between, and while the socket asks us to wait for 'drain'.
   */
  private flush (): void {
    if (this.connection.socket === undefined || this.state !== 'up' || this.waitingDrain) return
    const frames: Buffer[] = []
    let total = 0
    let i = 0
    while ((this.ackDue || this.heldDue || this.pingDue || i < this.outbox.length) && total < 4 * this.opts.frameBytes) {
      const parts: Buffer[] = []
      let size = 0
      if (this.ackDue) { parts.push(encodeRecord({ type: 'ack', seq: this.ackable })); size += 7; this.ackDue = false }
      if (this.heldDue) {
        const record = this.heldRecord()
        parts.push(record)
        size += record.length
      }
      if (this.pingDue) { parts.push(encodeRecord({ type: 'ping' })); size += 1; this.pingDue = false }
      const start = i
      let dataBytes = 0
      while (i < this.outbox.length && (i === start || size + dataBytes + DATA_HEADER + this.outbox[i]!.payload.length <= this.opts.frameBytes)) {
        dataBytes += DATA_HEADER + this.outbox[i]!.payload.length
        i++
      }
      if (i > start) {
        // The control records go in front, in the same buffer: no concat of the whole frame.
        const data = Buffer.allocUnsafe(size + dataBytes)
        let off = 0
        for (const p of parts) off += p.copy(data, off)
        parts.length = 0
        for (let k = start; k < i; k++) {
          const o = this.outbox[k]!
          off = writeDataHeader(data, off, o.seq, o.payload.length, o.hold)
          o.payload.copy(data, off)
          off += o.payload.length
          if (o.seq === 0) this.outboxUnreliableBytes -= DATA_HEADER + o.payload.length
          else if (o.seq > this.highestWritten) this.highestWritten = o.seq
        }
        parts.push(data)
        this.counters.messagesSent += i - start
      }
      const f = this.connection.sealFrame(parts.length === 1 ? parts[0]! : Buffer.concat(parts))
      frames.push(f)
      total += f.length
    }
    this.outbox = i === this.outbox.length ? [] : this.outbox.slice(i)
    if (frames.length === 0) return
    this.counters.frames += frames.length
    this.counters.writes++
    this.counters.bytesSent += total
    const ok = this.connection.write(frames)
    this.releaseDrainWaitersIfBelow()
    if (!ok) {
      this.waitingDrain = true
      this.connection.onceDrained(() => {
        this.waitingDrain = false
        this.scheduleFlush()
      })
    } else if (this.outbox.length > 0) {
      this.scheduleFlush()
    }
  }

  /** What this side settled of the peer's held messages (Settlements.report); due again when the list was cut. */
  private heldRecord (): Buffer {
    const { upTo, seqs } = this.settlements.report(this.delivered)
    this.heldDue = seqs.length === MAX_HELD_LIST
    return encodeRecord({ type: 'held', upTo, seqs })
  }
}
