// The cluster module's public surface: what the node and other components may use.
export { SoloMembership, MEMBER_STATE_CODE, type Member, type MemberMeta, type MemberState, type Membership, type MembershipEvents } from './membership.js'
export { SwimMembership, advertiseAddress, type SwimMembershipOptions } from './swim-membership.js'
export { PROTOCOL } from './codec.js'
export { FaultInjectingTransport } from './fault-injection.js'
export type { UserStateDelegate } from './push-pull.js'
export { detectionBound } from './detection-bound.js'
