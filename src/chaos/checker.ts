// The checker: a pure function from a recorded history to a verdict per
// invariant (design.md, "Invariants"). No clocks, no I/O: tests feed it
// hand-written histories with one defect each and assert it fails.
//
// Vocabulary:
// - a subscriber *epoch* is one session of a subscriber client: it starts at
//   a CONNACK without `session present` and continues through reconnections
//   that report `session present` (a persistent session resumed);
// - an epoch *survives* when it is the client's last one and its connection
//   was still open when the run ended. Messages acknowledged to a publisher
//   during a surviving epoch must all arrive. For an epoch that ended (its
//   node died with it), a message is still required when the subscriber
//   received, in the same epoch, a message of the same publisher and topic
//   published clearly later: that stream was reaching it, so an earlier
//   acknowledged message of it must not be missing.
// - a connected subscriber *waits* for an owed message from the later of its
//   acknowledgement and the connection's start until the message arrives or
//   the connection ends, not counting time a partition, link cut or pause
//   was under way; the longest wait must stay within stallBoundMs (a session
//   that silently stopped receiving shows here even if a reconnect released it).
import { eventsOf, type EventOf, type HistoryEvent, type Qos } from './history.js'
import { INVARIANTS, type CheckScope, type InvariantId } from './invariants.js'
import { topicMatches } from '../topic-filter.js'

export interface CheckOptions {
  scope: CheckScope
  /** Most time membership may take to converge after a fault ends, and to detect a dead node. */
  convergenceBoundMs: number
  /** Most time a publisher may be unable to publish after a disruption. */
  publishRecoveryBoundMs: number
  /** After a SUBACK, time allowed for the subscription to take effect (cross-node: route propagation). */
  subscribeSettleMs: number
  /** A fault still counts as active this long after it ended (reconnections, redeliveries). */
  faultGraceMs: number
  /** In an epoch that ended, a message is required only if a message acknowledged this much later arrived. */
  deliverySlackMs: number
  /** Longest a connected subscriber may wait for an owed message (design.md, invariant 7). */
  stallBoundMs: number
}

export const DEFAULT_CHECK_OPTIONS: Omit<CheckOptions, 'scope' | 'convergenceBoundMs'> = {
  publishRecoveryBoundMs: 30_000,
  subscribeSettleMs: 250,
  faultGraceMs: 5000,
  deliverySlackMs: 250,
  stallBoundMs: 2000
}

export type VerdictStatus = 'pass' | 'fail' | 'skip' | 'info'

export interface Verdict {
  id: InvariantId
  title: string
  status: VerdictStatus
  /** The number the invariant is about (count or milliseconds). */
  value: number
  /** The figure for the table, e.g. "0 of 1234" or "max 2.1 s (bound 6.0 s)". */
  figure: string
  /** A few examples of what broke, for the report. */
  details: string[]
}

export interface HistorySummary {
  durationMs: number
  faults: Record<string, number>
  published: Record<'0' | '1' | '2', number>
  acknowledged: Record<'0' | '1' | '2', number>
  publishFailed: number
  deliveries: number
  connections: number
  retainedOps: number
  subscriberEpochs: number
}

export interface CheckResult {
  ok: boolean
  verdicts: Verdict[]
  summary: HistorySummary
}

const MAX_DETAILS = 10

interface Conn { conn: string, node: string, connectedAt: number, subscribedAt?: number, filter?: string, endAt?: number, endReason?: string }
interface Epoch { client: string, clean: boolean, conns: Conn[], survived: boolean, deliveries: Array<EventOf<'deliver'>>, received: Set<string> }

type Ack = EventOf<'ack'>
const msgKey = (client: string, topic: string, seq: number): string => `${client}|${topic}|${seq}`

