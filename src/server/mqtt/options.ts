// aedes options from our config. Pure: config in, options out, so the mapping
// (and what each aedes 2.0.0-beta.1 option really does) is unit-tested.
import { randomBytes } from 'node:crypto'
import type { Config } from '../../config/index.js'
import { processId } from './message-stamp.js'

/** The subset of aedes' constructor options we set. */
export interface AedesOptions {
  /** `<node name>@<incarnation>`: unique per process, so message stamps are unique cluster-wide (message-stamp.ts). */
  id: string
  /** Bytes; aedes advertises it in CONNACK (v5) and enforces it for every protocol version. */
  maximumPacketSize: number
  /** MQTT 5 Receive Maximum advertised in CONNACK; aedes does not enforce it (inbound.ts does). */
  receiveMaximum: number
  /** Inbound (client -> server) topic aliases accepted; aedes has no server -> client aliases. */
  topicAliasMaximum: number
  /** Seconds; caps the Session Expiry Interval of v5 CONNECT and DISCONNECT. */
  sessionExpiryIntervalLimit: number
  /** aedes applies it to MQTT 3.1 (protocol level 3) client ids only; inbound.ts checks the others. */
  maxClientsIdLength: number
  connectTimeout: number
  heartbeatInterval: number
  /** A frozen subscriber is cut after this long instead of stalling delivery for everyone (aedes default 60 s). */
  drainTimeout: number
  /** Packets a client may pipeline behind its CONNECT before CONNACK (aedes default 42). */
  queueLimit: number
}

/** aedes' own default; kept explicit because cluster heartbeats and will sweeps derive from it. */
export const HEARTBEAT_INTERVAL_MS = 60_000

/** `incarnation`: the process part of the id (random by default; the simulation gives its own). */
export function aedesOptions (config: Config, incarnation = randomBytes(4).toString('hex')): AedesOptions {
  const mqtt = config.mqtt
  return {
    id: processId(config.cluster.name, incarnation),
    maximumPacketSize: mqtt.max_packet_size,
    receiveMaximum: mqtt.max_inflight,
    topicAliasMaximum: mqtt.topic_alias_maximum,
    sessionExpiryIntervalLimit: mqtt.max_session_expiry,
    maxClientsIdLength: mqtt.max_client_id_length,
    connectTimeout: mqtt.connect_timeout,
    heartbeatInterval: HEARTBEAT_INTERVAL_MS,
    drainTimeout: 30_000,
    // A client may pipeline SUBSCRIBE and PUBLISH behind CONNECT without
    // waiting for CONNACK; max_inflight is what it may legitimately send.
    queueLimit: Math.max(42, mqtt.max_inflight + 10)
  }
}
