// A cluster of SwimState machines on the in-memory network with a fake clock
// and seeded randomness: the same run every time.
import { SwimState, type ProbeResult } from '../../../../src/server/cluster/membership/state.js'
import { MemoryNetwork } from '../../../../src/server/cluster/membership/memory-transport.js'
import { LOCAL_PROFILE, type ClusterProfile } from '../../../../src/server/cluster/membership/config-profile.js'
import { Keyring } from '../../../../src/server/cluster/keyring.js'
import { seededRandom } from '../../../../src/server/cluster/membership/clock.js'
import type { Member, MemberState } from '../../../../src/server/cluster/membership/membership.js'
import { FakeClock } from './fake-clock.js'

export interface SimNode {
  name: string
  host: string
  state: SwimState
  events: Array<{ type: 'join' | 'update' | 'leave', member: Member }>
  refutations: number
  /** Probe results of this node, by result. */
  probes: Record<ProbeResult, number>
}

export class SimCluster {
  readonly clock = new FakeClock()
  readonly net = new MemoryNetwork(this.clock, 1)
  readonly nodes: SimNode[] = []
  private seed = 1

  async add (name: string, opts: { profile?: Partial<ClusterProfile>, keys?: string[], incarnation?: number } = {}): Promise<SimNode> {
    const host = `10.0.0.${this.nodes.length + 1}`
    const node: SimNode = { name, host, state: undefined as unknown as SwimState, events: [], refutations: 0, probes: { ack: 0, 'indirect-ack': 0, 'tcp-ack': 0, failed: 0 } }
    const state = new SwimState({
      name,
      advertise: { host, port: 7946 },
      meta: { api: 8080, mqtt: 1883, version: 'test' },
      profile: { ...LOCAL_PROFILE, pushPullInterval: 0, ...opts.profile },
      transport: this.net.transport(host),
      keyring: new Keyring(opts.keys ?? []),
      clock: this.clock,
      random: seededRandom(this.seed++),
      incarnation: opts.incarnation,
      observer: { refute: () => { node.refutations++ }, probe: (_target, result) => { node.probes[result]++ } }
    })
    node.state = state
    for (const type of ['join', 'update', 'leave'] as const) state.on(type, (member) => node.events.push({ type, member }))
    await state.start()
    this.nodes.push(node)
    return node
  }

  view (observer: SimNode, name: string): MemberState | undefined {
    return observer.state.member(name)?.state
  }

  /** True when every running node in `among` sees every one of `names` in `state`. */
  allSee (among: SimNode[], names: string[], state: MemberState): boolean {
    return among.every((o) => names.every((n) => this.view(o, n) === state))
  }

  async stopAll (): Promise<void> {
    for (const n of this.nodes) await n.state.stop()
  }
}
