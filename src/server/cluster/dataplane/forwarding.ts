// Local publishes out to the peers that deliver them, and the wait that
// makes a publisher's acknowledgement mean "two nodes hold it".
//
// - aedes' `published` seam, layer 'cluster' (hooks.ts): a message from a
//   local client (or a will) goes to every peer with a matching subscription
//   (routing-table.ts peersFor), and to one node per shared subscription
//   group (pickShared, weighted round robin; this node's picks are
//   delivered here). QoS 1/2 travel as held messages (peer-link.ts).
// - The acknowledgement to the publisher (PUBACK, PUBREC) waits for aedes'
//   callback, which waits here:
//     * always while a link's buffer is full (backpressure: a slow peer slows
//       the publishers instead of growing the heap);
//     * with `cluster.ack_after: replicated`, until every peer it went to
//       settled it (queued it for its sessions, and they are held by their
//       replica holders). The local sessions' replicas are waited for by the
//       persistence observer (session-replication.ts) before this runs.
//   A peer that is declared dead or left, or that restarted, no longer
//   holds anything up: what it never settled is kept on its link for whoever
//   takes its sessions over (rescue.ts). After `cluster.ack_timeout` the
//   acknowledgement goes anyway; both are counted
//   (broker_cluster_acks_unreplicated_total) and the timeout is logged.
// - The 'publish' layer stamps every message entering the broker with its
//   identity (message-stamp.ts) before aedes copies it.
import type { Aedes } from 'aedes'
import { MESSAGE_TARGETS } from '../../mqtt/bus-events.js'
import { toMarker } from '../../mqtt/shared-subscriptions.js'
import { brokerInternals, type DeliveredPacket } from '../../mqtt/aedes-internals.js'
import { nodeOfProcess, stampOf } from '../../mqtt/message-stamp.js'
import type { DataPlaneContext } from './context.js'
import { encodeMessage, type ForwardedPublish } from './messages.js'
import type { PeerLink } from './peer-link.js'
import type { Qos } from './retained-store.js'

type PublishedPacket = Parameters<Aedes['published']>[0] & { [MESSAGE_TARGETS]?: string[], brokerId?: string, brokerCounter?: number, messageExpiry?: number }

/** Why an acknowledgement went without a second node's confirmation. */
export type UnreplicatedReason = 'peer-gone' | 'timeout'

export class Forwarding {
  private readonly ctx: DataPlaneContext
  /** Waits for a peer's settlement, released when the peer goes (dead, left, restarted). */
  private readonly waiting = new Map<string, Set<() => void>>()
  readonly unreplicated: Record<UnreplicatedReason, number> = { 'peer-gone': 0, timeout: 0 }
  /** Set by the composition: local publishes for the old routes of restarted peers (rescue.ts). */
  orphanTraffic: ((topic: string, qos: number, encode: () => Buffer) => void) | undefined

  constructor (ctx: DataPlaneContext) {
    this.ctx = ctx
  }

  /** The 'publish' layer: every message entering aedes gets its stamp now, so `published` sees it too. */
  stampLayer (next: Aedes['publish']): Aedes['publish'] {
    const aedes = brokerInternals(this.ctx.aedes)
    return ((packet: { brokerId?: string | null, brokerCounter?: number }, ...rest: unknown[]) => {
      if (packet.brokerCounter === undefined || packet.brokerCounter === 0) {
        packet.brokerId = aedes.id
        packet.brokerCounter = ++aedes.counter
      }
      return (next as (...a: unknown[]) => void)(packet, ...rest)
    }) as Aedes['publish']
  }

  /** The 'published' layer: see the top of the file. */
  publishedLayer (next: Aedes['published']): Aedes['published'] {
    return (packet, client, done) => {
      if (client === null || client === undefined || packet.topic.startsWith('$SYS/')) return next(packet, client, done)
      const forwarded = this.forward(packet as PublishedPacket)
      // Its copies queued here for stored sessions, held by their replica holders (persistence.ts takeHeld).
      const queued = this.ctx.store.takeHeld(stampOf(packet as PublishedPacket))
      const waits = forwarded === undefined ? queued : queued === undefined ? forwarded : Promise.all([forwarded, queued])
      if (waits === undefined) return next(packet, client, done)
      // The inner layers (the bus event naming the peers) run now; the acknowledgement waits.
      next(packet, client, (err) => { waits.then(() => done(err), () => done(err)) })
    }
  }

  /**
   * Sends a local publish to the peers with a matching subscription (a
   * retained one reached every peer already as a replicated entry).
   * Returns what the acknowledgement waits for, or undefined.
   */
  forward (packet: PublishedPacket): Promise<unknown> | undefined {
    const ctx = this.ctx
    let sharedFor: Map<string, string[]> | undefined
    for (const pick of ctx.routing.pickShared(packet.topic)) {
      const key = `$share/${pick.group}/${pick.filter}`
      if (pick.node === ctx.name) {
        this.deliverShared(key, packet)
        continue
      }
      sharedFor ??= new Map()
      const keys = sharedFor.get(pick.node)
      if (keys === undefined) sharedFor.set(pick.node, [key])
      else keys.push(key)
    }
    if (ctx.links.size === 0 || !ctx.running()) return undefined
    this.orphanTraffic?.(packet.topic, packet.qos ?? 0, () => encodeMessage({ kind: 'publish', publish: this.toForward(packet) }))
    const plain = ctx.routing.peersFor(packet.topic)
    const targets = sharedFor === undefined ? plain : [...new Set([...plain, ...sharedFor.keys()])].sort()
    packet[MESSAGE_TARGETS] = targets as string[]
    if (targets.length === 0) return undefined
    const base = this.toForward(packet)
    let plainBuf: Buffer | undefined
    let waits: Array<Promise<void>> | undefined
    for (const name of targets) {
      const link = ctx.links.get(name)
      if (link === undefined) continue
      const keys = sharedFor?.get(name)
      const buf = keys === undefined
        ? (plainBuf ??= encodeMessage({ kind: 'publish', publish: { ...base, plain: true } }))
        : encodeMessage({ kind: 'publish', publish: { ...base, plain: plain.includes(name), shared: keys } })
      const w = this.send(link, buf, base.qos)
      if (w !== undefined) (waits ??= []).push(w)
    }
    return waits === undefined ? undefined : Promise.all(waits)
  }

