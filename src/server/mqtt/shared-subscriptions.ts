// MQTT 5 shared subscriptions ($share/{group}/{filter}, §4.8.2) on one node,
// which aedes 2.0.0-beta.1 refuses (SUBACK 0x9E, and CONNACK advertises them
// as unavailable) and, for MQTT 3.1.1, subscribes to as a literal topic.
//
// How it plugs in: inbound.ts rewrites `$share/g/f` in SUBSCRIBE and
// UNSUBSCRIBE to a marker topic `$share-group/g/f` before aedes sees the
// packet. aedes then does everything it does for a normal subscription
// (authorization, SUBACK, persistence and restore of the session, options such
// as no-local) on a topic no PUBLISH can reach (a client PUBLISH to the marker
// prefix is refused). This class keeps the members of each group and holds
// one subscription per group on the real filter; each message goes to one
// connected member, round-robin, through that member's own aedes delivery
// function for the marker (so its granted QoS and options apply).
//
// Limits: messages for a group with no connected member are dropped (they are
// not queued for offline members); retained messages are not sent on a new
// shared subscription (§4.8.2), which the marker topic gives for free.
// In a cluster (clusterMode, set by the data plane) a group spans every
// node: the data plane picks one node per message and calls deliverTo()
// there; aedes' own emission to the group is then ignored.
import type { Aedes, Client } from 'aedes'
import { internals, type DeliveredPacket, type DeliverFunc } from './aedes-internals.js'
import type { AedesPersistence } from './persistence.js'
import { parseShared, SHARE_PREFIX } from '../../topic-filter.js'

export const SHARE_MARKER = '$share-group/'
/** The end of the broker id a group's copy of a message carries (deliverOne). */
const COPY_SUFFIX = '/$share'

/** `$share/g/f` -> `$share-group/g/f`; undefined when not a valid shared subscription. */
export function toMarker (topic: string): string | undefined {
  const shared = parseShared(topic)
  return shared === undefined ? undefined : `${SHARE_MARKER}${shared.group}/${shared.filter}`
}

export function isMarker (topic: string): boolean {
  return topic.charCodeAt(0) === 36 && topic.startsWith(SHARE_MARKER)
}

/** Whether a delivery is a shared-subscription group's copy of a message. */
export function isSharedCopy (packet: { brokerId?: string | null }): boolean {
  return typeof packet.brokerId === 'string' && packet.brokerId.endsWith(COPY_SUFFIX)
}

/** The topic as the client wrote it: `$share-group/g/f` -> `$share/g/f`; others unchanged. */
export function displayTopic (topic: string): string {
  return isMarker(topic) ? SHARE_PREFIX + topic.slice(SHARE_MARKER.length) : topic
}

function filterOf (marker: string): string {
  const rest = marker.slice(SHARE_MARKER.length)
  return rest.slice(rest.indexOf('/') + 1)
}

interface Member {
  client: Client
  qos: number
}

interface Group {
  filter: string
  members: Member[]
  next: number
  deliver: DeliverFunc
}

export class SharedSubscriptions {
  private readonly aedes: Aedes
  private readonly groups = new Map<string, Group>()
  private readonly copyId: string
  /** The groups' own subscriptions to their filters (the cluster must not route them as ordinary ones). */
  private readonly groupDelivers = new WeakSet<DeliverFunc>()
  /**
   * Set by the cluster data plane: a group then delivers only what
   * deliverTo() hands it (the one message in N the cluster-wide pick gave
   * this node), not every message aedes emits on its filter.
   */
  clusterMode = false

  constructor (aedes: Aedes) {
    this.aedes = aedes
    this.copyId = `${aedes.id}${COPY_SUFFIX}`
    aedes.on('subscribe', (subs, client) => {
      for (const sub of subs) {
        if (isMarker(sub.topic) && sub.qos < 0x80) this.add(client, sub.topic, sub.qos)
      }
    })
    aedes.on('unsubscribe', (topics, client) => {
      for (const topic of topics) if (isMarker(topic)) this.remove(client, topic)
    })
    aedes.on('clientDisconnect', (client) => this.removeClient(client))
    // A resumed persistent session gets its subscriptions back without a
    // 'subscribe' event.
    aedes.on('clientReady', (client) => {
      for (const [topic, sub] of Object.entries(internals(client).subscriptions)) {
        if (isMarker(topic)) this.add(client, topic, sub.qos)
      }
    })
  }

