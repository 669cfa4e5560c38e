// A normal start and a rejoin log no warning (issue 19, item 1): a peer link
// dialled before this node's data plane was up used to be read as a
// malformed membership stream, and broker_cluster_bad_packets_total{reason="size"}
// rose on every restart, firing the very alert troubleshooting points to.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/index.js'
import { BrokerNode } from '../../src/server/node.js'
import { nodeConfigObject } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { clusterConfig } from '../helpers/dataplane-cluster.js'
import { waitFor } from '../helpers/wait.js'
import { metricValue } from '../helpers/mqtt-clients.js'

interface Line { level: number, msg: string, [key: string]: unknown }

const running = new Set<BrokerNode>()
after(async () => { for (const n of running) await n.stop().catch(() => {}) })

test('three nodes start and one rejoins without a warning or a bad cluster packet', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const lines: Line[] = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Line)
      done()
    }
  })
  const start = async (host: string): Promise<BrokerNode> => {
    const { config } = loadConfig({ object: nodeConfigObject(host, { ...clusterConfig(host, hosts), log: { level: 'info', clients: false } }) })
    const node = new BrokerNode(config, pino({ level: 'info', base: { node: host } }, sink))
    await node.start()
    running.add(node)
    return node
  }
  const mesh = async (nodes: BrokerNode[]): Promise<void> => {
    await waitFor(() => nodes.every((n) => nodes.every((p) => p === n || n.dataPlane.link(p.config.cluster.name)?.state === 'up')), { timeout: 15_000, message: 'a full mesh of peer links' })
  }
  const nodes = await Promise.all(hosts.map(start))
  await mesh(nodes)

  // A rejoin: the third node stops and a new process takes its place.
  await nodes[2]!.stop()
  running.delete(nodes[2]!)
  nodes[2] = await start(hosts[2]!)
  await mesh(nodes)

  const warnings = lines.filter((l) => l.level >= 40 && !String(l.msg).includes('open to anyone') && !String(l.msg).includes('anonymous access'))
  assert.deepEqual(warnings.map((l) => `${String(l.node)}: ${l.msg}`), [], 'no warning beyond the open-defaults ones')
  assert.equal(lines.some((l) => String(l.msg).includes('malformed')), false)
  for (const n of nodes) {
    for (const reason of ['auth', 'encryption', 'version', 'decode', 'size']) {
      assert.equal(await metricValue(n.registry, 'broker_cluster_bad_packets_total', { reason }), 0, `${n.config.cluster.name}: bad packets (${reason})`)
    }
  }
  // The start did produce the lines it should: the filter above had something to look at.
  assert.ok(lines.filter((l) => l.msg === 'broker-ha node started').length === 4)
})
