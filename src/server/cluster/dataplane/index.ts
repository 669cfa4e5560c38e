// The cluster data plane: its composition (data-plane.ts) and the building
// blocks others may use (docs/data-plane.md describes how they fit).
export { DataPlane, type DataPlaneOptions, type DataPlaneMembership, type MessageFromEvent } from './data-plane.js'
export { HybridLogicalClock, ClockDriftError, compareStamps, encodeStamp, decodeStamp, type Stamp, type HlcOptions } from './hlc.js'
export {
  RetainedStore, diffBuckets,
  type RetainedEntry, type RetainedMessage, type RetainedStoreOptions, type MergeResult, type BucketSummary, type Qos
} from './retained-store.js'
export { RoutingTable, type RouteDelta, type RouteTable, type DeltaResult, type SharedTarget, type RoutingTableOptions } from './routing-table.js'
export { FilterTrie } from './filter-trie.js'
export {
  PREAMBLE, LINK_PROTOCOL_VERSION, LinkProtocolError,
  type FrameCipher, type Hello, type LinkErrorReason
} from './frame-codec.js'
export { NO_KEY, LinkSession, type LinkKeys } from './link-handshake.js'
export { PeerLink, dialsTo, type PeerLinkOptions, type LinkState, type LinkStats, type SendResult, type DeliveryInfo } from './peer-link.js'
export { LinkAcceptor, LinkListener, type LinkAcceptorOptions } from './link-acceptor.js'
export { RetainedSync, type RetainedSyncStats, type RetainedSyncOptions } from './retained-sync.js'
export { encodeMessage, decodeMessage, MessageDecodeError, type DataPlaneMessage, type ForwardedPublish, type PublishProperties } from './messages.js'
export { registerDataPlaneMetrics, type DataPlaneSources, type SessionReplicationStats } from './metrics.js'
export {
  SessionFetch, checkSession, isEmptySession, bestSession,
  type SessionAnswer, type TransferredSession, type TransferredSubscription, type TransferredPacket
} from './session-transfer.js'
export {
  ReplicaStore, checkReplicaOp, encodeReplicaOp, sessionExpiresAt, willDueAt,
  type ClientReplicaOp, type ReplicaOp, type ReplicaConnection, type ReplicaSnapshot, type TakenReplica
} from './replica-store.js'
