// Three real nodes (child processes) on loopback with the default timings:
// they find each other through seeds; a SIGKILLed node is marked dead by every
// survivor within the bound the config implies; it rejoins after a restart;
// a SIGTERMed node shows as left, not dead.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startProcessNode, type ProcessNode } from '../helpers/node.js'
import { detectionBound } from '../../src/server/cluster/membership/detection-bound.js'
import { LAN_PROFILE } from '../../src/server/cluster/membership/config-profile.js'
import { memberEvents, nameOf, startProcessCluster, viewOf, waitForView } from '../helpers/cluster.js'

const nodes: ProcessNode[] = []
after(async () => { await Promise.all(nodes.map((n) => n.stop('SIGKILL'))) })

test('three nodes started with a shared seed list all see each other alive', async () => {
  nodes.push(...await startProcessCluster(3))
  for (const n of nodes) {
    const view = viewOf(n)
    assert.equal(view.size, 2, `${n.host} sees ${[...view.keys()].join(', ')}`)
    for (const other of nodes.filter((o) => o !== n)) assert.equal(view.get(nameOf(other)), 'alive')
  }
})

test('a SIGKILLed node is marked dead by every survivor within the bound of the default config', async () => {
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]
  const bound = detectionBound(LAN_PROFILE, 3)
  const killedAt = Date.now()
  await c.stop('SIGKILL')
  await waitForView([a, b], [c], 'dead', bound + 5000)
  for (const survivor of [a, b]) {
    const dead = memberEvents(survivor).find((e) => e.member === nameOf(c) && e.state === 'dead')!
    const took = dead.time - killedAt
    assert.ok(took <= bound, `${survivor.host} marked it dead after ${took} ms; bound ${bound} ms`)
  }
  // Dead only ever follows a suspicion (somebody's probe failed first).
  assert.ok([a, b].some((s) => memberEvents(s).some((e) => e.member === nameOf(c) && e.state === 'suspect' && e.time >= killedAt)))
  // The survivors did not accuse each other.
  assert.equal(viewOf(a).get(nameOf(b)), 'alive')
  assert.equal(viewOf(b).get(nameOf(a)), 'alive')
})

test('the killed node, restarted with the same name and address, rejoins', async () => {
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]
  const seeds = [a, b, c].map((n) => `${n.host}:7946`)
  const restarted = await startProcessNode({ discovery: { seeds, formation_wait_min: 200, formation_wait_max: 800, resolve_interval: 1000 } }, { host: c.host })
  nodes[2] = restarted
  await waitForView([a, b], [restarted], 'alive', 10_000)
  await waitForView([restarted], [a, b], 'alive', 10_000)
})

test('a SIGTERMed node leaves gracefully: the others see it as left, not dead', async () => {
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]
  assert.equal(await b.stop('SIGTERM'), 0)
  await waitForView([a, c], [b], 'left', 5000)
  for (const survivor of [a, c]) {
    const history = memberEvents(survivor).filter((e) => e.member === nameOf(b))
    assert.equal(history.at(-1)!.state, 'left')
    assert.ok(!history.some((e) => e.state === 'dead' || e.state === 'suspect'), 'never suspected or dead on the way out')
  }
})
