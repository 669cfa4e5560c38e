// The mechanisms of one node's data plane, as data-plane.ts composes them:
// the record its adapters take, each to fan one kind of event out to the
// mechanisms that act on it (peer-events.ts: the links' events;
// message-dispatch.ts: the peers' messages; store-observer.ts: the session
// store's changes). Nothing here builds anything.
import type { DataPlaneContext } from './context.js'
import type { RoutingTable } from './routing-table.js'
import type { LinkSet } from './link-set.js'
import type { Forwarding } from './forwarding.js'
import type { Inbound } from './inbound.js'
import type { LocalRoutes } from './local-routes.js'
import type { RetainedReplication } from './retained-replication.js'
import type { SessionReplication } from './session-replication.js'
import type { SessionMoves } from './session-moves.js'
import type { DeliveryGates } from './delivery-gates.js'
import type { Takeover } from './takeover.js'
import type { Promotion } from './promotion.js'
import type { Rescue } from './rescue.js'
import type { SessionReconcile } from './session-reconcile.js'
import type { StartWindow } from './start-window.js'

export interface Mechanisms {
  readonly ctx: DataPlaneContext
  readonly routing: RoutingTable
  readonly links: LinkSet
  readonly forwarding: Forwarding
  readonly inbound: Inbound
  readonly routes: LocalRoutes
  readonly retained: RetainedReplication
  readonly replication: SessionReplication
  readonly moves: SessionMoves
  readonly gates: DeliveryGates
  readonly takeover: Takeover
  readonly promotion: Promotion
  readonly rescue: Rescue
  readonly reconcile: SessionReconcile
  readonly startWindow: StartWindow
}
