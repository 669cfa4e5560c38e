// A persistent session resuming while its topic is busy: aedes makes the
// restored subscriptions live before it replays the queue, so a message
// published in between used to overtake older queued ones and come again in
// the replay (delivery.ts, fix 3). Every message once, in the publisher's
// order, with QoS 0 ones from the same publisher flowing meanwhile.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startNode, type TestNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, connectWithConnack, uniqueId, type Received } from '../helpers/mqtt-clients.js'

let node: TestNode

before(async () => { node = await startNode({}) })
after(async () => { await node.stop() })

const QUEUED = 300

for (const protocolVersion of [4, 5] as const) {
  test(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5.0'}: a session resuming under a steady publisher gets each message once, in order`, async () => {
    const id = uniqueId('resume')
    const topic = `resume/${id}`
    const options = { protocolVersion, clientId: id, clean: false, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) }
    const first = await connect(node.mqttUrl, options)
    await first.subscribeAsync(topic, { qos: 2 })
    await first.endAsync()
    const pub = await connect(node.mqttUrl, { protocolVersion })
    let got: Received[] = []
    let sub: Awaited<ReturnType<typeof connect>> | undefined
    try {
      let seq = 0
      for (; seq < QUEUED; seq++) await pub.publishAsync(topic, String(seq), { qos: 1 })
      // Publishing goes on while the session resumes and its queue is replayed.
      let publishing = true
      const steady = (async () => {
        const until = Date.now() + 10_000
        while (publishing && Date.now() < until) {
          await pub.publishAsync(topic, String(seq++), { qos: 1 })
          // QoS 0 is never queued: it flows while queued messages wait, and must not make aedes take them for duplicates.
          await pub.publishAsync(topic, 'qos0', { qos: 0 })
        }
      })()
      const resumed = await connectWithConnack(node.mqttUrl, options)
      sub = resumed.client
      got = resumed.got
      assert.equal(resumed.connack.sessionPresent, true)
      await waitFor(() => got.filter((m) => m.payload !== 'qos0').length >= QUEUED + 50, { timeout: 10_000, message: 'queued and live messages' })
      publishing = false
      await steady
      await waitFor(() => got.filter((m) => m.payload !== 'qos0').length >= seq, { timeout: 10_000, message: `all ${seq} messages` })
      const seqs = got.filter((m) => m.payload !== 'qos0').map((m) => Number(m.payload))
      const expected = Array.from({ length: seq }, (_, i) => i)
      assert.deepEqual(seqs, expected, `first out-of-place delivery at index ${seqs.findIndex((v, i) => v !== i)}`)
    } finally {
      await pub.endAsync()
      await sub?.endAsync()
    }
  })
}
