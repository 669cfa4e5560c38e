// Every message a peer sends over its link (messages.ts has the kinds and
// their wire format), to the mechanism that handles it; the retained sync
// rounds (SYNC_*) all go to retained replication.
//
// A message that does not decode is dropped with a warning, and settled when
// it was held, so its sender does not keep it for ever. A handler's
// asynchronous failure is a warning too: the link and the messages after it
// go on.
import type { DeliveryInfo, PeerLink } from './peer-link.js'
import { decodeMessage, type DataPlaneMessage } from './messages.js'
import type { Mechanisms } from './mechanisms.js'

export function dispatchMessage (to: Mechanisms, link: PeerLink, payload: Buffer, info: DeliveryInfo): void {
  let m: DataPlaneMessage
  try {
    m = decodeMessage(payload)
  } catch (err) {
    to.ctx.warn('warn', { peer: link.peerName, err: (err as Error).message }, 'undecodable data-plane message dropped')
    if (info.hold === true && info.source !== undefined) link.settle(info.source)
    return
  }
  const peer = link.peerName
  const failed = (what: string, client?: string) => (err: Error): void => to.ctx.warn('warn', { peer, client, err: err.message }, what)
  switch (m.kind) {
    case 'publish':
      to.inbound.deliver(link, m.publish, info)
      return
    case 'retained':
      to.retained.received(link, m.entry, info)
      return
    case 'route-table':
      to.routing.applyTable(peer, m.table)
      to.forwarding.tableArrived(peer)
      return
    case 'route-delta': {
      const r = to.routing.applyDelta(peer, m.delta)
      // No table yet: one is on its way (every link start sends one). A
      // skipped version with a table: reconnect to get a fresh one.
      if (r === 'gap' && to.routing.peerVersion(peer) !== undefined) link.dropConnection()
      return
    }
    case 'client-connected':
      to.takeover.announced(m.clientId, m.stamp, peer)
      return
    case 'session-request':
      to.moves.serve(link, m).catch(failed('session request not served', m.clientId))
      return
    case 'session-transfer':
      if (!to.moves.answered(peer, m.requestId, m.session, m.replica === true) && m.session !== null && m.replica !== true) {
        // Not an answer we wait for: a stopping peer hands us the session, or
        // an answer came after its CONNECT went on without it.
        to.moves.adopt(link, m.requestId, m.clientId, m.session).catch(failed('handed-off session not stored', m.clientId))
      }
      return
    case 'session-ack':
      to.moves.acknowledged(m.requestId, peer).catch(failed('moved session not removed here', m.clientId))
      return
    case 'replica':
      to.replication.apply(peer, m.ops)
      return
    case 'rescue-request':
      to.rescue.answer(link, m.from, m.requestId, m.filters, m.takeover === true).catch(failed('rescue not answered'))
      return
    case 'rescue':
      to.rescue.received(link, m.requestId, m.publish, info)
      return
    case 'rescue-done':
      to.rescue.done(peer, m.requestId)
      return
    case 'barrier-request':
      to.gates.barrierRequested(link, m.id, m.from).catch(failed('barrier not answered'))
      return
    case 'barrier-done':
      to.gates.barrierDone(peer, m.id)
      return
    case 'replica-lost':
      to.replication.replicasLost(peer, m.clientIds)
      return
    case 'start-settled':
      to.startWindow.received(peer)
      return
    case 'sessions-held':
      to.reconcile.held(peer, m.clientIds).catch(failed('sessions held from disk not answered'))
      return
    case 'replicas-done':
      to.reconcile.replicasDone(peer, m.home)
      return
    case 'sessions-newer':
      to.reconcile.newer(peer, m.clientIds).catch(failed('sessions read from disk not reconciled'))
      return
    default:
      to.retained.handleSync(link, m)
  }
}
