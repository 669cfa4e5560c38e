// Topic aliases from the server to an MQTT 5 client (section 3.3.2.3.4):
// the first PUBLISH on a topic carries the topic and an alias, later ones
// the alias alone with an empty topic, which saves the topic's bytes on
// every repeated message. aedes has none; EMQX and HiveMQ do it.
//
// A client allows them by giving a Topic Alias Maximum in CONNECT; we use
// at most min(that, mqtt.server_topic_aliases) aliases per connection,
// least recently used first out: a new topic takes over the alias of the
// topic not sent for longest, with a PUBLISH that carries the topic again.
//
// The guarantee a client relies on is order: a PUBLISH that uses an alias
// alone must reach it after the one that set the alias. Aliases are given
// only on the path where aedes writes PUBLISHes in the order it was handed
// them (deliver0, and deliverQoS for a clean session or a retained message:
// each writes on the next turn, in turn); delivery.ts marks those
// (markAliasable), and the outermost authorizeForward layer 'topic-aliases'
// decides on each, after the access rules and size checks saw the real
// topic. A stored session's queue goes out by another path, the session
// sender, at its own times: its PUBLISHes carry the full topic and no
// alias, which leaves the client's aliases as they were.
import type { Aedes, Client } from 'aedes'

/** One connection's aliases: topic -> alias, oldest use first. */
export class OutboundAliases {
  private readonly byTopic = new Map<string, number>()

  constructor (readonly max: number) {}

  /** The topic (empty when the alias alone will do) and alias a PUBLISH on `topic` goes out with. */
  use (topic: string): { topic: string, alias: number } {
    const known = this.byTopic.get(topic)
    if (known !== undefined) {
      this.byTopic.delete(topic)
      this.byTopic.set(topic, known)
      return { topic: '', alias: known }
    }
    let alias = this.byTopic.size + 1
    if (this.byTopic.size >= this.max) {
      const [oldest, freed] = this.byTopic.entries().next().value!
      this.byTopic.delete(oldest)
      alias = freed
    }
    this.byTopic.set(topic, alias)
    return { topic, alias }
  }
}

const tables = new WeakMap<Client, OutboundAliases>()
const aliasable = new WeakSet<object>()

/** The preConnect layer 'topic-aliases': a connection whose CONNECT allows aliases gets a table. */
export function topicAliasesLayer (serverMax: number): (next: Aedes['preConnect']) => Aedes['preConnect'] {
  return (next) => (client, packet, callback) => {
    const clientMax = (packet as { properties?: { topicAliasMaximum?: number } }).properties?.topicAliasMaximum ?? 0
    const max = Math.min(serverMax, clientMax)
    if (packet.protocolVersion === 5 && max > 0) tables.set(client, new OutboundAliases(max))
    next(client, packet, callback)
  }
}

/** A delivery on the in-order path (see the top of the file) that may use an alias. */
export function markAliasable (client: Client, packet: object): void {
  if (tables.has(client)) aliasable.add(packet)
}

interface Forwarded { topic: string, properties?: Record<string, unknown> }

/** The authorizeForward layer 'topic-aliases': a marked PUBLISH that may go out gets its alias. */
export function outboundAliasLayer (next: Aedes['authorizeForward']): Aedes['authorizeForward'] {
  return function authorizeForward (client, packet) {
    const out = next(client, packet)
    if (out === null || out === undefined || !aliasable.has(packet)) return out
    const table = tables.get(client)
    if (table === undefined) return out
    const fwd = out as unknown as Forwarded
    const { topic, alias } = table.use(fwd.topic)
    return { ...out, topic, properties: { ...fwd.properties, topicAlias: alias } } as typeof out
  }
}
