// The push/pull full-state exchange (memberlist pushPull,
// sendAndReceiveState and mergeRemoteState): two members swap their whole
// member tables over the transport's exchange (TCP). state.ts runs it on
// join, every push_pull_interval with one live member (less often past 32
// members: pushPullScale), and at once with a member that probed us while
// unknown; it repairs whatever gossip missed.
//
// - Merging: alive entries are taken as alive messages, left as a leave;
//   dead ones only as suspicion, so a stale view never kills a member
//   outright (it gets the chance to refute).
// - The answer is our state as it was before merging theirs, as memberlist
//   does.
// - A joiner whose table has a name we know as a live member at another
//   address is answered with an error instead (two processes share a name;
//   cluster.name must be unique): it fails with CLUSTER_NAME_CONFLICT and we
//   keep our view.
// - The user-state hook (memberlist's Delegate.LocalState /
//   MergeRemoteState): the membership carries the bytes; what they mean is
//   the delegate's business. Nothing in the node uses it today (the data
//   plane compares retained digests over its own links); it is tested as
//   memberlist's extension point.
// - Freshness (with a key): a request is sealed with a random nonce and its
//   send time; a request older or newer than REPLAY_WINDOW_MS, or whose nonce
//   was seen in that window, is refused, so a recorded request replayed
//   later is not merged. The answer is sealed bound to the request's nonce,
//   so a recorded answer does not open as the answer to another request.
//   Both sides prove the key: the request by opening, the answer by opening
//   under our fresh nonce.
//     sealed request = keyring.seal(nonce (16) | time ms (8) | stream message)
//     sealed answer  = keyring.seal(stream message, bound to the nonce)
// - The TCP fallback probe (state.ts) is the other stream request: a ping
//   answered with an ack, each with the sender's pending gossip, sealed the
//   same way, so an unkeyed host can neither ask nor answer one. A node
//   older than it counts the ping as a malformed stream and closes it: the
//   probe fails, as it did before.
import { randomBytes } from 'node:crypto'
import { BrokerHaError } from '../../../errors.js'
import type { Keyring } from '../keyring.js'
import {
  CodecError, OUR_VERSIONS, decodeStream, encodeStream,
  type BadPacketReason, type Message, type NodeState, type StreamMessage, type Versions
} from './codec.js'
import type { MemberTable, MemberTableObserver } from './member-table.js'
import { addressKey, type Address, type Transport } from './transport.js'

export interface UserStateDelegate {
  /** Bytes to send along with our member list; `join` is true during a join. */
  localState (join: boolean): Buffer
  /** The peer's bytes from the same exchange. Must not throw (errors are swallowed). */
  mergeRemoteState (state: Buffer, join: boolean): void
}

export interface PushPullObserver extends Pick<MemberTableObserver, 'nameConflict'> {
  badPacket?: (reason: BadPacketReason, from: Address, detail: string) => void
}

/** How far a request's send time may be from our clock (clocks of members agree within this). */
export const REPLAY_WINDOW_MS = 5 * 60_000
/** Most request nonces remembered; a full cache refuses requests rather than forget one still in its window. */
const MAX_NONCES = 100_000
const NONCE = 16
const HEADER = NONCE + 8

export interface PushPullOptions {
  name: string
  /** Wall clock (ms) for request freshness. */
  now: () => number
  table: MemberTable
  transport: Transport
  keyring: Keyring
  /** How long an exchange may take (the profile's tcpTimeout). */
  timeoutMs: number
  observer: PushPullObserver
  /** Between the state machine's start and stop: no exchange is answered outside it. */
  running: () => boolean
  /**
   * A stream ping for `node` with the pinger's gossip: the gossip to send
   * back with the ack, or undefined for no ack (it does not name us, or we
   * are leaving).
   */
  answerPing: (from: Address, node: string, gossip: Message[]) => Message[] | undefined
}

