// The API of a three-node cluster: /proxy gathers every member's answer;
// when the others die (one killed with SIGKILL, one left gracefully) the
// survivor becomes ready again (it keeps serving) while /healthz reports that
// its seeds cannot be joined. A real SWIM membership over loopback.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import { startNode, startProcessNode, type ConfigOverrides, type ProcessNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { ApiClient, isMemberError, type ClientInfo } from '../../src/client/index.js'

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

test('proxy answers from every member; the survivor stays ready and reports unjoinable seeds', async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress(), await freeLoopbackAddress()]
  const config = (host: string): ConfigOverrides => ({
    cluster: { expected_members: 3, config: { probe_interval: 200, probe_timeout: 100, gossip_interval: 50, push_pull_interval: 1000 } },
    discovery: { seeds: hosts.filter((h) => h !== host).map((h) => `${h}:7946`), formation_wait_min: 0, formation_wait_max: 200, resolve_interval: 1000 },
    api: { proxy_timeout: 1000 }
  })
  const [a, b, c] = await Promise.all([
    startNode(config(hosts[0]!), hosts[0]),
    startProcessNode(config(hosts[1]!), { host: hosts[1]! }),
    startNode(config(hosts[2]!), hosts[2])
  ]) as [TestNode, ProcessNode, TestNode]
  cleanups.push(() => a.stop(), () => b.stop('SIGKILL'), () => c.stop())
  const api = new ApiClient({ baseUrl: a.apiUrl })
  cleanups.push(() => api.close())
  const nameB = `node-${hosts[1]}`

  await waitFor(async () => (await api.members()).filter((m) => m.State === 0).length === 3, { timeout: 15_000, message: 'three alive members' })
  assert.equal((await api.healthz()).ok, true)

  const onB = await mqtt.connectAsync(b.mqttUrl, { clientId: 'connected-to-b', reconnectPeriod: 0 })
  cleanups.push(() => onB.endAsync(true))
  const clients = await api.proxyClients()
  assert.deepEqual(Object.keys(clients).sort(), [a.config.cluster.name, nameB, c.config.cluster.name].sort())
  assert.deepEqual((clients[nameB] as ClientInfo[]).map((x) => x.ID), ['connected-to-b'])
  assert.deepEqual(clients[a.config.cluster.name], [])
  const members = await api.proxyMembers()
  for (const [name, answer] of Object.entries(members)) {
    assert.ok(Array.isArray(answer), `${name} answered`)
    assert.equal(answer.length, 3, `${name} knows three members`)
  }

  b.child.kill('SIGKILL')
  // Until B is declared dead it is still asked, and appears with its error.
  const during = await api.proxyClients()
  if (nameB in during) assert.ok(isMemberError(during[nameB]), 'a killed member shows an error, not an answer')
  assert.deepEqual(during[a.config.cluster.name], [])

  await c.stop() // graceful: "left"
  const health = await waitFor(async () => { const h = await api.healthz(); return h.ok ? undefined : h }, { timeout: 15_000, interval: 100, message: '/healthz 503' })
  assert.equal(health.result.details.liveness_cluster_discovered_members!.status, 'down')
  assert.equal(health.result.details.liveness_member_in_cluster!.status, 'up')
  await waitFor(async () => Object.keys(await api.proxyClients()).length === 1, { timeout: 15_000, message: 'dead and left members no longer asked' })
  // The last node standing must stay in the Service: its health score rose
  // while its probes to B failed, and decays once nobody is left to probe.
  await waitFor(async () => (await api.ready()).ok, { timeout: 15_000, interval: 100, message: 'the survivor ready again' })
})
