// The run's history: an append-only list of timestamped events that the
// workloads, the nemesis and the observer record, and the only input of the
// checker. Plain JSON, so a history can be saved, replayed into the checker
// and written by hand in tests.

export type Qos = 0 | 1 | 2

/** What a node process is doing, as the launcher and nemesis know it. */
export type NodeState = 'up' | 'killed' | 'stopped' | 'paused' | 'starting'

/** Membership states as /api/discovery/members reports them (memberlist numbering 0..3). */
export type ViewState = 'alive' | 'suspect' | 'dead' | 'left'

export type HistoryEvent =
  | { type: 'run-start', t: number, seed: number, nodes: string[], faults: string[], durationMs: number }
  | { type: 'node', t: number, node: string, state: NodeState }
  | { type: 'fault-start', t: number, id: number, kind: string, targets: string[], description: string }
  | { type: 'fault-end', t: number, id: number }
  /** A client connection got its CONNACK. `conn` is unique per connection. */
  | { type: 'connect', t: number, client: string, conn: string, role: ClientRole, node: string, protocol: 4 | 5, clean: boolean, sessionPresent: boolean }
  | { type: 'disconnect', t: number, client: string, conn: string, node: string, reason: string }
  /** A subscriber connection's SUBACK arrived: from here on it expects messages. */
  | { type: 'subscribed', t: number, client: string, conn: string, node: string, filter: string }
  /** A publish was handed to the connection (QoS 0: written; 1/2: awaiting ack). */
  | { type: 'publish', t: number, client: string, conn: string, node: string, topic: string, seq: number, qos: Qos }
  /** PUBACK (QoS 1), PUBCOMP (QoS 2) or, for QoS 0, the write completing. */
  | { type: 'ack', t: number, client: string, conn: string, node: string, topic: string, seq: number, qos: Qos }
  /** The publish got no ack (connection lost, timeout): the broker owes nothing for it. */
  | { type: 'publish-failed', t: number, client: string, conn: string, node: string, topic: string, seq: number, qos: Qos, reason: string, retained?: string | null }
  /**
   * A QoS 2 PUBLISH reached the subscriber (PUBREC sent). The delivery to the
   * application ('deliver') follows the broker's PUBREL; one without the
   * other is a QoS 2 flow the broker never completed.
   */
  | { type: 'received', t: number, client: string, conn: string, node: string, topic: string, publisher: string, seq: number, packetId: number }
  | { type: 'deliver', t: number, client: string, conn: string, node: string, topic: string, publisher: string, pubConn: string, seq: number, qos: Qos, dup: boolean }
  /** A retained write (value) or clear (value null) that the broker acknowledged. */
  | { type: 'retained', t: number, client: string, conn: string, node: string, topic: string, value: string | null }
  /** One node's answer to "what does each member believe": member name -> state; null when unreachable. */
  | { type: 'view', t: number, node: string, members: Record<string, ViewState> | null }
  /** A /proxy/api/mqtt/clients sample: client ids that were listed by more than one member. */
  | { type: 'clients-sample', t: number, duplicates: Array<{ client: string, nodes: string[] }> }
  /** The retained set of one node at the end of the run (topic -> payload); null when unreachable. */
  | { type: 'retained-final', t: number, node: string, topics: Record<string, string> | null }
  | { type: 'run-end', t: number }

export type ClientRole = 'publisher' | 'subscriber' | 'retainer' | 'takeover'
export type EventType = HistoryEvent['type']
export type EventOf<T extends EventType> = Extract<HistoryEvent, { type: T }>

/** Distributes Omit over the union, so each event keeps its own fields. */
export type NewEvent = HistoryEvent extends infer E ? E extends HistoryEvent ? Omit<E, 't'> : never : never

export class History {
  private readonly list: HistoryEvent[] = []
  private readonly now: () => number
  private readonly listeners = new Set<(e: HistoryEvent) => void>()

  constructor (now: () => number = Date.now) {
    this.now = now
  }

  record (event: NewEvent): HistoryEvent {
    const e = { ...event, t: this.now() } as HistoryEvent
    this.list.push(e)
    for (const l of this.listeners) l(e)
    return e
  }

  /** Called for every event recorded from now on (live counters). */
  onEvent (listener: (e: HistoryEvent) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  get events (): readonly HistoryEvent[] { return this.list }
}

/** The events of one type, in order. */
export function eventsOf<T extends EventType> (events: readonly HistoryEvent[], type: T): Array<EventOf<T>> {
  return events.filter((e): e is EventOf<T> => e.type === type)
}
