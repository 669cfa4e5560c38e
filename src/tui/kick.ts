// Disconnecting a client wherever it is connected: /proxy says which member
// lists the client, the member list gives that member's API address, and the
// stop request goes to that member (a node only stops its own clients until
// the data plane routes the request).
import { ApiClientError } from '../client/index.js'
import { gather, memberRows } from './cluster-model.js'
import type { ClusterSource } from './cluster-source.js'

export interface KickOutcome {
  clientId: string
  /** Members where the client was connected and is now stopped. */
  stopped: string[]
  /** Members that failed to stop it, or could not be asked, with why. */
  failed: Record<string, string>
  /** Members that did not answer the client list: the client may be there. */
  unreachable: Record<string, string>
}

export async function kickClient (source: ClusterSource, clientId: string): Promise<KickOutcome> {
  const [answer, members] = await Promise.all([source.clients(), source.members()])
  const { answers, failures } = gather(answer)
  const urls = new Map(memberRows(members).map((r) => [r.name, r.apiUrl]))
  const holders = answers.filter(([, clients]) => clients.some((c) => c.ID === clientId)).map(([node]) => node)
  const outcome: KickOutcome = { clientId, stopped: [], failed: {}, unreachable: failures }
  await Promise.all(holders.map(async (node) => {
    const url = urls.get(node)
    if (url === undefined) {
      outcome.failed[node] = 'member does not advertise its API address'
      return
    }
    try {
      const result = await source.stopClient(url, clientId)
      if (result.stopped) outcome.stopped.push(node)
      else outcome.failed[node] = 'not stopped'
    } catch (err) {
      outcome.failed[node] = err instanceof ApiClientError && err.kind === 'http'
        ? `HTTP ${err.status}${err.serverMessage === undefined ? '' : `: ${err.serverMessage}`}`
        : (err as Error).message
    }
  }))
  outcome.stopped.sort()
  return outcome
}