export function checkHistory (events: readonly HistoryEvent[], options: CheckOptions): CheckResult {
  const sorted = [...events].sort((a, b) => a.t - b.t)
  const runEnd = sorted.find((e) => e.type === 'run-end')?.t ?? sorted.at(-1)?.t ?? 0
  const runStart = sorted[0]?.t ?? 0
  const windows = faultWindows(sorted, runEnd, options.faultGraceMs)
  const acks = new Map<string, Ack>()
  for (const a of eventsOf(sorted, 'ack')) acks.set(msgKey(a.client, a.topic, a.seq), a)
  const epochs = subscriberEpochs(sorted, options.scope.sessions)

  const computed: Record<InvariantId, Omit<Verdict, 'id' | 'title' | 'status'> & { failed: boolean }> = {
    'membership-convergence': checkConvergence(sorted, runEnd, options),
    'lost-acked': undefined!,
    'qos2-stalled': undefined!,
    stall: undefined!,
    'qos0-loss': undefined!,
    'qos2-duplicates': undefined!,
    'duplicates-without-faults': undefined!,
    order: undefined!,
    'retained-divergence': undefined!,
    'retained-resurrected': undefined!,
    'client-id-twice': checkClientIds(sorted, windows),
    'publish-recovery': checkPublishRecovery(sorted, runEnd, options)
  }
  const loss = checkLoss(sorted, epochs, acks, options)
  computed['lost-acked'] = loss.acked
  computed['qos0-loss'] = loss.qos0
  computed['qos2-stalled'] = loss.stalled
  computed.stall = checkStalls(epochs, loss.owed, faultWindows(sorted, runEnd, 0), runEnd, options)
  const dup = checkDuplicates(epochs, windows)
  computed['qos2-duplicates'] = dup.qos2
  computed['duplicates-without-faults'] = dup.withoutFaults
  computed.order = checkOrder(epochs, acks)
  const retained = checkRetained(sorted, options.scope)
  computed['retained-divergence'] = retained.divergence
  computed['retained-resurrected'] = retained.resurrected

  const verdicts: Verdict[] = INVARIANTS.map(({ id, title }) => {
    const c = computed[id]
    const status: VerdictStatus = id === 'qos0-loss' ? 'info' : !options.scope.enabled.has(id) ? 'skip' : c.failed ? 'fail' : 'pass'
    return { id, title, status, value: c.value, figure: c.figure, details: c.details.slice(0, MAX_DETAILS) }
  })
  return { ok: verdicts.every((v) => v.status !== 'fail'), verdicts, summary: summarize(sorted, runStart, runEnd, epochs.length) }
}

// ---- faults ------------------------------------------------------------------

interface Window { start: number, end: number, kind: string }

function faultWindows (events: readonly HistoryEvent[], runEnd: number, graceMs: number): Window[] {
  const ends = new Map(eventsOf(events, 'fault-end').map((e) => [e.id, e.t]))
  return eventsOf(events, 'fault-start').map((f) => ({ start: f.t, end: (ends.get(f.id) ?? runEnd) + graceMs, kind: f.kind }))
}

const inWindow = (windows: readonly Window[], t: number, kinds?: readonly string[]): boolean =>
  windows.some((w) => t >= w.start && t <= w.end && (kinds === undefined || kinds.includes(w.kind)))

// ---- sessions ----------------------------------------------------------------

/**
 * Sessions per node (scope without `sessions`): a session that resumes on
 * another node starts a new epoch even with "session present", because what
 * reaches the old node while the session moves is not owed at that level
 * (docs/known-gaps.md, "The data plane": the move window). `--scope full` owes it.
 */
