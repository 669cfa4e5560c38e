// While the node's store is full (storage.max_size, or a write failed: the
// disk), a publish that needs storage is refused and the client stays
// connected (the 'storage' layer of authorizePublish, hooks.ts):
//
//   QoS 1/2      MQTT 5: PUBACK/PUBREC 0x97 (quota exceeded) with a Reason
//                String; the message is dropped. MQTT 3.1/3.1.1 cannot say
//                no: no PUBACK/PUBREC is sent, so the client keeps the
//                message in flight and sends it again when it reconnects.
//   retained     QoS 0 with a payload: dropped (no acknowledgement to say
//                why). Clearing a retained topic (empty payload, any QoS)
//                always passes: it frees space.
//
// Every QoS 1/2 publish is refused, not only those with a stored session
// to queue them for: finding out costs a subscription lookup per message,
// and a full store is an alarm (broker_storage_full) to act on.
import type { Client, PublishPacket } from 'aedes'
import type { AedesHooks } from '../mqtt/hooks.js'
import { writePacket } from '../mqtt/aedes-internals.js'
import { rateLimited, type Logger } from '../../log.js'

export const QUOTA_EXCEEDED = 0x97

export function installFullRefusal (hooks: AedesHooks, o: { full: () => boolean, log: Logger }): void {
  const warn = rateLimited(o.log, 10_000)
  hooks.use('authorizePublish', 'storage', (next) => (client, packet, callback) => {
    next(client, packet, (err) => {
      if ((err !== null && err !== undefined) || !o.full() || client === null) return callback(err)
      const p = packet as PublishPacket & { _notAuthorized?: boolean, cmd?: string }
      if (p._notAuthorized === true) return callback(null)
      // Clearing a retained topic frees space, at any QoS.
      if (p.retain && p.payload.length === 0) return callback(null)
      const retains = p.retain && p.payload.length > 0
      if (p.qos === 0 && !retains) return callback(null)
      warn('warn', { clientId: client.id, topic: p.topic, qos: p.qos }, 'publish refused: storage full')
      // aedes skips a packet marked so (as for the access layer's refusals).
      p._notAuthorized = true
      if (p.qos === 0 || client.version !== 5) return callback(null)
      refuse(client, p, callback)
    })
  })
}

function refuse (client: Client, p: PublishPacket, callback: (err: Error | null) => void): void {
  const wantsReasons = (client as unknown as { _requestProblemInformation?: boolean })._requestProblemInformation !== false
  const ack = {
    cmd: p.qos === 1 ? 'puback' : 'pubrec',
    messageId: (p as { messageId?: number }).messageId,
    reasonCode: QUOTA_EXCEEDED,
    ...(wantsReasons ? { properties: { reasonString: 'storage full' } } : {})
  }
  writePacket(client, ack, () => callback(null))
}
