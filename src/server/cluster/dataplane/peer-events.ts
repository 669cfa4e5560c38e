// What the data plane's mechanisms do when a peer's link or the peer itself
// changes: the link set's handlers (link-set.ts says when each fires; each
// mechanism's own file says what its part means). The peers' messages go
// to message-dispatch.ts.
//
// A link that comes up gets the whole route table first. A peer that is
// gone (dead or left) or restarted has its sessions held here as replicas
// taken over (promotion.ts). What a restarted peer, or one whose link is
// dropped for good, never settled is kept for rescue; for a restarted one
// first, before its new route table replaces the old one.
import type { LinkSetHandlers } from './link-set.js'
import type { PeerLink } from './peer-link.js'
import { encodeMessage } from './messages.js'
import { dispatchMessage } from './message-dispatch.js'
import type { Mechanisms } from './mechanisms.js'

/**
 * The link set's handlers. `mechanisms` is read at each event: the links
 * are built before the mechanisms that use them.
 */
export function peerEvents (mechanisms: () => Mechanisms): LinkSetHandlers {
  return {
    onMessage: (link, payload, info) => dispatchMessage(mechanisms(), link, payload, info),
    onUp: (link, restarted) => linkUp(mechanisms(), link, restarted),
    onGone: (peer, state) => peerGone(mechanisms(), peer, state),
    onReachable: (peer) => {
      const m = mechanisms()
      m.promotion.reachable(peer)
      // Publishes waiting for its takeover go to it again (forwarding.ts).
      m.rescue.forgetTakeover(peer)
    },
    onBack: (peer) => {
      const m = mechanisms()
      m.promotion.undo(peer)
      // Replicas it held for us and that moved on while it was away go there.
      m.replication.peerUp(peer)
      // Publishes there may wait for what we took over from others meanwhile.
      m.rescue.announceTakeovers(peer)
    },
    onRestart: (peer, orphans) => peerRestarted(mechanisms(), peer, orphans),
    onDown: (peer) => {
      const m = mechanisms()
      m.replication.holderDown(peer)
      m.forwarding.linkDown(peer)
      m.startWindow.linkDown(peer)
    },
    onDropped: (peer, unsettled) => {
      const m = mechanisms()
      // Kept for whoever took (or takes) its sessions over: a node that left handed them off.
      if (unsettled.length > 0) m.rescue.keepOrphans(peer, unsettled, m.routing.filtersOf(peer))
      m.routing.removePeer(peer)
      m.startWindow.linkDown(peer)
      m.rescue.forgetTakeover(peer)
      m.forwarding.peerGone(peer)
      m.forwarding.forget(peer)
      m.replication.peerGone(peer)
      m.replication.forget(peer)
      m.moves.peerGone(peer)
    }
  }
}

function linkUp (m: Mechanisms, link: PeerLink, restarted: boolean): void {
  if (restarted) m.ctx.log.info({ peer: link.peerName }, 'peer restarted: taking over its sessions held here as replicas, replicating ours to it afresh')
  // Before the route table: a peer that waits for our table (a node back
  // after a restart, before it publishes the wills on its disk) has heard
  // of the clients that connected here before it was linked.
  m.takeover.announceRecent(link.peerName)
  // Every (re)connect sends the whole table: it supersedes any delta the
  // peer missed, and is how a 'gap' gets repaired.
  link.send(encodeMessage({ kind: 'route-table', table: m.routing.localTable() }), 'control')
  m.retained.linkUp(link)
  if (!m.links.isParked(link.peerName)) {
    m.replication.peerUp(link.peerName)
    // After the snapshots just queued for it: its replicas of ours read from its disk are settled then.
    m.reconcile.snapshotsSent(link.peerName)
  }
  // Sessions read from our disk: the peer may hold newer copies (taken over while we were down).
  m.reconcile.linkUp(link.peerName)
  // After the route table: whether our start window is over (start-window.ts).
  m.startWindow.linkUp(link.peerName)
}

function peerGone (m: Mechanisms, peer: string, state: 'dead' | 'left'): void {
  m.forwarding.peerGone(peer)
  m.replication.peerGone(peer)
  m.moves.peerGone(peer)
  if (state === 'left') {
    m.routing.removePeer(peer)
    m.promotion.confirmDown(peer)
    m.reconcile.homeGone(peer)
  } else {
    // A partition looks like a death: only a refused connection proves the process is gone.
    m.links.probe(peer).then((answer) => {
      if (answer !== 'refused') return
      m.promotion.confirmDown(peer)
      m.reconcile.homeGone(peer)
    }, () => {})
  }
  // Sessions that left it for here lately: what it was sent for them and never settled.
  m.moves.movedAwayFrom(peer)
  // Its sessions are ours now: those it handed off on a graceful stop are
  // gone from our replicas already, what is left it could not hand off.
  // Then the peers learn that this node's part of the takeover is done.
  const since = Date.now()
  m.promotion.promote(peer)
    .catch((err: Error) => m.ctx.log.warn({ peer, err: err.message }, 'sessions of a dead node not taken over'))
    .finally(() => { if (m.links.isParked(peer)) m.rescue.tookOver(peer, since) })
}

/** A peer came back as a new process: it lost every session it held; ours are replicated to it afresh. */
function peerRestarted (m: Mechanisms, peer: string, orphans: Array<{ seq: number, payload: Buffer }>): void {
  // Before the new process's route table replaces the old one.
  m.rescue.keepOrphans(peer, orphans, m.routing.filtersOf(peer))
  m.forwarding.peerGone(peer)
  m.replication.peerGone(peer)
  m.moves.peerGone(peer)
  m.promotion.confirmDown(peer)
  m.moves.movedAwayFrom(peer)
  // Confirmed down until its sessions are taken over: the wills owed for its
  // clients are due at their time (a restart proves the old process gone),
  // not after cluster.partition_will_delay. promote() awaits each store, so
  // clearing the confirmation at once left every will but none waiting 60 s.
  m.promotion.promote(peer)
    .catch((err: Error) => m.ctx.log.warn({ peer, err: err.message }, 'sessions of a restarted node not taken over'))
    .finally(() => m.promotion.alive(peer))
}