  private persistence (): AedesPersistence {
    return (this.aedes as unknown as { persistence: AedesPersistence }).persistence
  }

  /** Groups and their member client ids, for introspection. */
  snapshot (): Array<{ topic: string, members: string[] }> {
    return [...this.groups].map(([marker, g]) => ({ topic: displayTopic(marker), members: g.members.map((m) => m.client.id) }))
  }

  private add (client: Client, marker: string, qos: number): void {
    let group = this.groups.get(marker)
    if (group === undefined) {
      const filter = filterOf(marker)
      const created: Group = { filter, members: [], next: 0, deliver: (packet, cb) => this.deliver(marker, created, packet, cb) }
      group = created
      this.groupDelivers.add(created.deliver)
      this.groups.set(marker, group)
      this.aedes.subscribe(filter, group.deliver as never, () => {})
    }
    const existing = group.members.find((m) => m.client === client)
    if (existing !== undefined) existing.qos = qos
    else group.members.push({ client, qos })
  }

  private remove (client: Client, marker: string): void {
    const group = this.groups.get(marker)
    if (group === undefined) return
    group.members = group.members.filter((m) => m.client !== client)
    if (group.members.length === 0) {
      this.groups.delete(marker)
      this.aedes.unsubscribe(group.filter, group.deliver as never, () => {})
    }
  }

  private removeClient (client: Client): void {
    for (const [marker, group] of [...this.groups]) {
      if (group.members.some((m) => m.client === client)) this.remove(client, marker)
    }
  }

  /** Whether `fn` is a group's own subscription function. */
  isGroupDeliver (fn: unknown): boolean {
    return typeof fn === 'function' && this.groupDelivers.has(fn as DeliverFunc)
  }

  /** Delivers `packet` to one connected member of the group of `marker` (cluster mode); false when there is no such group here. */
  deliverTo (marker: string, packet: DeliveredPacket, cb: () => void): boolean {
    const group = this.groups.get(marker)
    if (group === undefined) return false
    this.deliverOne(marker, group, packet, cb)
    return true
  }

  private deliver (marker: string, group: Group, packet: DeliveredPacket, cb: () => void): void {
    if (this.clusterMode) return cb()
    this.deliverOne(marker, group, packet, cb)
  }

  private deliverOne (marker: string, group: Group, packet: DeliveredPacket, cb: () => void): void {
    // Wildcards at the first level never match $ topics. [MQTT-4.7.2-1]
    if (packet.topic.charCodeAt(0) === 36 && (group.filter.charCodeAt(0) === 35 || group.filter.charCodeAt(0) === 43)) return cb()
    const n = group.members.length
    for (let i = 0; i < n; i++) {
      const member = group.members[(group.next + i) % n]!
      const sub = internals(member.client).subscriptions[marker]
      if (member.client.closed || sub === undefined) continue
      group.next = (group.next + i + 1) % n
      // The copy carries the member's QoS: aedes downgrades by exact topic
      // only. [MQTT-3.8.4-8] Its own brokerId keeps aedes' per-client
      // de-duplication (keyed by brokerId and counter) from mistaking it for
      // the same message arriving through a normal subscription of the member.
      const qos = Math.min(packet.qos, sub.qos)
      const copy: DeliveredPacket = { ...packet, qos, brokerId: this.copyId }
      if (qos > 0 && !member.client.clean) {
        // aedes expects a persistent session's QoS 1/2 deliveries in its
        // outgoing queue (it only enqueues for subscriptions the store can
        // match, which the marker topic is not); queued, it also survives
        // the member going offline before acknowledging.
        this.persistence().outgoingEnqueue({ clientId: member.client.id }, copy as never)
          .then(() => sub.func(copy, cb), () => cb())
      } else {
        sub.func(copy, cb)
      }
      return
    }
    cb()
  }
}