function subscriberEpochs (events: readonly HistoryEvent[], sessionsCrossNode: boolean): Epoch[] {
  const epochs: Epoch[] = []
  const current = new Map<string, Epoch>()
  const byConn = new Map<string, { epoch: Epoch, conn: Conn }>()
  for (const e of events) {
    if (e.type === 'connect' && e.role === 'subscriber') {
      const conn: Conn = { conn: e.conn, node: e.node, connectedAt: e.t }
      let epoch = current.get(e.client)
      const moved = epoch !== undefined && !sessionsCrossNode && epoch.conns.at(-1)?.node !== e.node
      if (epoch === undefined || e.clean || !e.sessionPresent || moved) {
        epoch = { client: e.client, clean: e.clean, conns: [], survived: false, deliveries: [], received: new Set() }
        epochs.push(epoch)
        current.set(e.client, epoch)
      }
      epoch.conns.push(conn)
      byConn.set(e.conn, { epoch, conn })
    } else if (e.type === 'subscribed') {
      const c = byConn.get(e.conn)
      if (c !== undefined && c.conn.subscribedAt === undefined) { c.conn.subscribedAt = e.t; c.conn.filter = e.filter }
    } else if (e.type === 'disconnect') {
      const c = byConn.get(e.conn)
      if (c !== undefined && c.conn.endAt === undefined) { c.conn.endAt = e.t; c.conn.endReason = e.reason }
    } else if (e.type === 'deliver') {
      byConn.get(e.conn)?.epoch.deliveries.push(e)
    } else if (e.type === 'received') {
      byConn.get(e.conn)?.epoch.received.add(msgKey(e.publisher, e.topic, e.seq))
    }
  }
  for (const epoch of current.values()) {
    const last = epoch.conns.at(-1)!
    epoch.survived = last.endAt === undefined || last.endReason === 'run-end'
  }
  return epochs
}

/** The node a subscriber epoch was on at time t (the latest connection begun by then). */
function nodeAt (epoch: Epoch, t: number): string | undefined {
  let node: string | undefined
  for (const c of epoch.conns) if (c.connectedAt <= t) node = c.node
  return node
}

function checkLoss (events: readonly HistoryEvent[], epochs: readonly Epoch[], acks: ReadonlyMap<string, Ack>, options: CheckOptions) {
  const allAcks = [...acks.values()]
  // When each message was handed to its connection: a message published
  // before a subscription took effect is not owed to it, however late its
  // acknowledgement came (an acknowledgement waits for a second node).
  const publishedAt = new Map<string, number>()
  for (const p of eventsOf(events, 'publish')) {
    const k = msgKey(p.client, p.topic, p.seq)
    if (!publishedAt.has(k)) publishedAt.set(k, p.t)
  }
  const owed = new Map<Epoch, Ack[]>()
  let requiredAcked = 0
  let lostAcked = 0
  let required0 = 0
  let lost0 = 0
  let stalled = 0
  const stalledDetails: string[] = []
  const details: string[] = []
  const details0: string[] = []
  for (const epoch of epochs) {
    const first = epoch.conns.find((c) => c.subscribedAt !== undefined)
    if (first === undefined) continue
    const from = first.subscribedAt! + options.subscribeSettleMs
    const delivered = new Set(epoch.deliveries.map((d) => msgKey(d.publisher, d.topic, d.seq)))
    // An epoch that ended owes a message only where the same publisher's
    // stream was still reaching it: its latest publish among what arrived.
    const until = new Map<string, number>()
    if (!epoch.survived) {
      for (const d of epoch.deliveries) {
        const k = msgKey(d.publisher, d.topic, d.seq)
        const at = publishedAt.get(k) ?? acks.get(k)?.t
        const stream = `${d.publisher}|${d.topic}`
        if (at !== undefined && at - options.deliverySlackMs > (until.get(stream) ?? -Infinity)) until.set(stream, at - options.deliverySlackMs)
      }
    }
    for (const a of allAcks) {
      const sent = publishedAt.get(msgKey(a.client, a.topic, a.seq)) ?? a.t
      const owedUntil = epoch.survived ? Infinity : (until.get(`${a.client}|${a.topic}`) ?? -Infinity)
      if (a.t < from || sent < from || sent > owedUntil || !topicMatches(first.filter ?? '#', a.topic)) continue
      // Without the data plane only a publisher on the subscriber's own node can reach it.
      if (!options.scope.crossNode && nodeAt(epoch, a.t) !== a.node) continue
      const got = delivered.has(msgKey(a.client, a.topic, a.seq))
      if (a.qos === 0) {
        required0++
        if (!got) { lost0++; if (details0.length < MAX_DETAILS) details0.push(`${epoch.client} missed ${a.topic}#${a.seq}`) }
        continue
      }
      requiredAcked++
      const list = owed.get(epoch)
      if (list === undefined) owed.set(epoch, [a])
      else list.push(a)
      if (!got && a.qos === 2 && epoch.received.has(msgKey(a.client, a.topic, a.seq))) {
        // It reached the client; the broker never released it (no PUBREL).
        stalled++
        if (stalledDetails.length < MAX_DETAILS) stalledDetails.push(`${epoch.client}: ${a.topic}#${a.seq} arrived on ${nodeAt(epoch, a.t) ?? '?'}, PUBREL never came`)
      } else if (!got) {
        lostAcked++
        if (details.length < MAX_DETAILS) details.push(`${epoch.client} (session from ${first.conn} on ${first.node}) missed ${a.topic}#${a.seq} QoS ${a.qos} acknowledged by ${a.node} at +${a.t - (events[0]?.t ?? 0)} ms`)
      }
    }
  }
  // A persistent session must survive its node (it is kept on a second node):
  // reconnecting without `session present` loses it. Owed only where sessions are.
  let sessionsLost = 0
  const seen = new Set<string>()
  for (const c of eventsOf(events, 'connect')) {
    if (c.role !== 'subscriber' || c.clean) continue
    if (seen.has(c.client) && !c.sessionPresent) {
      sessionsLost++
      if (options.scope.sessions && details.length < MAX_DETAILS) details.push(`persistent session of ${c.client} lost (reconnected to ${c.node} without session present)`)
    }
    seen.add(c.client)
  }
  const lost = lostAcked + (options.scope.sessions ? sessionsLost : 0)
  return {
    owed,
    acked: {
      failed: lost > 0,
      value: lost,
      figure: `${lostAcked} of ${requiredAcked}` + (sessionsLost > 0 ? `; ${sessionsLost} persistent sessions restarted${options.scope.sessions ? '' : ' (sessions per node today)'}` : ''),
      details
    },
    stalled: { failed: stalled > 0, value: stalled, figure: `${stalled} of ${requiredAcked}`, details: stalledDetails },
    qos0: { failed: false, value: lost0, figure: `${lost0} of ${required0}${required0 > 0 ? ` (${(100 * lost0 / required0).toFixed(1)}%)` : ''}`, details: details0 }
  }
}

