// The keep alive a connection gets, from its CONNECT and our config. Pure, so
// the policy is unit-tested; inbound.ts applies it as the CONNECT arrives.
//
// MQTT 5 lets the server impose its own keep alive: Server Keep Alive in
// CONNACK, which the client must use instead of the one it asked for
// (section 3.2.2.3.14). We send it
//  - always, when `mqtt.server_keep_alive` is set (an operator who wants
//    dead connections found within a known time, whatever the devices ask);
//  - otherwise when the client asked for none, or for more than
//    `mqtt.max_keepalive`: it gets that limit.
// No packet for 1.5 times the keep alive closes the connection
// [MQTT-3.1.2-22]; keep alive 0 means none. MQTT 3.1/3.1.1 has no way to
// tell a client, so there the limit refuses the CONNECT instead, and
// server_keep_alive does not apply.
//
// aedes computes the interval (1.5 times the keep alive, plus 1 ms) and
// gives every client a Timeout and a closure for it, refreshed on each
// packet. Once a client is connected, one sweep over all connections checks
// it instead (SWEEP_PERIOD_MS below; inbound.ts keeps the time of each
// connection's last packet): a connection is never closed before its
// interval has passed, and at most one period after.
import type { InboundPacket } from './aedes-internals.js'

export interface KeepAliveLimits {
  /** mqtt.max_keepalive (s); 0: no limit. */
  maxKeepalive: number
  /** mqtt.server_keep_alive (s); 0: not imposed. */
  serverKeepAlive: number
}

/** MQTT 3.1/3.1.1 CONNECTs whose keep alive (0 is "none") exceeds the limit. MQTT 5 gets Server Keep Alive instead. */
export function keepaliveRefused (packet: InboundPacket, maxKeepalive: number): boolean {
  if (maxKeepalive <= 0 || (packet.protocolVersion ?? 4) >= 5) return false
  const keepalive = packet.keepalive ?? 0
  return keepalive === 0 || keepalive > maxKeepalive
}

/** The Server Keep Alive (s) an MQTT 5 CONNECT gets in its CONNACK, or undefined for none (the client's own applies). */
export function serverKeepAlive (packet: InboundPacket, limits: KeepAliveLimits): number | undefined {
  if ((packet.protocolVersion ?? 4) < 5) return undefined
  if (limits.serverKeepAlive > 0) return limits.serverKeepAlive
  const keepalive = packet.keepalive ?? 0
  if (limits.maxKeepalive > 0 && (keepalive === 0 || keepalive > limits.maxKeepalive)) return limits.maxKeepalive
  return undefined
}

/** How often the keep alive sweep looks at every connection: how late past its interval a silent one may go. */
export const SWEEP_PERIOD_MS = 1000

/** No packet for the whole interval (ms; 0 or less: no keep alive): aedes' timer would have fired by `now`. */
export function keepAliveExpired (lastPacketMs: number, intervalMs: number, nowMs: number): boolean {
  return intervalMs > 0 && nowMs - lastPacketMs >= intervalMs
}