/** memberlist pushPullScale: beyond 32 members, push/pull less often so the cluster-wide TCP load stays flat. */
export function pushPullScale (interval: number, n: number): number {
  if (n <= 32) return interval
  return Math.ceil(Math.log2(n) - Math.log2(32) + 1) * interval
}

export class PushPull {
  delegate: UserStateDelegate | undefined
  private readonly opts: PushPullOptions
  /** Nonces of requests answered within the replay window, with when they leave it. */
  private readonly seen = new Map<string, number>()

  constructor (opts: PushPullOptions) {
    this.opts = opts
  }

  /** Exchanges state with `address` and merges its answer; a name conflict during a join is thrown. */
  async exchange (address: Address, join: boolean): Promise<void> {
    const response = await this.request(address, this.localStateMessage(join), this.opts.timeoutMs)
    if (response.type === 'error') {
      if (response.code === 'CLUSTER_NAME_CONFLICT') throw new BrokerHaError('CLUSTER_NAME_CONFLICT', response.message, { key: 'cluster.name' })
      throw new Error(`${addressKey(address)} refused the exchange: ${response.message}`)
    }
    if (response.type !== 'push-pull') throw new Error(`${addressKey(address)} answered a push/pull with ${response.type}`)
    const conflict = join ? this.findConflict(response.nodes) : undefined
    if (conflict !== undefined) throw new BrokerHaError('CLUSTER_NAME_CONFLICT', conflict.message, { key: 'cluster.name' })
    this.mergeState(response.nodes, response.userState, join)
  }

  /**
   * The TCP fallback probe: pings `node` at `address` over a stream, with
   * `gossip`. Resolves with the gossip of its ack within `timeoutMs`, or
   * undefined on anything else; never rejects.
   */
  async ping (address: Address, seq: number, node: string, gossip: Message[], timeoutMs: number): Promise<Message[] | undefined> {
    try {
      const response = await this.request(address, { type: 'ping', seq, node, gossip }, timeoutMs)
      return response.type === 'ack' && response.seq === seq ? response.gossip : undefined
    } catch {
      return undefined
    }
  }

  /** Sends one sealed stream request (see the top of the file) and opens its answer. */
  private async request (address: Address, message: StreamMessage, timeoutMs: number): Promise<StreamMessage> {
    const { keyring } = this.opts
    const header = Buffer.allocUnsafe(HEADER)
    const nonce = randomBytes(NONCE)
    nonce.copy(header, 0)
    header.writeDoubleBE(this.opts.now(), NONCE)
    const raw = await this.opts.transport.exchange(address, keyring.seal(Buffer.concat([header, encodeStream(message)])), timeoutMs)
    try {
      return decodeStream(keyring.open(raw, nonce))
    } catch (err) {
      if (err instanceof CodecError) this.opts.observer.badPacket?.(err.reason, address, err.message)
      throw err
    }
  }

  /** A peer's stream request: a push/pull is answered with our state, then theirs is merged; a ping for us with an ack. */
  async answer (from: Address, request: Buffer): Promise<Buffer | undefined> {
    if (!this.opts.running()) return undefined
    const { keyring, observer } = this.opts
    let message: StreamMessage
    let nonce: Buffer
    try {
      const plain = keyring.open(request)
      if (plain.length < HEADER) throw new CodecError('decode', 'push/pull request without its header')
      nonce = Buffer.from(plain.subarray(0, NONCE))
      if (keyring.encrypted) this.checkFresh(nonce, plain.readDoubleBE(NONCE))
      message = decodeStream(plain.subarray(HEADER))
    } catch (err) {
      const e = err instanceof CodecError ? err : new CodecError('decode', String(err))
      observer.badPacket?.(e.reason, from, e.message)
      return undefined
    }
    if (message.type === 'ping') {
      const gossip = this.opts.answerPing(from, message.node, message.gossip)
      return gossip === undefined ? undefined : keyring.seal(encodeStream({ type: 'ack', seq: message.seq, gossip }), nonce)
    }
    if (message.type !== 'push-pull') return undefined
    if (message.join) {
      // The newcomer is told why, so it can fail with a clear error; we keep our view.
      const conflict = this.findConflict(message.nodes)
      if (conflict !== undefined) {
        observer.nameConflict?.(conflict.name, conflict.existing, conflict.claimed)
        return keyring.seal(encodeStream({ type: 'error', code: 'CLUSTER_NAME_CONFLICT', message: conflict.message }), nonce)
      }
    }
    // Answer with our state as it was before merging theirs, as memberlist does.
    const response = keyring.seal(encodeStream(this.localStateMessage(message.join)), nonce)
    this.mergeState(message.nodes, message.userState, message.join)
    return response
  }