/** Faults during which a subscriber may be cut off from what it is owed without a stall: its node unreachable or frozen, or every node down. */
const CUT_OFF: readonly string[] = ['partition', 'links', 'pause', 'restart-all', 'restart-all-late']

function checkStalls (epochs: readonly Epoch[], owed: ReadonlyMap<Epoch, Ack[]>, windows: readonly Window[], runEnd: number, options: CheckOptions) {
  // The cut-off windows merged, in order.
  const cutOff: Array<[number, number]> = []
  for (const w of windows.filter((x) => CUT_OFF.includes(x.kind)).sort((x, y) => x.start - y.start)) {
    const last = cutOff.at(-1)
    if (last !== undefined && w.start <= last[1]) last[1] = Math.max(last[1], w.end)
    else cutOff.push([w.start, w.end])
  }
  /** Time in [from, to] outside every cut-off window. */
  const outsideFaults = (from: number, to: number): number => {
    let t = to - from
    for (const [a, b] of cutOff) t -= Math.max(0, Math.min(b, to) - Math.max(a, from))
    return t
  }
  let max = 0
  let over = 0
  const worst: Array<{ wait: number, text: string }> = []
  for (const [epoch, acks] of owed) {
    const firstDelivery = new Map<string, EventOf<'deliver'>>()
    for (const d of epoch.deliveries) {
      const k = msgKey(d.publisher, d.topic, d.seq)
      if (!firstDelivery.has(k)) firstDelivery.set(k, d)
    }
    for (const a of acks) {
      const d = firstDelivery.get(msgKey(a.client, a.topic, a.seq))
      const arrived = d?.t ?? Infinity
      for (const c of epoch.conns) {
        const end = Math.min(c.endAt ?? runEnd, arrived)
        const ready = Math.max(a.t, c.connectedAt, c.subscribedAt ?? c.connectedAt)
        if (ready >= end) continue
        const wait = outsideFaults(ready, end)
        if (wait > max) max = wait
        if (wait > options.stallBoundMs) {
          over++
          const how = end === arrived ? `arrived ${wait} ms after` : `not given to it for the ${wait} ms its connection lasted after`
          worst.push({ wait, text: `${epoch.client} on ${c.node}: ${a.topic}#${a.seq} (QoS ${a.qos}, acknowledged by ${a.node}) ${how} it was owed` })
        }
      }
    }
  }
  worst.sort((x, y) => y.wait - x.wait)
  return {
    failed: over > 0,
    value: max,
    figure: `max ${seconds(max)} (bound ${seconds(options.stallBoundMs)})` + (over > 0 ? `, ${over} waits over it` : ''),
    details: worst.slice(0, MAX_DETAILS).map((w) => w.text)
  }
}

