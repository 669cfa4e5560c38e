// The simulation's membership: each node's view of the others, set by the
// world instead of by SWIM. The world decides when each node learns that a
// peer died, came back or became unreachable (seeded delays, different per
// observer), which is how the simulation explores the orders in which the
// data plane hears about failures. SWIM itself is simulated on its own in
// test/unit/cluster/membership/.
import { EventEmitter } from 'node:events'
import type { Member, MemberState, Membership, MembershipEvents } from '../../src/server/cluster/membership/membership.js'
import type { LinkStreamHandler } from '../../src/server/cluster/membership/net-transport.js'

export const CLUSTER_PORT = 7946

export function member (name: string, host: string, state: MemberState, incarnation: number): Member {
  return { name, addr: host, port: CLUSTER_PORT, meta: { api: 8080, mqtt: 1883, version: 'sim' }, state, incarnation, since: Date.now() }
}

export class ScriptedMembership extends EventEmitter<MembershipEvents> implements Membership {
  readonly self: Member
  private readonly view = new Map<string, Member>()
  linkHandler: LinkStreamHandler | undefined

  constructor (name: string, host: string, incarnation: number) {
    super()
    this.self = member(name, host, 'alive', incarnation)
  }

  members (): Member[] { return [this.self, ...this.view.values()] }
  healthScore (): number { return 0 }
  unjoinedPeers (): number { return 0 }
  async start (): Promise<void> {}
  async stop (): Promise<void> {}

  setLinkHandler (handler: LinkStreamHandler | undefined): boolean {
    this.linkHandler = handler
    return true
  }

  state (name: string): MemberState | undefined { return this.view.get(name)?.state }

  /**
   * The world tells this node what it now believes about `peer` (events as
   * SWIM emits them). As in SWIM, news older than what is known loses: a
   * lower incarnation never wins, and at equal incarnation only a death
   * overrides life (a member refutes with a higher incarnation).
   */
  learn (peer: Member): void {
    if (peer.name === this.self.name) return
    const before = this.view.get(peer.name)
    if (before !== undefined) {
      if (peer.incarnation < before.incarnation) return
      const dying = peer.state === 'dead' || peer.state === 'left'
      const wasDead = before.state === 'dead' || before.state === 'left'
      if (peer.incarnation === before.incarnation && (!dying || wasDead) && peer.state !== 'suspect') {
        if (!(peer.state === 'alive' && before.state === 'suspect')) return
      }
    }
    const next = { ...peer, since: Date.now() }
    this.view.set(peer.name, next)
    if (peer.state === 'alive') {
      if (before === undefined || before.state === 'dead' || before.state === 'left') this.emit('join', next)
      else if (before.state !== 'alive' || before.incarnation !== peer.incarnation) this.emit('update', next)
    } else if (peer.state === 'suspect') {
      if (before?.state === 'alive') this.emit('update', next)
    } else if (before !== undefined && before.state !== 'dead' && before.state !== 'left') {
      this.emit('leave', next)
    }
  }
}
