// The MQTT side's Prometheus metrics. Counters are bumped where the event
// happens; gauges of live state are read at scrape time so the hot path pays
// nothing for them.
import { Counter, Gauge, type Registry } from 'prom-client'

/** Label values of broker_limit_rejections_total: one per configured limit. */
export type LimitName = 'connections' | 'packet_size' | 'queued_messages' | 'retained_messages' | 'retained_bytes' | 'inflight' | 'subscriptions' | 'client_buffer'

/** Label values of broker_bad_packets_total. */
export type BadPacketReason = 'malformed' | 'truncated' | 'protocol_error' | 'oversize'

export interface LiveState {
  connections: () => number
  retainedMessages: () => number
  retainedBytes: () => number
  queuedMessages: () => number
}

export class MqttMetrics {
  readonly limitRejections: Counter<'limit'>
  readonly badPackets: Counter<'reason'>
  readonly stalls: Counter
  readonly bufferDisconnects: Counter

  constructor (registry: Registry, live: LiveState) {
    this.limitRejections = new Counter({
      name: 'broker_limit_rejections_total',
      help: 'Connections, packets or stored messages refused because a configured mqtt.max_* limit was reached',
      labelNames: ['limit'],
      registers: [registry]
    })
    this.badPackets = new Counter({
      name: 'broker_bad_packets_total',
      help: 'Clients dropped for malformed, truncated, oversize or out-of-protocol packets',
      labelNames: ['reason'],
      registers: [registry]
    })
    this.stalls = new Counter({
      name: 'broker_session_stalls_total',
      help: 'Times a connected client with a stored session had messages waiting and room in its window, but nothing was being sent (should stay 0; each one is logged)',
      registers: [registry]
    })
    this.bufferDisconnects = new Counter({
      name: 'broker_client_buffer_disconnects_total',
      help: 'Clean-session clients disconnected because QoS 1/2 deliveries could not drain below mqtt.max_client_buffer_bytes (MQTT 5: reason 0x97)',
      registers: [registry]
    })
    // Initialise every label so dashboards see zeros instead of absent series.
    for (const limit of ['connections', 'packet_size', 'queued_messages', 'retained_messages', 'retained_bytes', 'inflight', 'subscriptions', 'client_buffer'] as const) {
      this.limitRejections.inc({ limit }, 0)
    }
    for (const reason of ['malformed', 'truncated', 'protocol_error', 'oversize'] as const) {
      this.badPackets.inc({ reason }, 0)
    }
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
    }
    gauge('broker_mqtt_connections', 'Open MQTT TCP connections on this node', live.connections)
    gauge('broker_retained_messages', 'Retained messages held on this node', live.retainedMessages)
    gauge('broker_retained_bytes', 'Bytes of retained payloads held on this node', live.retainedBytes)
    gauge('broker_queued_messages', 'QoS 1/2 messages queued for persistent sessions (including unacknowledged in-flight ones)', live.queuedMessages)
  }

  limit (limit: LimitName): void {
    this.limitRejections.inc({ limit })
  }

  bad (reason: BadPacketReason): void {
    this.badPackets.inc({ reason })
  }

  stall (): void {
    this.stalls.inc()
  }
}