function checkDuplicates (epochs: readonly Epoch[], windows: readonly Window[]) {
  let qos2 = 0
  let quiet = 0
  let total = 0
  const d2: string[] = []
  const dq: string[] = []
  for (const epoch of epochs) {
    const seen = new Set<string>()
    for (const d of epoch.deliveries) {
      const k = msgKey(d.publisher, d.topic, d.seq)
      if (!seen.has(k)) { seen.add(k); continue }
      total++
      if (d.qos === 2) { qos2++; if (d2.length < MAX_DETAILS) d2.push(`${epoch.client} got ${d.topic}#${d.seq} (QoS 2) twice, on ${d.node}`) }
      if (!inWindow(windows, d.t)) { quiet++; if (dq.length < MAX_DETAILS) dq.push(`${epoch.client} got ${d.topic}#${d.seq} (QoS ${d.qos}) twice with no fault active`) }
    }
  }
  return {
    qos2: { failed: qos2 > 0, value: qos2, figure: `${qos2}`, details: d2 },
    withoutFaults: { failed: quiet > 0, value: quiet, figure: `${quiet}` + (total > quiet ? ` (${total - quiet} during faults)` : ''), details: dq }
  }
}

function checkOrder (epochs: readonly Epoch[], acks: ReadonlyMap<string, Ack>) {
  let reordered = 0
  const details: string[] = []
  for (const epoch of epochs) {
    const highest = new Map<string, number>()
    const seen = new Set<string>()
    for (const d of epoch.deliveries) {
      const k = msgKey(d.publisher, d.topic, d.seq)
      // Only acknowledged QoS 1/2 messages are ordered; redeliveries are duplicates, not reorderings.
      if (d.qos === 0 || seen.has(k) || !acks.has(k)) continue
      seen.add(k)
      const stream = `${d.publisher}|${d.topic}`
      const max = highest.get(stream) ?? -Infinity
      if (d.seq < max) {
        reordered++
        if (details.length < MAX_DETAILS) details.push(`${epoch.client} got ${d.topic}#${d.seq} after #${max}`)
      } else {
        highest.set(stream, d.seq)
      }
    }
  }
  return { failed: reordered > 0, value: reordered, figure: `${reordered}`, details }
}

// ---- retained ------------------------------------------------------------------

