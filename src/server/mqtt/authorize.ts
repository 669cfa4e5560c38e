// Authentication and the ACL (access.ts) as the 'access' layer of aedes' hooks
// (hooks.ts), and makes
// each refusal look right on the wire for every protocol version:
//
//   CONNECT   refused: CONNACK return code 5 (3.1/3.1.1) / reason 0x87 (5.0),
//             both "not authorized"; aedes closes the connection after it.
//   SUBSCRIBE refused: SUBACK 0x80 (3.1.1) / 0x87 (5.0) for that filter only.
//   PUBLISH   refused: dropped. 5.0: PUBACK/PUBREC 0x87 for QoS 1/2 (aedes
//             does this when the hook returns an error). 3.1/3.1.1 cannot say
//             no, and aedes 2.0.0-beta.1 closes the connection when the hook
//             returns an error for them; so for those we answer the hook with
//             success, mark the packet as not authorized (aedes then skips it)
//             and send the PUBACK/PUBREC ourselves, keeping the client up.
//   delivery  a message on a topic the client may not read is not sent, even
//             when a broader subscription was allowed (`a/#` with a deny on
//             `a/secret/#`).
import type { Socket } from 'node:net'
import type { Client, PublishPacket } from 'aedes'
import type { AedesHooks } from './hooks.js'
import { Counter, type Registry } from 'prom-client'
import type { Config } from '../../config/index.js'
import { rateLimited, type Logger } from '../../log.js'
import { cachedPasswordVerifier } from '../../security/password.js'
import { LoginBackoff } from '../../security/login-backoff.js'
import { isReservedTopic, normaliseAddress, type ClientIdentity } from './access.js'
import { AccessRules } from './access-rules.js'
import { remoteOf as connectionRemote } from './listeners/connection-info.js'

export interface AccessControlOptions {
  config: Config
  log: Logger
  registry: Registry
}

type RefusalKind = 'connect' | 'publish' | 'subscribe'

const REFUSALS_METRIC = 'broker_auth_refusals_total'

// CONNACK return code 5 "not authorized" (MQTT 3.1.1 §3.2.2.3); aedes maps it
// to reason 0x87 for MQTT 5 clients.
const NOT_AUTHORIZED_RETURN_CODE = 5

// MQTT 3.1.1 §3.4 / §3.5: PUBACK and PUBREC are a fixed header (type, remaining
// length 2) and the packet identifier; nothing else, so no codec is needed.
const PUBACK_HEADER = 0x40
const PUBREC_HEADER = 0x50

/** Returns the rules in force, which a config reload replaces (access-rules.ts). */
export function installAccessControl (hooks: AedesHooks, options: AccessControlOptions): AccessRules {
  const { config, log, registry } = options
  const rules = new AccessRules(config.mqtt)
  rules.closesReported = true
  hooks.closed('access', (client) => rules.closed(client))
  const verify = cachedPasswordVerifier()
  const refusals = refusalCounter(registry)
  const logRefusal = {
    connect: rateLimited(log),
    publish: rateLimited(log),
    subscribe: rateLimited(log)
  }
  // The ACL view of each connected client comes from rules.viewOf(): made at
  // CONNECT (identity cannot change during a connection), again after a reload.
  const views = { get: (client: Client) => rules.viewOf(client) }
  // Failed CONNECTs per source address (security/login-backoff.ts): past a
  // few, the address waits before its next password is even checked.
  const backoff = new LoginBackoff()

  if (rules.policy.anonymous) {
    log.warn('mqtt.auth has no rules: anonymous access is on, every client may connect')
  }

  const refuse = (kind: RefusalKind, client: Client | null, detail: object, username?: string): void => {
    refusals.inc({ kind })
    // Never the password: only who tried, from where, and what.
    logRefusal[kind]('warn', { kind, clientId: client?.id, username, remote: formatRemote(remoteOf(client)), ...detail }, `MQTT ${kind} refused: not authorized`)
  }

  hooks.use('authenticate', 'access', () => (client, username, password, callback) => {
    const who: ClientIdentity = { clientId: client.id, username: username ?? undefined, remote: remoteOf(client) }
    const address = who.remote === undefined ? undefined : normaliseAddress(who.remote.address)
    if (!rules.policy.anonymous && address !== undefined) {
      const wait = backoff.blockedFor(address, Date.now())
      if (wait > 0) {
        refuse('connect', client, { backoff: `${Math.ceil(wait / 1000)}s after repeated failed logins from this address` }, who.username)
        return callback(Object.assign(new Error('not authorized'), { returnCode: NOT_AUTHORIZED_RETURN_CODE }), false)
      }
    }
    const verified = new Set<string>()
    rules.policy.authenticate(who, password ?? undefined, rules.recording(verify, verified)).then((decision) => {
      if (!decision.allowed) {
        if (address !== undefined) backoff.failed(address, Date.now())
        refuse('connect', client, { rule: decision.rule }, who.username)
        return callback(Object.assign(new Error('not authorized'), { returnCode: NOT_AUTHORIZED_RETURN_CODE }), false)
      }
      if (address !== undefined && !rules.policy.anonymous) backoff.succeeded(address)
      const view = rules.policy.aclFor(who)
      // The will is published when this connection is gone, possibly by
      // another node that no longer knows who the client was; so its topic is
      // checked now, as mosquitto does: a will the client may not write
      // refuses the connection.
      const will = (client as unknown as { _will?: { topic: string } | null })._will
      if (will !== undefined && will !== null && (isReservedTopic(will.topic) || !view.canPublish(will.topic).allowed)) {
        refuse('connect', client, { will: will.topic }, who.username)
        return callback(Object.assign(new Error('will topic not authorized'), { returnCode: NOT_AUTHORIZED_RETURN_CODE }), false)
      }
      rules.admit(client, who, verified)
      callback(null, true)
    }, (err: unknown) => {
      log.error({ err, clientId: client.id }, 'MQTT authentication failed with an error')
      callback(Object.assign(new Error('server unavailable'), { returnCode: 3 }), false)
    })
  })

  hooks.use('authorizePublish', 'access', () => (client, packet, callback) => {
    // A null client is the will of a client of a broker that stopped
    // heart-beating: its topic was authorized when that client connected.
    if (client === null) return callback(null)
    let allowed: boolean
    let rule: number | undefined
    if (isReservedTopic(packet.topic)) {
      // `$` topics are the server's (MQTT 5 §4.7.2), whatever the ACL says.
      allowed = false
    } else {
      const view = views.get(client)
      // No view means authenticate did not run for this client: refuse
      // rather than guess who it is.
      const decision = view?.canPublish(packet.topic) ?? { allowed: false, rule: undefined }
      allowed = decision.allowed
      rule = decision.rule
    }
    if (allowed) return callback(null)
    refuse('publish', client, { topic: packet.topic, qos: packet.qos, rule })
    // aedes authorizes wills through this hook too (publishWill passes the
    // client's will object itself); those must get the error to be skipped.
    const fromWire = (packet as { cmd?: string }).cmd === 'publish' && packet !== (client as unknown as { will?: unknown }).will
    if (client.version === 5 || !fromWire) {
      // MQTT 5 (aedes answers 0x87 and keeps the connection), or a will
      // (aedes then skips publishing it).
      return callback(connectionKept(new Error(`not authorized to publish to ${packet.topic}`)))
    }
    dropAndAcknowledge(client, packet)
    callback(null)
  })

  hooks.use('authorizeSubscribe', 'access', () => (client, sub, callback) => {
    const view = views.get(client)
    const decision = view?.canSubscribe(sub.topic) ?? { allowed: false, rule: undefined }
    if (decision.allowed) return callback(null, sub)
    refuse('subscribe', client, { filter: sub.topic, rule: decision.rule })
    // A null subscription makes aedes answer 0x80 / 0x87 for this filter and
    // carry on with the others in the same SUBSCRIBE.
    callback(null, null)
  })

  // Delivery checks cost a lookup per message per subscriber; with no filters
  // anywhere there is nothing to check (a reload may add some: checked then).
  hooks.use('authorizeForward', 'access', () => (client, packet) => {
    if (rules.unrestricted) return packet
    const view = views.get(client)
    return view !== undefined && view.canRead(packet.topic) ? packet : null
  })
  return rules
}

