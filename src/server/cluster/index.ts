// The cluster module's public surface: what the node and other components may use.
export { MEMBER_STATE_CODE, type Member, type MemberMeta, type MemberState, type Membership, type MembershipEvents } from './membership/membership.js'
export { SwimMembership, advertiseAddress, type SwimMembershipOptions } from './membership/swim-membership.js'
export { PROTOCOL } from './membership/codec.js'
export { FaultInjectingTransport } from './fault-injection.js'
export type { UserStateDelegate } from './membership/push-pull.js'
export { detectionBound } from './membership/detection-bound.js'
