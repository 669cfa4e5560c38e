// Data-plane benchmarks of issue 5, side by side in one run (not part of the
// test suite: `npm run build && node dist/bench/cluster.js`). Every node and
// client runs in this one process, so absolute figures are pessimistic; the
// ratios compare like with like.
//   1. QoS 1 throughput, publisher and subscriber on one node vs on two nodes
//   2. cross-node latency p50/p99 at a fixed rate
//   3. time for a new node to receive 100,000 retained messages of 100 bytes
import { performance } from 'node:perf_hooks'
import type { MqttClient } from 'mqtt'
import { startNode, type TestNode } from '../test/helpers/node.js'
import { freeLoopbackAddress } from '../test/helpers/loopback.js'
import { waitFor } from '../test/helpers/wait.js'
import { connect, uniqueId } from '../test/helpers/mqtt-clients.js'
import { clusterConfig, waitForMesh, waitForRoute } from '../test/helpers/dataplane-cluster.js'

const N = Number(process.env.BENCH_MESSAGES ?? 20_000)
const RATE = Number(process.env.BENCH_RATE ?? 5000)
const RATE_SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 2)
const RETAINED = Number(process.env.BENCH_RETAINED ?? 100_000)
const payload = Buffer.alloc(100, 'x')

async function throughput (pubNode: TestNode, subNode: TestNode): Promise<number> {
  const topic = uniqueId('bench')
  const sub = await connect(subNode.mqttUrl)
  const pub = await connect(pubNode.mqttUrl)
  try {
    let got = 0
    sub.on('message', () => { got++ })
    await sub.subscribeAsync(topic, { qos: 1 })
    if (pubNode !== subNode) await waitForRoute(pubNode, subNode, topic)
    const t0 = performance.now()
    // A window of 500 in flight, as a real publisher would keep.
    let next = 0
    await Promise.all(Array.from({ length: 500 }, async () => {
      while (next < N) { next++; await pub.publishAsync(topic, payload, { qos: 1 }) }
    }))
    await waitFor(() => got >= N, { timeout: 120_000, interval: 5, message: 'all messages' })
    return N / ((performance.now() - t0) / 1000)
  } finally {
    await sub.endAsync(true)
    await pub.endAsync(true)
  }
}

async function latency (pubNode: TestNode, subNode: TestNode): Promise<{ p50: number, p99: number, max: number }> {
  const topic = uniqueId('lat')
  const sub = await connect(subNode.mqttUrl)
  const pub = await connect(pubNode.mqttUrl)
  try {
    const samples: number[] = []
    sub.on('message', (_t, p) => { samples.push(performance.now() - p.readDoubleBE(0)) })
    await sub.subscribeAsync(topic, { qos: 1 })
    await waitForRoute(pubNode, subNode, topic)
    const total = RATE * RATE_SECONDS
    const t0 = performance.now()
    let sent = 0
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(total, Math.floor((performance.now() - t0) / 1000 * RATE))
        while (sent < due) {
          const b = Buffer.alloc(100)
          b.writeDoubleBE(performance.now(), 0)
          pub.publish(topic, b, { qos: 1 })
          sent++
        }
        if (sent >= total) resolve()
        else setTimeout(tick, 1)
      }
      tick()
    })
    await waitFor(() => samples.length >= total, { timeout: 60_000, message: 'all samples' })
    samples.sort((x, y) => x - y)
    const q = (f: number): number => samples[Math.min(samples.length - 1, Math.floor(f * samples.length))]!
    return { p50: q(0.5), p99: q(0.99), max: samples[samples.length - 1]! }
  } finally {
    await sub.endAsync(true)
    await pub.endAsync(true)
  }
}

async function fillRetained (node: TestNode, root: string, count: number): Promise<void> {
  const pub: MqttClient = await connect(node.mqttUrl)
  try {
    let next = 0
    await Promise.all(Array.from({ length: 200 }, async () => {
      while (next < count) { const i = next++; await pub.publishAsync(`${root}/${i}`, payload, { qos: 1, retain: true }) }
    }))
  } finally {
    await pub.endAsync(true)
  }
}

const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
const config = (h: string): ReturnType<typeof clusterConfig> => clusterConfig(h, hosts, { mqtt: { max_retained_messages: 0, max_retained_bytes: 0 } })
const [a, b] = await Promise.all([startNode(config(hosts[0]!), hosts[0]), startNode(config(hosts[1]!), hosts[1])]) as [TestNode, TestNode]
let c: TestNode | undefined
try {
  await waitForMesh([a, b])
  const same = await throughput(a, a)
  const cross = await throughput(a, b)
  console.log(`throughput QoS 1, ${N} x 100 B: same node ${same.toFixed(0)} msg/s, cross node ${cross.toFixed(0)} msg/s, ratio ${(cross / same).toFixed(2)} (goal >= 0.6)`)
  const lat = await latency(a, b)
  console.log(`cross-node latency QoS 1 at ${RATE} msg/s for ${RATE_SECONDS} s: p50 ${lat.p50.toFixed(2)} ms, p99 ${lat.p99.toFixed(2)} ms, max ${lat.max.toFixed(2)} ms (goal p99 <= 10 ms)`)
  const root = uniqueId('retained')
  const f0 = performance.now()
  await fillRetained(a, root, RETAINED)
  await waitFor(() => b.node.dataPlane.retained.count >= RETAINED, { timeout: 120_000, message: 'B has them' })
  console.log(`${RETAINED} retained written on A and replicated to B in ${((performance.now() - f0) / 1000).toFixed(2)} s`)
  const t0 = performance.now()
  c = await startNode(config(hosts[2]!), hosts[2])
  await waitFor(() => c!.node.dataPlane.retained.count >= RETAINED, { timeout: 120_000, interval: 5, message: 'the new node has them all' })
  console.log(`new node received ${RETAINED} retained x 100 B in ${((performance.now() - t0) / 1000).toFixed(2)} s from its start (membership join included; goal <= 5 s); sync repaired ${c.node.dataPlane.sync.stats.repaired}`)
} finally {
  await Promise.all([a, b, c].filter((n) => n !== undefined).map(async (n) => await n.stop()))
}
