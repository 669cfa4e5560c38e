// The observer: asks the nodes, through their HTTP API only, what they
// believe, and records it. Membership views of every node every
// `viewIntervalMs` (recorded when they change), and a /proxy/api/mqtt/clients
// sample every `clientsIntervalMs` for client ids listed on two members.
import { setTimeout as sleep } from 'node:timers/promises'
import { isMemberError, type ApiClient, type MemberInfo } from '../client/index.js'
import type { History, ViewState } from './history.js'

const STATE_NAMES: readonly ViewState[] = ['alive', 'suspect', 'dead', 'left']

export interface ObservedNode { name: string, api: ApiClient, state: string }

export function viewOf (members: readonly MemberInfo[]): Record<string, ViewState> {
  const view: Record<string, ViewState> = {}
  for (const m of members) view[m.Name] = STATE_NAMES[m.State] ?? 'dead'
  return view
}

export class Observer {
  private readonly nodes: readonly ObservedNode[]
  private readonly history: History
  private readonly last = new Map<string, string>()
  private running = false
  private loops: Array<Promise<void>> = []
  private readonly viewIntervalMs: number
  private readonly clientsIntervalMs: number
  private turn = 0

  constructor (options: { nodes: readonly ObservedNode[], history: History, viewIntervalMs?: number, clientsIntervalMs?: number }) {
    this.nodes = options.nodes
    this.history = options.history
    this.viewIntervalMs = options.viewIntervalMs ?? 250
    this.clientsIntervalMs = options.clientsIntervalMs ?? 1000
  }

  start (): void {
    this.running = true
    this.loops = [this.every(this.viewIntervalMs, () => this.sampleViews()), this.every(this.clientsIntervalMs, () => this.sampleClients())]
  }

  async stop (): Promise<void> {
    this.running = false
    await Promise.all(this.loops)
  }

  /** Whether every node that is up sees exactly the up nodes alive, per the latest samples. */
  converged (): boolean {
    const up = this.nodes.filter((n) => n.state === 'up')
    return up.length > 0 && up.every((o) => {
      const raw = this.last.get(o.name)
      if (raw === undefined || raw === 'null') return false
      const view = JSON.parse(raw) as Record<string, ViewState>
      return this.nodes.every((n) => n.state === 'up' ? view[n.name] === 'alive' : view[n.name] !== 'alive')
    })
  }

  async sampleViews (): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => {
      let view: Record<string, ViewState> | null = null
      if (n.state === 'up') {
        try { view = viewOf(await n.api.members()) } catch { view = null }
      }
      const key = JSON.stringify(view)
      if (this.last.get(n.name) === key) return
      this.last.set(n.name, key)
      this.history.record({ type: 'view', node: n.name, members: view })
    }))
  }

  private async sampleClients (): Promise<void> {
    const up = this.nodes.filter((n) => n.state === 'up')
    if (up.length === 0) return
    const asked = up[this.turn++ % up.length]!
    let answer
    try { answer = await asked.api.proxyClients() } catch { return }
    const where = new Map<string, string[]>()
    for (const [member, clients] of Object.entries(answer)) {
      if (isMemberError(clients)) continue
      for (const c of clients) if (!c.Done) where.set(c.ID, [...(where.get(c.ID) ?? []), member])
    }
    const duplicates = [...where].filter(([, nodes]) => nodes.length > 1).map(([client, nodes]) => ({ client, nodes }))
    this.history.record({ type: 'clients-sample', duplicates })
  }

  private async every (ms: number, task: () => Promise<void>): Promise<void> {
    while (this.running) {
      const started = Date.now()
      await task()
      await sleep(Math.max(10, ms - (Date.now() - started)))
    }
  }
}