/**
 * MQTT 3.1/3.1.1: a refused QoS 1/2 message still has to be acknowledged or the
 * client retries it forever; the acknowledgement is the only answer the
 * protocol allows. aedes skips packets marked `_notAuthorized` (its own v5
 * mechanism) without acknowledging them, so we acknowledge here. For QoS 2
 * the client's PUBREL then gets aedes' PUBCOMP, which it sends even for a
 * packet it never stored.
 */
function dropAndAcknowledge (client: Client, packet: PublishPacket): void {
  (packet as { _notAuthorized?: boolean })._notAuthorized = true
  if (packet.qos === 0 || packet.messageId === undefined) return
  const conn = client.conn as Socket
  if (conn.destroyed || conn.writableEnded) return
  const header = packet.qos === 1 ? PUBACK_HEADER : PUBREC_HEADER
  conn.write(Buffer.from([header, 0x02, packet.messageId >> 8, packet.messageId & 0xff]))
}

function remoteOf (client: Client | null): ClientIdentity['remote'] {
  if (client === null) return undefined
  // What the client's listener recorded (a PROXY header's address, else the socket's; listeners/connection-info.ts).
  return connectionRemote(client.conn)
}

function formatRemote (remote: ClientIdentity['remote']): string | undefined {
  if (remote === undefined) return undefined
  if (remote.port === undefined) return remote.address
  return remote.address.includes(':') ? `[${remote.address}]:${remote.port}` : `${remote.address}:${remote.port}`
}

function refusalCounter (registry: Registry): Counter<'kind'> {
  const existing = registry.getSingleMetric(REFUSALS_METRIC)
  if (existing !== undefined) return existing as Counter<'kind'>
  const counter = new Counter({
    name: REFUSALS_METRIC,
    help: 'MQTT operations refused by authentication or ACL, by kind (connect, publish, subscribe)',
    labelNames: ['kind'] as const,
    registers: [registry]
  })
  // Zero series up front, so dashboards and alerts see them before the first refusal.
  for (const kind of ['connect', 'publish', 'subscribe'] as const) counter.inc({ kind }, 0)
  return counter
}

/**
 * Marks an error aedes reports on 'clientError' although the connection
 * stays (an MQTT 5 PUBLISH refused with 0x87): not a reason the client went,
 * and logged already as a refusal.
 */
export function connectionKept (err: Error): Error {
  return Object.assign(err, { connectionKept: true })
}

export function keepsConnection (err: Error): boolean {
  return (err as { connectionKept?: unknown }).connectionKept === true
}
