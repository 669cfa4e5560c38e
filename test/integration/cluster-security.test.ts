// Encrypted clusters: a node with the wrong key (or none) never joins;
// random and truncated bytes sent to the cluster port's UDP and TCP sides are
// dropped and counted and change nothing; a second node with a name already
// in use is refused with a clear error.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { connect } from 'node:net'
import { randomBytes } from 'node:crypto'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { BrokerHaError } from '../../src/errors.js'
import { FAST } from '../helpers/cluster.js'

const KEY = 'cluster-key-0123456789-abcdefghi' // 32 bytes: AES-256
const running: TestNode[] = []
after(async () => { await Promise.all(running.map((n) => n.stop())) })

async function badPackets (n: TestNode): Promise<Record<string, number>> {
  const metric = n.node.registry.getSingleMetric('broker_cluster_bad_packets_total')!
  const out: Record<string, number> = {}
  for (const v of (await metric.get()).values) out[String(v.labels.reason)] = v.value
  return out
}
const total = (r: Record<string, number>): number => Object.values(r).reduce((s, x) => s + x, 0)
const liveNames = (n: TestNode): string[] => n.node.membership.members().filter((m) => m.state === 'alive' || m.state === 'suspect').map((m) => m.name).sort()

let a: TestNode
let b: TestNode

test('two nodes sharing a key form a cluster', async () => {
  const [ha, hb] = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  const discovery = { seeds: [`${ha}:7946`, `${hb}:7946`], formation_wait_min: 100, formation_wait_max: 300, resolve_interval: 1000 }
  ;[a, b] = await Promise.all([ha, hb].map((h) => startNode({ discovery, cluster: { config: { ...FAST, secret_key: KEY } } }, h))) as [TestNode, TestNode]
  running.push(a, b)
  await waitFor(() => liveNames(a).length === 2 && liveNames(b).length === 2, { timeout: 5000, message: 'a and b together' })
})

test('nodes with the wrong key or no key never join, and their packets are counted', async () => {
  const before = await badPackets(a)
  const seeds = [`${a.host}:7946`]
  const discovery = { seeds, formation_wait_min: 100, formation_wait_max: 200, resolve_interval: 1000 }
  const wrong = await startNode({ discovery, cluster: { config: { ...FAST, secret_key: 'another-key-0123456789-abcdefghi' } } })
  running.push(wrong)
  const plain = await startNode({ discovery, cluster: { config: FAST } })
  running.push(plain)
  // Each keeps retrying (re-resolution every second): wait for a few refused attempts.
  await waitFor(async () => {
    const now = await badPackets(a)
    return (now.auth ?? 0) - (before.auth ?? 0) >= 2 && (now.encryption ?? 0) - (before.encryption ?? 0) >= 2
  }, { timeout: 8000, message: 'refused attempts counted' })
  assert.deepEqual(liveNames(a), [a.config.cluster.name, b.config.cluster.name].sort())
  assert.deepEqual(liveNames(b), [a.config.cluster.name, b.config.cluster.name].sort())
  assert.deepEqual(liveNames(wrong), [wrong.config.cluster.name])
  assert.deepEqual(liveNames(plain), [plain.config.cluster.name])
  await wrong.stop()
  await plain.stop()
})

test('random and truncated bytes on the UDP and TCP port change nothing', async () => {
  const before = total(await badPackets(a))
  const udp = createSocket('udp4')
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()))
  const datagrams = [Buffer.alloc(0), Buffer.from([1]), Buffer.from([0]), Buffer.from([0, 0xB7, 1]), Buffer.from([1, ...randomBytes(28)])]
  for (let i = 0; i < 30; i++) datagrams.push(randomBytes(1 + Math.floor(Math.random() * 1400)))
  for (const d of datagrams) await new Promise<void>((resolve) => udp.send(d, 7946, a.host, () => resolve()))
  udp.close()
  // TCP: a junk frame, a frame announcing 4 GB, a truncated frame, a bare connect-and-close.
  const junk = randomBytes(64)
  const huge = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])
  const truncated = Buffer.concat([Buffer.from([0, 0, 1, 0]), randomBytes(10)])
  for (const payload of [Buffer.concat([Buffer.from([0, 0, 0, 64]), junk]), huge, truncated, Buffer.alloc(0)]) {
    await new Promise<void>((resolve) => {
      const s = connect(7946, a.host, () => { s.end(payload) })
      s.on('error', () => resolve())
      s.on('close', () => resolve())
      s.resume()
    })
  }
  // Everything but the empty datagram and the bare connect is counted as bad.
  await waitFor(async () => total(await badPackets(a)) - before >= datagrams.length - 1 + 3, { timeout: 5000, message: 'bad packets counted' })
  const after = await badPackets(a)
  assert.ok((after.size ?? 0) >= 1, 'the 4 GB frame is refused for its size')
  // The cluster is untouched: both still alive, probing still succeeds.
  const acks = async (): Promise<number> => (await a.node.registry.getSingleMetric('broker_cluster_probes_total')!.get()).values.find((v) => v.labels.result === 'ack')!.value
  const acked = await acks()
  await waitFor(async () => await acks() > acked, { timeout: 3000, message: 'probes acked after the junk' })
  assert.deepEqual(liveNames(a), [a.config.cluster.name, b.config.cluster.name].sort())
  assert.equal(a.node.membership.healthScore(), 0)
})

test('a newcomer using a member name already taken fails to start with CLUSTER_NAME_CONFLICT', async () => {
  const discovery = { seeds: [`${a.host}:7946`], formation_wait_min: 100, formation_wait_max: 200 }
  await assert.rejects(
    startNode({ discovery, cluster: { name: b.config.cluster.name, config: { ...FAST, secret_key: KEY } } }),
    (err: unknown) => err instanceof BrokerHaError && err.code === 'CLUSTER_NAME_CONFLICT' && err.message.includes(b.config.cluster.name)
  )
  assert.equal(a.node.membership.members().find((m) => m.name === b.config.cluster.name)!.addr, b.host)
})