function checkRetained (events: readonly HistoryEvent[], scope: CheckScope) {
  const last = new Map<string, EventOf<'retained'>>()
  for (const r of eventsOf(events, 'retained')) {
    const prev = last.get(r.topic)
    if (prev === undefined || r.t >= prev.t) last.set(r.topic, r)
  }
  // A retained write whose acknowledgement never came (its node died first)
  // may or may not have been applied: after the last acknowledged write of
  // its topic, its value is as good as that one.
  const unacked = new Map<string, Set<string>>()
  for (const f of eventsOf(events, 'publish-failed')) {
    if (f.retained === undefined) continue
    const after = last.get(f.topic)
    if (after !== undefined && after.t > f.t) continue
    let values = unacked.get(f.topic)
    if (values === undefined) { values = new Set(); unacked.set(f.topic, values) }
    values.add(f.retained ?? '(none)')
  }
  const finals = eventsOf(events, 'retained-final')
  const reachable = finals.filter((f) => f.topics !== null) as Array<EventOf<'retained-final'> & { topics: Record<string, string> }>
  const divergenceDetails: string[] = finals.filter((f) => f.topics === null).map((f) => `${f.node} did not answer the final retained query`)
  const topics = new Set<string>([...last.keys()])
  for (const f of reachable) for (const t of Object.keys(f.topics)) topics.add(t)
  let diverged = 0
  for (const topic of [...topics].sort()) {
    const values = new Set(reachable.map((f) => f.topics[topic] ?? '(none)'))
    const op = last.get(topic)
    // With the data plane every node must also hold the last acknowledged write,
    // or one written after it whose acknowledgement was lost with its node.
    const held = [...values]
    const later = unacked.get(topic)
    const settledOnLater = held.length === 1 && later !== undefined && later.has(held[0]!)
    if (scope.crossNode && op !== undefined && !settledOnLater) values.add(op.value ?? '(none)')
    if (values.size > 1) {
      diverged++
      if (divergenceDetails.length < MAX_DETAILS) divergenceDetails.push(`${topic}: ${reachable.map((f) => `${f.node}=${f.topics[topic] ?? '(none)'}`).join(' ')}${op === undefined ? '' : ` last acked ${op.value ?? 'clear'} on ${op.node}`}`)
    }
  }
  const unreachable = finals.length - reachable.length
  let resurrected = 0
  let cleared = 0
  const details: string[] = []
  for (const [topic, op] of last) {
    if (op.value !== null) continue
    cleared++
    // Without the data plane a clear only binds the node that acknowledged it.
    for (const f of reachable) {
      if (!scope.crossNode && f.node !== op.node) continue
      const held = f.topics[topic]
      if (held !== undefined && unacked.get(topic)?.has(held) !== true) {
        resurrected++
        if (details.length < MAX_DETAILS) details.push(`${topic} cleared on ${op.node} but ${f.node} holds ${JSON.stringify(held)}`)
      }
    }
  }
  return {
    divergence: { failed: diverged + unreachable > 0 || finals.length === 0, value: diverged, figure: finals.length === 0 ? 'not queried' : `${diverged} of ${topics.size} on ${reachable.length} nodes`, details: divergenceDetails },
    resurrected: { failed: resurrected > 0, value: resurrected, figure: `${resurrected} of ${cleared} cleared`, details }
  }
}

// ---- client ids --------------------------------------------------------------------

function checkClientIds (events: readonly HistoryEvent[], windows: readonly Window[]) {
  // A sample asks the members one after the other, so a takeover between two
  // answers can list a client twice once; only a duplicate seen in two
  // consecutive samples counts. During a partition both sides serve clients
  // (availability over refusal), so those samples are not judged; nor during
  // a gossip cut, whose members list different views.
  const samples = eventsOf(events, 'clients-sample').filter((s) => !inWindow(windows, s.t, ['partition', 'links', 'gossip']))
  const bad = new Set<string>()
  const details: string[] = []
  for (let i = 1; i < samples.length; i++) {
    const before = new Map(samples[i - 1]!.duplicates.map((d) => [d.client, [...d.nodes].sort().join(',')]))
    for (const d of samples[i]!.duplicates) {
      const nodes = [...d.nodes].sort().join(',')
      if (before.get(d.client) === nodes && !bad.has(d.client)) {
        bad.add(d.client)
        if (details.length < MAX_DETAILS) details.push(`${d.client} connected on ${nodes}`)
      }
    }
  }
  return { failed: bad.size > 0, value: bad.size, figure: `${bad.size} (${samples.length} samples)`, details }
}

