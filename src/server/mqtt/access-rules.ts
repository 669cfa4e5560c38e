// The mqtt.auth and mqtt.acl in force, replaceable at run time (a config
// reload, src/server/reload.ts). authorize.ts asks here for each connected
// client's ACL view: a view made under older rules is made again on the
// client's next publish, subscribe or delivery, so a new ACL applies to
// connected clients at once. A reload also asks, for every connected client,
// whether the new mqtt.auth still admits it, without keeping any password:
// a rule naming a password admits the client again only if it is the very
// stored value (plain or hash) the client's password was verified against.
import type { Client } from 'aedes'
import type { AuthRuleConfig, AclRuleConfig } from '../../config/index.js'
import { AccessPolicy, type AclView, type ClientIdentity, type PasswordCheck } from './access.js'
import { remoteOf } from './listeners/connection-info.js'

// MQTT 5 DISCONNECT reason 0x87 "Not authorized" (section 3.14.2.1).
const NOT_AUTHORIZED = 0x87

// The identity is not kept: it is the connection's (client id, address),
// which cannot change, and the user name of its CONNECT. An identity object
// and an address object per idle connection were about 90 bytes of each.
interface Entry {
  username: string | undefined
  /** Stored passwords (plain or hash) this client's password matched at CONNECT. */
  verified: ReadonlySet<string>
  view: AclView
  generation: number
}

const NONE_VERIFIED: ReadonlySet<string> = new Set()

export class AccessRules {
  policy: AccessPolicy
  /** No ACL rule restricts anything: deliveries need no check (kept here: asked per message). */
  unrestricted: boolean
  private generation = 0
  // Kept as long as aedes holds the client object, not only while it is
  // connected: a delayed will is authorized (against the rules then in force)
  // when it fires, after the connection closed.
  private readonly entries = new WeakMap<Client, Entry>()
  /** Connected clients, which a reload checks again. */
  private readonly connected = new Set<Client>()
  /**
   * Set when the MQTT server reports each closed connection (closed(), from
   * its one close listener per socket, hooks.ts); otherwise admit() listens
   * to the socket itself.
   */
  closesReported = false

  constructor (mqtt: { auth: readonly AuthRuleConfig[], acl: readonly AclRuleConfig[] }) {
    this.policy = new AccessPolicy(mqtt)
    this.unrestricted = this.policy.unrestricted
  }

  /** A password check that remembers which stored values matched, for reloads. */
  recording (check: PasswordCheck, verified: Set<string>): PasswordCheck {
    return async (presented, stored) => {
      const ok = await check(presented, stored)
      if (ok) verified.add(stored)
      return ok
    }
  }

  /**
   * Records an admitted client (`who` is its identity: its id and its
   * connection's address); a reload stops checking it when its connection closes.
   */
  admit (client: Client, who: ClientIdentity, verified: Set<string>): AclView {
    const view = this.policy.aclFor(who)
    // Most clients matched no stored password (anonymous, certificate, open rules): they share one empty set.
    this.entries.set(client, { username: who.username, verified: verified.size > 0 ? verified : NONE_VERIFIED, view, generation: this.generation })
    this.connected.add(client)
    if (!this.closesReported) client.conn.once('close', () => this.connected.delete(client))
    return view
  }

  /** The client's connection closed: a reload no longer checks it (its view stays, for a delayed will). */
  closed (client: Client): void {
    this.connected.delete(client)
  }

  /** The client's ACL view under the rules in force; undefined for a client never admitted. */
  viewOf (client: Client): AclView | undefined {
    const entry = this.entries.get(client)
    if (entry === undefined) return undefined
    if (entry.generation !== this.generation) {
      entry.view = this.policy.aclFor(identityOf(client, entry))
      entry.generation = this.generation
    }
    return entry.view
  }

  /**
   * Puts new rules in force. With `disconnect`, clients the new mqtt.auth no
   * longer admits are disconnected (MQTT 5: DISCONNECT 0x87 first); resolves
   * with their ids.
   */
  async replace (mqtt: { auth: readonly AuthRuleConfig[], acl: readonly AclRuleConfig[] }, disconnect: boolean): Promise<string[]> {
    this.policy = new AccessPolicy(mqtt)
    this.unrestricted = this.policy.unrestricted
    this.generation++
    if (!disconnect) return []
    const gone: string[] = []
    for (const client of [...this.connected]) {
      const entry = this.entries.get(client)
      if (entry === undefined) continue
      const known: PasswordCheck = async (_presented, stored) => entry.verified.has(stored)
      const decision = await this.policy.authenticate(identityOf(client, entry), Buffer.alloc(0), known)
      if (decision.allowed) continue
      gone.push(client.id)
      this.connected.delete(client)
      this.entries.delete(client)
      // aedes writes the DISCONNECT to MQTT 5 clients only; others see the connection close.
      client.disconnect({ reasonCode: NOT_AUTHORIZED })
    }
    return gone
  }
}

/** Who an admitted client is, as authorize.ts told admit(): its id, its CONNECT's user name, its address. */
function identityOf (client: Client, entry: Entry): ClientIdentity {
  return { clientId: client.id, username: entry.username, remote: remoteOf(client.conn) }
}
