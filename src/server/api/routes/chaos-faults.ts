// The chaos control channel (issue 6): lets the `broker-ha chaos` runner cut
// this node's cluster traffic (partition), only its data-plane links, only
// its membership traffic (a false death: links stay up), or only its UDP (a
// firewall open for TCP only) to chosen peers, without root. Registered
// only when the node was started with the hidden `serve --chaos-control`
// flag, which also insists on loopback binds; a normal deployment has no
// such route at all. Hidden from the OpenAPI document for the same reason.
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'

/** What the route needs of the membership's fault-injecting transport. */
export interface FaultControl {
  block (peer: string): void
  cutLinks (peer: string): void
  cutGossip (peer: string): void
  cutUdp (peer: string): void
  heal (): void
}

export const CHAOS_FAULTS_ROUTE = '/chaos/faults'

const FaultState = Type.Object({
  blocked: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 1000, description: 'peer hosts (or host:port) whose cluster traffic (gossip and data plane) is dropped both ways' }),
  links: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 1000, description: 'peer hosts (or host:port) whose data-plane links only are cut' })),
  gossip: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 1000, description: 'peer hosts (or host:port) whose membership traffic only is dropped (their links stay up)' })),
  udp: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 1000, description: 'peer hosts (or host:port) whose UDP only is dropped (TCP exchanges and links pass)' }))
}, { additionalProperties: false })
type FaultState = Static<typeof FaultState>

const FaultAnswer = Type.Object({
  blocked: Type.Array(Type.String()),
  links: Type.Array(Type.String()),
  gossip: Type.Array(Type.String()),
  udp: Type.Array(Type.String())
})

/** Each list of the body, and the hook's cut for one peer of it. */
const CUTS = { blocked: 'block', links: 'cutLinks', gossip: 'cutGossip', udp: 'cutUdp' } as const satisfies Record<keyof Static<typeof FaultAnswer>, keyof FaultControl>
type CutList = keyof typeof CUTS

export function chaosFaultRoutes (app: FastifyInstance, deps: { faults: FaultControl }): void {
  // The transport keeps no list of its own, so the route remembers what it set.
  let set: Record<CutList, string[]> = { blocked: [], links: [], gossip: [], udp: [] }
  app.get(CHAOS_FAULTS_ROUTE, { schema: { hide: true, response: { 200: FaultAnswer } } }, async () => set)
  // Replaces the whole set, so a retried request cannot leave stale blocks.
  app.post<{ Body: FaultState }>(CHAOS_FAULTS_ROUTE, { schema: { hide: true, body: FaultState, response: { 200: FaultAnswer } } }, async (request) => {
    deps.faults.heal()
    const next: Record<CutList, string[]> = { blocked: [], links: [], gossip: [], udp: [] }
    for (const list of Object.keys(CUTS) as CutList[]) {
      next[list] = [...new Set(request.body[list] ?? [])]
      for (const peer of next[list]) deps.faults[CUTS[list]](peer)
    }
    set = next
    return set
  })
}
