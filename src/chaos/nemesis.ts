// The nemesis: carries out the planned faults against the launched cluster,
// one at a time, and records each one's start and end. A fault starts at its
// nominal time or, when the cluster took longer to recover from the previous
// one, its gap after that recovery; what it does never depends on timing.
import { setTimeout as sleep } from 'node:timers/promises'
import type { ChaosCluster } from './launcher.js'
import type { History } from './history.js'
import { describeFault, type PlannedFault } from './schedule.js'
import { CHAOS_PEERS_WAIT_MS } from './cluster-config.js'

export interface NemesisOptions {
  cluster: ChaosCluster
  history: History
  plan: readonly PlannedFault[]
  /** Resolves when membership converged again (or its deadline passed). */
  waitRecovered: () => Promise<void>
  /** Told when a fault starts (with it) and ends (with undefined), for the live view. */
  onFault?: (fault: PlannedFault | undefined, description: string) => void
  signal: AbortSignal
}

export class Nemesis {
  private readonly o: NemesisOptions
  private readonly names: string[]
  done = 0

  constructor (options: NemesisOptions) {
    this.o = options
    this.names = options.cluster.nodes.map((n) => n.name)
  }

  /**
   * Runs the plan; `t0` is when the workloads started (the plan's time zero).
   * Recoveries can take longer than planned: past `deadline`, faults still
   * start only while some kind has not run yet, so a short run covers every
   * kind and a long one ends on time.
   */
  async run (t0: number, deadline = Infinity): Promise<void> {
    let ready = t0
    const pending = new Set(this.o.plan.map((f) => f.kind))
    for (const fault of this.o.plan) {
      const startAt = Math.max(t0 + fault.at, ready + fault.gapMs)
      if (startAt > deadline && !pending.has(fault.kind)) continue
      pending.delete(fault.kind)
      await this.wait(startAt - Date.now())
      await this.execute(fault)
      await this.o.waitRecovered()
      this.done++
      ready = Date.now()
      if (this.o.signal.aborted) return
    }
  }

  private async execute (f: PlannedFault): Promise<void> {
    const { cluster, history } = this.o
    const description = describeFault(f, this.names)
    history.record({ type: 'fault-start', id: f.id, kind: f.kind, targets: f.targets.map((i) => this.names[i]!), description })
    this.o.onFault?.(f, description)
    try {
      switch (f.kind) {
        case 'kill':
        case 'stop':
          for (const i of f.targets) await cluster.signal(i, f.kind === 'kill' ? 'SIGKILL' : 'SIGTERM', f.kind === 'kill' ? 'killed' : 'stopped')
          await this.wait(f.holdMs)
          for (const i of f.targets) await cluster.startNode(i)
          break
        case 'restart-all':
          // A power cut, a cluster upgrade: every node dies at once; what they stored is all there is.
          await Promise.all(f.targets.map(async (i) => await cluster.signal(i, 'SIGKILL', 'killed')))
          await this.wait(f.holdMs)
          await Promise.all(f.targets.map(async (i) => await cluster.startNode(i)))
          break
        case 'restart-all-late':
          // As restart-all, but one node's host does not come back in time: the
          // others take its sessions over when their start window ends, then it
          // comes back with its disk, whose copies must yield to theirs.
          await Promise.all(f.targets.map(async (i) => await cluster.signal(i, 'SIGKILL', 'killed')))
          await this.wait(f.holdMs)
          await Promise.all(f.targets.filter((i) => i !== f.late).map(async (i) => await cluster.startNode(i)))
          await this.wait(CHAOS_PEERS_WAIT_MS + 2000)
          if (f.late !== undefined) await cluster.startNode(f.late)
          break
        case 'pause':
          for (const i of f.targets) cluster.pause(i)
          await this.wait(f.holdMs)
          for (const i of f.targets) cluster.resume(i)
          break
        case 'restart':
          // One node at a time, each back and converged before the next goes: what a rolling update does.
          for (const i of f.targets) {
            if (this.o.signal.aborted) return
            await cluster.signal(i, 'SIGTERM', 'stopped')
            await cluster.startNode(i)
            await this.o.waitRecovered()
          }
          break
        case 'partition':
        case 'links':
        case 'gossip':
        case 'udp': {
          // Each splits the cluster in two; a partition drops all cluster
          // traffic between the sides, a link cut only the data-plane links
          // (membership still sees everyone alive, so messages must survive
          // the links' reconnection alone), a gossip cut only the membership
          // traffic (each side declares the other dead while their links
          // stay up: a starved node's false death, which must move nothing),
          // a UDP cut only the UDP (a firewall open for TCP only: the TCP
          // fallback probe must keep everyone alive).
          const side = new Set(f.targets)
          const across = new Map<number, number[]>()
          for (const n of cluster.nodes) across.set(n.index, cluster.nodes.filter((m) => side.has(m.index) !== side.has(n.index)).map((m) => m.index))
          await cluster.setFaults({ [f.kind === 'partition' ? 'blocked' : f.kind]: across })
          await this.wait(f.holdMs)
          await cluster.setFaults()
          break
        }
      }
    } finally {
      if (!this.o.signal.aborted) {
        history.record({ type: 'fault-end', id: f.id })
        this.o.onFault?.(undefined, `${description}: done`)
      }
    }
  }

  private async wait (ms: number): Promise<void> {
    if (ms <= 0 || this.o.signal.aborted) return
    try { await sleep(ms, undefined, { signal: this.o.signal }) } catch { /* aborted */ }
  }
}
