// Discovery against a real DNS server on loopback: nodes find each other
// through the SRV records of a headless-Service-like name, and two clusters
// that formed apart merge once re-resolution finds the other one.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js'
import { waitFor } from '../helpers/wait.js'
import { FAST } from '../helpers/cluster.js'

const running: TestNode[] = []
let dns: DnsServer | undefined
after(async () => {
  await Promise.all(running.map((n) => n.stop()))
  await dns?.close()
})

const aliveNames = (n: TestNode): string[] => n.node.membership.members().filter((m) => m.state === 'alive').map((m) => m.name).sort()

async function seesAll (nodes: TestNode[], timeout: number): Promise<void> {
  const names = nodes.map((n) => n.config.cluster.name).sort()
  await waitFor(() => nodes.every((n) => JSON.stringify(aliveNames(n)) === JSON.stringify(names)), { timeout, message: `${names.length} members alive everywhere` })
}

test('nodes find each other through SRV records served by a DNS server on loopback', async () => {
  dns = await startDnsServer(await freeLoopbackAddress())
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const domain = 'broker-headless.broker-ha.svc.test.local'
  // As in Kubernetes: SRV targets are pod names, resolved through A records.
  dns.setSrv(domain, hosts.map((h, i) => ({ port: 7946, target: `pod-${i}.${domain}` })))
  hosts.forEach((h, i) => dns!.setA(`pod-${i}.${domain}`, [h]))
  const discovery = { domain, dns_server: dns.address, formation_wait_min: 100, formation_wait_max: 600, resolve_interval: 1000 }
  const nodes = await Promise.all(hosts.map((host) => startNode({ discovery, cluster: { config: FAST } }, host)))
  running.push(...nodes)
  await seesAll(nodes, 10_000)
  assert.ok(dns.queries.includes(`SRV ${domain}`))
  assert.ok(dns.queries.includes(`A pod-0.${domain}`))
  // cluster:new_member was published for each other member (never for ourselves).
  for (const n of nodes) assert.ok(n.node.bus.published.get('cluster:new_member')! >= 2)
  // The member meta carries the API port /proxy needs.
  assert.equal(nodes[0]!.node.membership.members().find((m) => m.addr === hosts[1])!.meta.api, 8080)
})

test('two clusters formed apart merge once re-resolution finds the other', async () => {
  const domain = 'merge.test.local'
  dns!.setSrv(domain, [])
  const [a1, a2, b1, b2] = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  // A key: each cluster forms from one common seed, which admission by
  // address (no key) does not allow (the seed's discovery yields only itself).
  const cluster = { config: { ...FAST, secret_key: 'merge-test-key-0123456789abcdefg' } }
  // Cluster A also watches the SRV name (empty for now); cluster B only knows its seed.
  const discoveryA = { domain, dns_server: dns!.address, seeds: [`${a1}:7946`], formation_wait_min: 100, formation_wait_max: 300, resolve_interval: 1000 }
  const discoveryB = { seeds: [`${b1}:7946`], formation_wait_min: 100, formation_wait_max: 300, resolve_interval: 1000 }
  const nodesA = [await startNode({ discovery: discoveryA, cluster }, a1), await startNode({ discovery: discoveryA, cluster }, a2)]
  running.push(...nodesA)
  const nodesB = [await startNode({ discovery: discoveryB, cluster }, b1), await startNode({ discovery: discoveryB, cluster }, b2)]
  running.push(...nodesB)
  await seesAll(nodesA, 5000)
  await seesAll(nodesB, 5000)
  assert.equal(aliveNames(nodesA[0]!).length, 2)
  assert.equal(aliveNames(nodesB[0]!).length, 2)

  // The operator's DNS now lists a member of B: A's next resolution joins it and the clusters merge.
  dns!.setSrv(domain, [{ port: 7946, target: b1 }])
  await seesAll([...nodesA, ...nodesB], 10_000)
})
