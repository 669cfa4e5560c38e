// The chaos control channel (issue 6): lets the `broker-ha chaos` runner cut
// this node's cluster traffic to chosen peers, to make partitions without
// root. Registered only when the node was started with the hidden
// `serve --chaos-control` flag, which also insists on loopback binds; a
// normal deployment has no such route at all. Hidden from the OpenAPI
// document for the same reason.
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'

/** What the route needs of the membership's fault-injecting transport. */
export interface FaultControl {
  block (peer: string): void
  heal (): void
}

export const CHAOS_FAULTS_ROUTE = '/chaos/faults'

const FaultState = Type.Object({
  blocked: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 1000, description: 'peer hosts (or host:port) whose cluster traffic is dropped both ways' })
}, { additionalProperties: false })
type FaultState = Static<typeof FaultState>

const FaultAnswer = Type.Object({
  blocked: Type.Array(Type.String()),
  // Peer links of the data plane are not integrated yet; once they are, the
  // runner cuts them through this same route (see the README, "Chaos testing").
  peer_links: Type.String()
})

export function chaosFaultRoutes (app: FastifyInstance, deps: { faults: FaultControl }): void {
  // The transport keeps no list of its own, so the route remembers what it set.
  let blocked: string[] = []
  const answer = () => ({ blocked, peer_links: 'not-integrated' })
  app.get(CHAOS_FAULTS_ROUTE, { schema: { hide: true, response: { 200: FaultAnswer } } }, async () => answer())
  // Replaces the whole set, so a retried request cannot leave stale blocks.
  app.post<{ Body: FaultState }>(CHAOS_FAULTS_ROUTE, { schema: { hide: true, body: FaultState, response: { 200: FaultAnswer } } }, async (request) => {
    deps.faults.heal()
    blocked = [...new Set(request.body.blocked)]
    for (const peer of blocked) deps.faults.block(peer)
    return answer()
  })
}
