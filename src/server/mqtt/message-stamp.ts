// A message's identity across the cluster, built in this one place.
//
// aedes stamps every message with `brokerId` (the aedes id of the process it
// was published on: `<node name>@<process incarnation>`, options.ts) and
// `brokerCounter` (that process's count of messages). Every copy aedes makes
// keeps the stamp (aedes-packet copies it), a message forwarded to a peer
// keeps it (the data plane hands it to the peer's aedes with its stamp), and
// so does a queued entry wherever its session goes. Two copies with one
// stamp are one message, however they travelled: that is how a session that
// moves between nodes gets each message once (the ledger, outgoing-queues.ts).

export interface Stamped {
  brokerId?: string | null | undefined
  brokerCounter?: number | undefined
}

/** The stamp as one string (a Map key), or undefined for an unstamped packet (a retained delivery, a PUBREL). */
export function stampOf (p: Stamped): string | undefined {
  if (p.brokerId === undefined || p.brokerId === null || p.brokerCounter === undefined) return undefined
  return `${p.brokerId}\u0000${p.brokerCounter}`
}

/** `node@incarnation`: the aedes id of one process of a node. */
export function processId (node: string, incarnation: string): string {
  return `${node}@${incarnation}`
}

/** The node name in an aedes id (`node@incarnation`), or the id itself. */
export function nodeOfProcess (id: string): string {
  const at = id.lastIndexOf('@')
  return at < 0 ? id : id.slice(0, at)
}
