// Inbound packets held past a client's Receive Maximum (mqtt.max_inflight),
// instead of DISCONNECT 0x93 at the first one.
//
// Why: Eclipse Paho's Python client 1.6 (Debian's python3-paho-mqtt) resends
// its whole backlog at once after every reconnect, ignoring its own in-flight
// limit (its _messages_reconnect_reset_out counts nothing while it resets).
// A publisher that queued more than the Receive Maximum while its node died
// was told 0x93 on every node it tried and never got out: DISCONNECT, resend
// everything, DISCONNECT again (168 connections in 50 s in scripts/failover.py).
// mosquitto disconnects it the same way; MQTT 5 section 4.9 allows either
// ("the Server MAY ... DISCONNECT with 0x93"), it does not require it.
//
// What is held: a QoS 2 PUBLISH that would take the window past the Receive
// Maximum, and every packet after it except those that do not depend on it
// (acknowledgements, PINGREQ), in the order they came. The PUBRELs the
// client sends for what is in the window still pass, and each one lets the
// held packets go on, in order, as far as the window allows: aedes never has
// more than the Receive Maximum of a client's QoS 2 publishes unreleased, and
// per-topic order is kept. The socket keeps being read (the PUBRELs are
// behind the held PUBLISHes), so the bound below is what limits memory; past
// it the client is disconnected with 0x93 as before.
import type { InboundPacket } from './aedes-internals.js'

/**
 * Bytes held per connection, whatever mqtt.max_inflight_excess allows: the
 * packets' length on the wire plus about what a parsed packet object costs.
 * 16 MiB is 10,000 publishes of 1.4 KiB, or 1,000 of 16 KiB.
 */
export const MAX_EXCESS_BYTES = 16 * 1024 * 1024
/** What a parsed packet object costs beyond its bytes on the wire (heap). */
const PACKET_OVERHEAD = 256

/** Packets that never wait behind held publishes: they do not depend on them, and PUBREL is what frees the window. */
export function passesExcess (packet: InboundPacket): boolean {
  switch (packet.cmd) {
    case 'pubrel':
    case 'puback':
    case 'pubrec':
    case 'pubcomp':
    case 'pingreq':
      return true
    default:
      return false
  }
}

/** The ordered, bounded queue of held packets of one connection. */
export class ReceiveExcess {
  private readonly packets: InboundPacket[] = []
  private head = 0
  private bytes = 0

  constructor (private readonly maxPackets: number, private readonly maxBytes = MAX_EXCESS_BYTES) {}

  get size (): number { return this.packets.length - this.head }

  /** Holds a packet at the end; false (nothing held) when that would pass a bound. */
  hold (packet: InboundPacket): boolean {
    const bytes = sizeOf(packet)
    if (this.size + 1 > this.maxPackets || this.bytes + bytes > this.maxBytes) return false
    this.packets.push(packet)
    this.bytes += bytes
    return true
  }

  peek (): InboundPacket | undefined { return this.packets[this.head] }

  shift (): InboundPacket | undefined {
    const packet = this.packets[this.head]
    if (packet === undefined) return undefined
    this.packets[this.head++] = undefined as never
    this.bytes -= sizeOf(packet)
    if (this.head === this.packets.length) this.clear()
    else if (this.head > 1024 && this.head * 2 > this.packets.length) { this.packets.splice(0, this.head); this.head = 0 }
    return packet
  }

  clear (): void {
    this.packets.length = 0
    this.head = 0
    this.bytes = 0
  }
}

/** The packet's length on the wire (mqtt-packet sets it), plus the object around it. */
function sizeOf (packet: InboundPacket): number {
  return (typeof packet.length === 'number' ? packet.length : (packet.payload?.length ?? 0) + (packet.topic?.length ?? 0)) + PACKET_OVERHEAD
}