  /**
   * Sends a copy of a queued message to the node a session moved to, for
   * that session only (session-moves.ts); resolves when it is held there
   * (or that node is gone).
   */
  forwardToSession (peer: string, packet: DeliveredPacket, clientId: string): Promise<void> | undefined {
    const link = this.ctx.links.get(peer)
    if (link === undefined || link.state === 'stopped') return undefined
    const buf = encodeMessage({ kind: 'publish', publish: { ...this.toForward(packet as PublishedPacket), plain: false, sessions: [clientId] } })
    return this.send(link, buf, (packet.qos ?? 1) as Qos, true)
  }

  /** A message as it crosses to a peer, stamp and expiry included. */
  toForward (packet: PublishedPacket): ForwardedPublish {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    const brokerId = packet.brokerId ?? this.ctx.process
    const props = packet.properties as Record<string, unknown> | undefined
    let messageExpiry = packet.messageExpiry
    if (messageExpiry === undefined && typeof props?.messageExpiryInterval === 'number' && props.messageExpiryInterval > 0) {
      messageExpiry = Date.now() + props.messageExpiryInterval * 1000
    }
    return {
      origin: nodeOfProcess(brokerId),
      brokerId,
      brokerCounter: packet.brokerCounter ?? 0,
      topic: packet.topic,
      payload,
      qos: (packet.qos ?? 0) as Qos,
      retain: packet.retain === true,
      plain: true,
      shared: [],
      sessions: [],
      ...(props === undefined ? {} : { properties: props }),
      ...(messageExpiry === undefined ? {} : { messageExpiry })
    }
  }

  /** Queues a message on a link; returns what its acknowledgement waits for. */
  private send (link: PeerLink, buf: Buffer, qos: Qos, mustHold = false): Promise<void> | undefined {
    const ctx = this.ctx
    if (qos === 0) {
      link.send(buf, 'unreliable')
      return undefined
    }
    const parked = ctx.links.isParked(link.peerName)
    const r = link.send(buf, 'held')
    if (r === 'backpressure') {
      // A peer declared dead must not stall the publishers: once its buffer is full, what it would have received is dropped (and logged).
      if (parked) {
        ctx.warn('warn', { peer: link.peerName }, 'buffer for a peer declared dead is full: message not kept for it')
        return undefined
      }
      return this.sendWhenWritable(link, buf, mustHold)
    }
    if (parked || (!ctx.replicatedAcks && !mustHold)) return undefined
    return this.held(link, link.lastQueuedSeq)
  }

  private async sendWhenWritable (link: PeerLink, buf: Buffer, mustHold: boolean): Promise<void> {
    for (;;) {
      await link.whenWritable()
      if (link.state === 'stopped') return
      if (link.send(buf, 'held') !== 'backpressure') break
    }
    if (this.ctx.replicatedAcks || mustHold) await this.held(link, link.lastQueuedSeq)
  }

  /**
   * Resolves when the peer settled message `seq`, or is gone, or after
   * cluster.ack_timeout; never rejects.
   */
  held (link: PeerLink, seq: number): Promise<void> {
    const peer = link.peerName
    return new Promise<void>((resolve) => {
      let done = false
      const finish = (reason?: UnreplicatedReason): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        this.waiting.get(peer)?.delete(release)
        if (reason !== undefined) this.unreplicated[reason]++
        resolve()
      }
      const release = (): void => finish('peer-gone')
      let set = this.waiting.get(peer)
      if (set === undefined) { set = new Set(); this.waiting.set(peer, set) }
      set.add(release)
      const timeoutMs = this.ctx.config.cluster.ack_timeout
      const timer = setTimeout(() => {
        this.ctx.warn('warn', { peer, timeoutMs }, 'acknowledgement sent without the peer confirming it holds the message: it did not answer within cluster.ack_timeout')
        finish('timeout')
      }, timeoutMs)
      timer.unref()
      link.whenHeld(seq).then((held) => finish(held ? undefined : 'peer-gone'), () => finish('peer-gone'))
    })
  }

  /** The peer was declared dead, left, or restarted: nothing waits for it any more. */
  peerGone (peer: string): void {
    const set = this.waiting.get(peer)
    if (set === undefined) return
    this.waiting.delete(peer)
    for (const release of [...set]) release()
  }

  /** Hands a message to this node's member of shared subscription `key` (`$share/g/f`), picked for it cluster-wide. */
  deliverShared (key: string, message: { topic: string, payload: Buffer | string, qos?: number, properties?: unknown, brokerId?: string, brokerCounter?: number }): void {
    const marker = toMarker(key)
    if (marker === undefined) return
    const packet: DeliveredPacket = {
      cmd: 'publish',
      topic: message.topic,
      payload: typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload,
      qos: message.qos ?? 0,
      retain: false,
      dup: false,
      ...(message.brokerId === undefined ? {} : { brokerId: message.brokerId, brokerCounter: message.brokerCounter }),
      ...(message.properties === undefined ? {} : { properties: message.properties as Record<string, unknown> })
    }
    this.ctx.mqtt.shared.deliverTo(marker, packet, () => {})
  }
}