// ---- membership ------------------------------------------------------------------

function checkConvergence (events: readonly HistoryEvent[], runEnd: number, options: CheckOptions) {
  const names = eventsOf(events, 'run-start')[0]?.nodes ?? []
  const starts = eventsOf(events, 'fault-start')
  const endOf = new Map(eventsOf(events, 'fault-end').map((e) => [e.id, e.t]))
  const details: string[] = []
  let maxConverge = 0
  let maxDetect = 0
  let failed = false
  const state = new Map<string, string>()
  const views = new Map<string, Record<string, string> | null>()
  const converged = (): boolean => {
    const up = names.filter((n) => state.get(n) === 'up')
    if (up.length === 0) return false
    return up.every((o) => {
      const v = views.get(o)
      if (v === undefined || v === null) return false
      return names.every((n) => state.get(n) === 'up' ? v[n] === 'alive' : v[n] !== 'alive')
    })
  }
  const detected = (targets: string[], observers: string[]): boolean => observers.every((o) => {
    const v = views.get(o)
    return v !== undefined && v !== null && targets.every((t) => v[t] === 'dead' || v[t] === 'left')
  })
  const falseDeath = (): string | undefined => {
    const up = names.filter((n) => state.get(n) === 'up')
    for (const o of up) {
      const v = views.get(o)
      if (v === undefined || v === null) continue
      const gone = up.find((n) => v[n] === undefined || v[n] === 'dead' || v[n] === 'left')
      if (gone !== undefined) return `${o} listed ${gone} ${v[gone] ?? 'gone'}`
    }
    return undefined
  }
  // Replay the history once; per fault, note when detection and convergence happened.
  type Track = { id: number, kind: string, targets: string[], start: number, end: number | undefined, deadline: number, detectedAt?: number, convergedAt?: number, falseDeath?: string }
  const tracks: Track[] = starts.map((f, i) => ({ id: f.id, kind: f.kind, targets: f.targets, start: f.t, end: endOf.get(f.id), deadline: starts[i + 1]?.t ?? runEnd }))
  const observe = (t: number): void => {
    for (const tr of tracks) {
      if (t < tr.start || t > tr.deadline) continue
      if (tr.detectedAt === undefined && (tr.end === undefined || t <= tr.end) && (tr.kind === 'kill' || tr.kind === 'stop' || tr.kind === 'partition')) {
        const observers = names.filter((n) => state.get(n) === 'up' && !tr.targets.includes(n))
        if (observers.length > 0 && detected(tr.targets, observers)) tr.detectedAt = t
      }
      if (tr.convergedAt === undefined && tr.end !== undefined && t >= tr.end && converged()) tr.convergedAt = t
      // Only UDP is cut, TCP is open: the TCP fallback probe reaches every
      // member, so a running node listed dead (or gone) is a false death.
      if (tr.kind === 'udp' && tr.falseDeath === undefined && (tr.end === undefined || t <= tr.end)) tr.falseDeath = falseDeath()
    }
  }
  for (const e of events) {
    if (e.type === 'node') state.set(e.node, e.state)
    else if (e.type === 'view') views.set(e.node, e.members)
    observe(e.t)
  }
  for (const tr of tracks) {
    if (tr.falseDeath !== undefined) { failed = true; details.push(`fault #${tr.id} udp ${tr.targets.join(',')}: ${tr.falseDeath} while only UDP was cut`) }
    if (tr.detectedAt !== undefined) {
      const d = tr.detectedAt - tr.start
      maxDetect = Math.max(maxDetect, d)
      if (d > options.convergenceBoundMs) { failed = true; details.push(`fault #${tr.id} ${tr.kind}: detected after ${d} ms`) }
    }
    if (tr.end === undefined) continue
    if (tr.convergedAt === undefined) {
      failed = true
      details.push(`fault #${tr.id} ${tr.kind} ${tr.targets.join(',')}: membership did not converge within ${tr.deadline - tr.end} ms after it ended`)
      continue
    }
    const c = tr.convergedAt - tr.end
    maxConverge = Math.max(maxConverge, c)
    if (c > options.convergenceBoundMs) { failed = true; details.push(`fault #${tr.id} ${tr.kind}: converged after ${c} ms`) }
  }
  return {
    failed,
    value: maxConverge,
    figure: `max ${seconds(maxConverge)} after heal, detect ${seconds(maxDetect)} (bound ${seconds(options.convergenceBoundMs)}, ${tracks.length} faults)`,
    details
  }
}