  /** Throws CodecError('replay') for a request outside the window or seen before; remembers it otherwise. */
  private checkFresh (nonce: Buffer, sent: number): void {
    const now = this.opts.now()
    if (!Number.isFinite(sent) || Math.abs(now - sent) > REPLAY_WINDOW_MS) {
      throw new CodecError('replay', `push/pull request sent ${Math.round((now - sent) / 1000)} s from our clock (a replay, or clocks apart by more than ${REPLAY_WINDOW_MS / 1000} s)`)
    }
    const key = nonce.toString('base64')
    if (this.seen.has(key)) throw new CodecError('replay', 'push/pull request seen before (a replay)')
    if (this.seen.size >= MAX_NONCES) {
      for (const [k, until] of this.seen) if (until < now) this.seen.delete(k)
      if (this.seen.size >= MAX_NONCES) throw new CodecError('replay', 'too many push/pull requests in the replay window')
    }
    this.seen.set(key, now + 2 * REPLAY_WINDOW_MS)
    if (this.seen.size % 1024 === 0) for (const [k, until] of this.seen) if (until < now) this.seen.delete(k)
  }

  private localStateMessage (join: boolean): StreamMessage {
    const nodes: NodeState[] = [...this.opts.table.all()].map((m) => ({
      name: m.name, addr: m.addr, port: m.port, meta: m.meta, incarnation: m.incarnation, state: m.state, vsn: (m.vsn ?? OUR_VERSIONS) as Versions
    }))
    const user = this.delegate?.localState(join)
    return { type: 'push-pull', join, nodes, userState: user === undefined ? '' : user.toString('base64') }
  }

  /**
   * A name we know as a live member at one address claimed live at another
   * means two processes share a name (cluster.name must be unique).
   */
  private findConflict (nodes: NodeState[]): { message: string, name: string, existing: Address, claimed: Address } | undefined {
    for (const n of nodes) {
      if (n.state !== 'alive') continue
      const known = this.opts.table.get(n.name)
      if (known === undefined || (known.state !== 'alive' && known.state !== 'suspect')) continue
      if (known.addr !== n.addr || known.port !== n.port) {
        return {
          message: `cluster member name "${n.name}" is used by both ${known.addr}:${known.port} and ${n.addr}:${n.port}; cluster.name must be unique`,
          name: n.name,
          existing: { host: known.addr, port: known.port },
          claimed: { host: n.addr, port: n.port }
        }
      }
    }
    return undefined
  }

  /** memberlist mergeState (see the top of the file). */
  private mergeState (nodes: NodeState[], userState: string, join: boolean): void {
    const table = this.opts.table
    for (const n of nodes) {
      switch (n.state) {
        case 'alive':
          table.alive({ type: 'alive', incarnation: n.incarnation, node: n.name, addr: n.addr, port: n.port, meta: n.meta, vsn: n.vsn })
          break
        case 'left':
          table.dead({ type: 'dead', incarnation: n.incarnation, node: n.name, from: n.name })
          break
        case 'dead':
        case 'suspect':
          table.suspect({ type: 'suspect', incarnation: n.incarnation, node: n.name, from: this.opts.name })
          break
      }
    }
    if (userState !== '' && this.delegate !== undefined) {
      try {
        this.delegate.mergeRemoteState(Buffer.from(userState, 'base64'), join)
      } catch {
        // The delegate's data is its own business; it must not break membership.
      }
    }
  }
}
