// One conformance suite for every Transport (conventions: shared suites for
// interfaces with several implementations): UDP+TCP on loopback, the
// in-memory network, and both behind the fault-injection wrapper.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { NetTransport } from '../../src/server/cluster/membership/net-transport.js'
import { MemoryNetwork } from '../../src/server/cluster/membership/memory-transport.js'
import { FaultInjectingTransport } from '../../src/server/cluster/fault-injection.js'
import type { Clock } from '../../src/server/cluster/membership/clock.js'
import type { Address, Transport, TransportHandlers } from '../../src/server/cluster/membership/transport.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'

interface Pair { a: Transport, b: Transport }

// Real time with ref'd timers: the system clock unrefs its timers (a node's
// sockets keep it alive), but here a pending exchange is all that runs.
let nextId = 0
const timers = new Map<number, NodeJS.Timeout>()
const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => { const id = ++nextId; timers.set(id, setTimeout(() => { timers.delete(id); fn() }, ms)); return { id } },
  clearTimeout: (h) => { if (h !== undefined) { clearTimeout(timers.get(h.id)); timers.delete(h.id) } }
}

const kinds: Record<string, () => Promise<Pair>> = {
  net: async () => {
    const [ha, hb] = [await freeLoopbackAddress(), await freeLoopbackAddress()]
    return { a: new NetTransport({ bind: ha, port: 7946, streamTimeoutMs: 1000 }), b: new NetTransport({ bind: hb, port: 7946, streamTimeoutMs: 1000 }) }
  },
  memory: async () => {
    const net = new MemoryNetwork(realClock, 1)
    return { a: net.transport('127.0.0.2'), b: net.transport('127.0.0.3') }
  }
}

function recorder (): { handlers: TransportHandlers, packets: Array<{ from: Address, data: string }> } {
  const packets: Array<{ from: Address, data: string }> = []
  return {
    packets,
    handlers: {
      packet: (from, data) => { packets.push({ from, data: data.toString() }) },
      exchange: async (_from, request) => request.toString() === 'hang up' ? undefined : Buffer.from(`re: ${request.toString()}`)
    }
  }
}

for (const [kind, make] of Object.entries(kinds)) {
  for (const wrapped of [false, true]) {
    const label = `${kind}${wrapped ? ' behind fault injection' : ''}`
    test(`${label}: packets arrive with the sender's address; exchanges answer; failures reject`, async () => {
      const pair = await make()
      const a = wrapped ? new FaultInjectingTransport(pair.a) : pair.a
      const b = wrapped ? new FaultInjectingTransport(pair.b) : pair.b
      const ra = recorder()
      const rb = recorder()
      await a.start(ra.handlers)
      await b.start(rb.handlers)
      try {
        a.sendPacket(b.local, Buffer.from('hello'))
        await waitFor(() => rb.packets.length === 1, { timeout: 2000, message: 'packet' })
        assert.equal(rb.packets[0]!.data, 'hello')
        assert.equal(rb.packets[0]!.from.host, a.local.host)
        // Replies go to where the packet came from.
        b.sendPacket(rb.packets[0]!.from, Buffer.from('back'))
        await waitFor(() => ra.packets.length === 1, { timeout: 2000, message: 'reply' })

        assert.equal((await a.exchange(b.local, Buffer.from('state'), 1000)).toString(), 're: state')
        await assert.rejects(a.exchange(b.local, Buffer.from('hang up'), 1000))
        await assert.rejects(a.exchange({ host: '127.0.0.1', port: 9 }, Buffer.from('x'), 300))
        assert.ok(a.stats.bytesSent > 0 && b.stats.bytesReceived > 0)

        if (a instanceof FaultInjectingTransport) {
          a.block(b.local.host)
          a.sendPacket(b.local, Buffer.from('dropped'))
          const received = pair.a.stats.bytesReceived
          b.sendPacket(a.local, Buffer.from('dropped too'))
          await assert.rejects(a.exchange(b.local, Buffer.from('x'), 300))
          // The packet reached a's socket (and was filtered) before we heal.
          await waitFor(() => pair.a.stats.bytesReceived > received, { timeout: 2000, message: 'blocked packet at the socket' })
          a.heal()
          a.sendPacket(b.local, Buffer.from('after heal'))
          await waitFor(() => rb.packets.some((p) => p.data === 'after heal'), { timeout: 2000, message: 'healed packet' })
          assert.ok(!rb.packets.some((p) => p.data === 'dropped'))
          assert.ok(!ra.packets.some((p) => p.data === 'dropped too'))
        }
      } finally {
        await a.stop()
        await b.stop()
      }
      // After stop nothing is delivered (and the ports are free again).
      a.sendPacket(b.local, Buffer.from('late'))
      await assert.rejects(a.exchange(b.local, Buffer.from('late'), 300))
      assert.ok(!rb.packets.some((p) => p.data === 'late'))
    })
  }
}

test('fault injection refuses to wrap a transport bound outside loopback', () => {
  const net = new MemoryNetwork(realClock)
  assert.throws(() => new FaultInjectingTransport(net.transport('10.1.2.3')), /loopback/)
})