// ---- publishers -------------------------------------------------------------------

/**
 * From a publisher's first failed publish (or lost connection) to its next
 * acknowledgement, less the time spent in faults that began after the
 * outage did: a new fault is not the broker's slowness to recover from the
 * last (two whole-cluster restarts 3.5 s apart, the second before the
 * first's start window was over, made one 36.5 s outage). A publisher
 * stuck through many faults still adds up the time between them.
 */
function checkPublishRecovery (events: readonly HistoryEvent[], runEnd: number, options: CheckOptions) {
  const publishers = new Set(eventsOf(events, 'connect').filter((c) => c.role === 'publisher').map((c) => c.client))
  const faults = faultWindows(events, runEnd, 0).sort((a, b) => a.start - b.start)
  /** Time within [from, to] covered by faults that began after `from`. */
  const excused = (from: number, to: number): number => {
    let total = 0
    let reach = from
    for (const f of faults) {
      if (f.start <= from) continue
      const a = Math.max(f.start, reach)
      const b = Math.min(f.end, to)
      if (b > a) { total += b - a; reach = b }
    }
    return total
  }
  const outageStart = new Map<string, number>()
  let max = 0
  let outages = 0
  const details: string[] = []
  for (const e of events) {
    if (e.type === 'ack' && publishers.has(e.client)) {
      const s = outageStart.get(e.client)
      if (s !== undefined) {
        const d = e.t - s - excused(s, e.t)
        outages++
        max = Math.max(max, d)
        if (d > options.publishRecoveryBoundMs && details.length < MAX_DETAILS) details.push(`${e.client} could not publish for ${d} ms (outside later faults)`)
        outageStart.delete(e.client)
      }
    } else if ((e.type === 'publish-failed' || (e.type === 'disconnect' && e.reason !== 'run-end')) && publishers.has(e.client) && !outageStart.has(e.client)) {
      outageStart.set(e.client, e.t)
    }
  }
  let unresolved = 0
  for (const [client, s] of outageStart) {
    if (runEnd - s - excused(s, runEnd) > options.publishRecoveryBoundMs) {
      unresolved++
      details.push(`${client} never published again after +${runEnd - s} ms before the end`)
    }
  }
  const failed = max > options.publishRecoveryBoundMs || unresolved > 0
  return { failed, value: max, figure: `max ${seconds(max)} over ${outages} outages (bound ${seconds(options.publishRecoveryBoundMs)})`, details }
}

// ---- summary -----------------------------------------------------------------

function summarize (events: readonly HistoryEvent[], start: number, end: number, epochs: number): HistorySummary {
  const byQos = (list: Array<{ qos: Qos }>): Record<'0' | '1' | '2', number> => ({
    0: list.filter((x) => x.qos === 0).length,
    1: list.filter((x) => x.qos === 1).length,
    2: list.filter((x) => x.qos === 2).length
  })
  const faults: Record<string, number> = {}
  for (const f of eventsOf(events, 'fault-start')) faults[f.kind] = (faults[f.kind] ?? 0) + 1
  return {
    durationMs: end - start,
    faults,
    published: byQos(eventsOf(events, 'publish')),
    acknowledged: byQos(eventsOf(events, 'ack')),
    publishFailed: eventsOf(events, 'publish-failed').length,
    deliveries: eventsOf(events, 'deliver').length,
    connections: eventsOf(events, 'connect').length,
    retainedOps: eventsOf(events, 'retained').length,
    subscriberEpochs: epochs
  }
}

export function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}
