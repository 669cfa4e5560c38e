// The session store's observer (src/server/mqtt/persistence-observer.ts):
// every change of a session, fanned out to the mechanisms that keep what
// depends on it - its replica (session-replication.ts), the filters this
// node routes for stored subscriptions (local-routes.ts), late copies after
// a session on its way to another node (session-moves.ts), and retained
// replication for local retained writes. A message queued for a session
// waits for both its replica and, when the session is on its way out, its
// late copy.
import type { PersistenceObserver, StoredSubscription } from '../../mqtt/persistence-observer.js'
import type { StoredPacket } from '../../mqtt/outgoing-queues.js'
import type { Mechanisms } from './mechanisms.js'

export function storeObserver (to: Mechanisms): PersistenceObserver {
  const r = to.replication
  const all = (...waits: Array<Promise<void> | undefined>): Promise<void> | undefined => {
    const w = waits.filter((x) => x !== undefined)
    return w.length === 0 ? undefined : w.length === 1 ? w[0] : Promise.all(w).then(() => {})
  }
  return {
    retained: (packet) => to.retained.written(packet),
    subscribed: (clientId, subs: readonly StoredSubscription[]) => {
      r.subscribed(clientId, subs)
      to.routes.storedAdded(clientId, subs.map((s) => s.topic))
      return undefined
    },
    unsubscribed: (clientId, topics) => {
      r.unsubscribed(clientId, topics)
      to.routes.storedRemoved(clientId, topics)
      return undefined
    },
    ended: (clientId) => {
      r.ended(clientId)
      to.routes.storedEnded(clientId)
      return undefined
    },
    queued: (clientId, entry: StoredPacket, at) => all(r.queued(clientId, entry, at), to.moves.queued(clientId, entry)),
    sent: (clientId, entry) => r.sent(clientId, entry),
    released: (clientId, messageId) => r.released(clientId, messageId),
    cleared: (clientId, ref) => r.cleared(clientId, ref),
    willStored: (clientId, will) => r.willStored(clientId, will),
    willDeleted: (clientId) => r.willDeleted(clientId),
    incomingStored: (clientId, packet) => r.incomingStored(clientId, packet),
    incomingReleased: (clientId, messageId, kept) => r.incomingReleased(clientId, messageId, kept)
  }
}
