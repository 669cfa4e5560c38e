// The pure parts of --network netns: names and addresses of a run's
// namespaces, which leftovers count as stale, the setup steps and the route
// changes a partition and its heal make.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  netnsLayout, netnsRunId, isNetnsRunId, layoutNamespaces, namespaceOwner, staleNamespaces, parseNetnsList, setupSteps, routeChanges, insideNamespace
} from '../../../src/chaos/netns.js'

test('a layout names every namespace after the run and gives each node its own address', () => {
  const layout = netnsLayout(netnsRunId(4242), 3)
  assert.equal(layout.runId, 'bhchaos-4242')
  assert.equal(layout.hub, 'bhchaos-4242-hub')
  assert.deepEqual(layout.nodes.map((n) => n.namespace), ['bhchaos-4242-n1', 'bhchaos-4242-n2', 'bhchaos-4242-n3'])
  assert.deepEqual(layout.nodes.map((n) => n.address), ['127.213.0.2', '127.213.0.3', '127.213.0.4'])
  assert.equal(layout.hubAddress, '127.213.0.1')
  // Interface names must fit in IFNAMSIZ (15 characters).
  assert.ok(layout.nodes.every((n) => n.hubIf.length <= 15))
  // Loopback range on purpose: --chaos-control refuses anything else.
  assert.ok([layout.hubAddress, ...layout.nodes.map((n) => n.address)].every((a) => a.startsWith('127.')))
  assert.deepEqual(layoutNamespaces(layout), ['bhchaos-4242-n1', 'bhchaos-4242-n2', 'bhchaos-4242-n3', 'bhchaos-4242-hub'])
  assert.deepEqual(insideNamespace('bhchaos-4242-n1'), ['ip', 'netns', 'exec', 'bhchaos-4242-n1'])
  assert.equal(netnsLayout('bhchaos-1', 20).nodes[19]!.address, '127.213.0.21')
  assert.throws(() => netnsLayout('other-1', 3))
  assert.throws(() => netnsLayout('bhchaos-1', 0))
})

test('run ids and owners', () => {
  assert.ok(isNetnsRunId('bhchaos-17'))
  for (const bad of ['bhchaos-', 'bhchaos-17-hub', 'bhchaos-x', 'x-bhchaos-17', 'bhchaos-17; rm -rf /']) assert.ok(!isNetnsRunId(bad), bad)
  assert.equal(namespaceOwner('bhchaos-17-n2'), 17)
  assert.equal(namespaceOwner('bhchaos-17-hub'), 17)
  assert.equal(namespaceOwner('bhchaos-17'), undefined)
  assert.equal(namespaceOwner('cni-1234-abcd'), undefined)
})

test('stale namespaces: ours, and owned by a gone process or by our own (reused) pid', () => {
  const names = ['bhchaos-10-hub', 'bhchaos-10-n1', 'bhchaos-11-n1', 'bhchaos-12-hub', 'cni-9', 'bhchaos-13']
  const alive = (pid: number): boolean => pid === 11 || pid === 12
  assert.deepEqual(staleNamespaces(names, alive, 99), ['bhchaos-10-hub', 'bhchaos-10-n1'])
  assert.deepEqual(staleNamespaces(names, alive, 12), ['bhchaos-10-hub', 'bhchaos-10-n1', 'bhchaos-12-hub'])
  assert.deepEqual(staleNamespaces([], alive, 1), [])
})

test('`ip netns list` output, with and without ids', () => {
  assert.deepEqual(parseNetnsList('bhchaos-1-n2 (id: 2)\nbhchaos-1-n1 (id: 1)\nother\n\n'), ['bhchaos-1-n2', 'bhchaos-1-n1', 'other'])
  assert.deepEqual(parseNetnsList(''), [])
})

test('setup: namespaces first, then the bridge, then one veth per node; nothing in the caller\'s namespace', () => {
  const layout = netnsLayout('bhchaos-5', 2)
  const steps = setupSteps(layout)
  const ipSteps = steps.flatMap((s) => 'ip' in s ? [s.ip.join(' ')] : [])
  const adds = ipSteps.filter((s) => s.startsWith('netns add')).map((s) => s.split(' ')[2])
  assert.deepEqual(adds, ['bhchaos-5-hub', 'bhchaos-5-n1', 'bhchaos-5-n2'])
  // Every link and address command names its namespace with -n.
  assert.ok(ipSteps.filter((s) => !s.startsWith('netns ')).every((s) => /^-n bhchaos-5-(hub|n\d) /.test(s)), ipSteps.join('\n'))
  assert.ok(ipSteps.includes('-n bhchaos-5-hub addr add 127.213.0.1/24 dev br0'))
  assert.ok(ipSteps.includes('-n bhchaos-5-hub link add n2 type veth peer name eth0 netns bhchaos-5-n2'))
  assert.ok(ipSteps.includes('-n bhchaos-5-n2 addr add 127.213.0.3/24 dev eth0'))
  // Each namespace narrows lo and turns route_localnet on before any 127/8 address goes on a veth.
  const idx = (text: string): number => steps.findIndex((s) => ('ip' in s ? s.ip.join(' ') : `${s.inside}: ${s.sh}`).includes(text))
  for (const ns of layoutNamespaces(layout)) {
    assert.ok(idx(`-n ${ns} addr add 127.0.0.1/32 dev lo`) > idx(`-n ${ns} addr del 127.0.0.1/8 dev lo`))
    assert.ok(idx(`${ns}: echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet`) >= 0)
  }
  assert.ok(idx('netns add bhchaos-5-n2') < idx('peer name eth0 netns bhchaos-5-n2'))
})

test('route changes: a partition adds blackholes both ways, a heal removes exactly them, a repeat changes nothing', () => {
  const layout = netnsLayout('bhchaos-5', 3)
  const none = new Map<number, Set<string>>()
  // {n1} | {n2, n3}
  const split = new Map([[0, new Set(['127.213.0.3', '127.213.0.4'])], [1, new Set(['127.213.0.2'])], [2, new Set(['127.213.0.2'])]])
  assert.deepEqual(Object.fromEntries(routeChanges(layout, none, split)), {
    'bhchaos-5-n1': ['route replace blackhole 127.213.0.3/32', 'route replace blackhole 127.213.0.4/32'],
    'bhchaos-5-n2': ['route replace blackhole 127.213.0.2/32'],
    'bhchaos-5-n3': ['route replace blackhole 127.213.0.2/32']
  })
  assert.deepEqual(routeChanges(layout, split, split).size, 0)
  assert.deepEqual(Object.fromEntries(routeChanges(layout, split, none)), {
    'bhchaos-5-n1': ['route del blackhole 127.213.0.3/32', 'route del blackhole 127.213.0.4/32'],
    'bhchaos-5-n2': ['route del blackhole 127.213.0.2/32'],
    'bhchaos-5-n3': ['route del blackhole 127.213.0.2/32']
  })
  // Another split: only the difference.
  const other = new Map([[2, new Set(['127.213.0.2', '127.213.0.3'])], [0, new Set(['127.213.0.4'])], [1, new Set(['127.213.0.4'])]])
  assert.deepEqual(Object.fromEntries(routeChanges(layout, split, other)), {
    'bhchaos-5-n1': ['route del blackhole 127.213.0.3/32'],
    'bhchaos-5-n2': ['route del blackhole 127.213.0.2/32', 'route replace blackhole 127.213.0.4/32'],
    'bhchaos-5-n3': ['route replace blackhole 127.213.0.3/32']
  })
})
