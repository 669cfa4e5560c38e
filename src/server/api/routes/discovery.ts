// Cluster membership as the seed showed it (memberlist's Node fields).
import type { FastifyInstance } from 'fastify'
import { MemberList, type MemberInfo } from '../../../client/contract.js'
import { MEMBER_STATE_CODE, type Member, type Membership } from '../../cluster/membership/membership.js'
import { responses } from '../errors.js'

/** Protocol versions of a member that reports none (a membership without a wire protocol). */
const NO_VSN = [1, 1, 1, 0, 0, 0] as const

export function memberInfo (m: Member): MemberInfo {
  const [pMin, pMax, pCur, dMin, dMax, dCur] = m.vsn ?? NO_VSN
  return {
    Name: m.name,
    Addr: m.addr,
    Port: m.port,
    Meta: JSON.stringify(m.meta),
    State: MEMBER_STATE_CODE[m.state],
    PMin: pMin,
    PMax: pMax,
    PCur: pCur,
    DMin: dMin,
    DMax: dMax,
    DCur: dCur
  }
}

export const MEMBERS_ROUTE = {
  method: 'GET' as const,
  url: '/api/discovery/members',
  summary: 'Cluster members as this node sees them (dead and left ones until reaped)',
  tags: ['discovery'],
  response: MemberList
}

export function discoveryRoutes (app: FastifyInstance, deps: { membership: Membership }): void {
  app.get(MEMBERS_ROUTE.url, {
    schema: { summary: MEMBERS_ROUTE.summary, tags: MEMBERS_ROUTE.tags, response: responses(MemberList, [401, 500]) }
  }, async () => deps.membership.members().map(memberInfo))
}
