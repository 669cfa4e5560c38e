// `broker-ha admin <subcommand>` against real nodes: tables and --json,
// clusters from the clusters file, exit statuses for an unreachable URL, bad
// credentials, bad usage and a partial answer; and the cluster source moving
// to another member when its entry node goes away.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { startNode, type ConfigOverrides, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { ApiClient } from '../../src/client/index.js'
import { ApiClusterSource } from '../../src/tui/cluster-source.js'
import { runCli, type Run } from '../helpers/run.js'
import { parse as parseYaml } from 'yaml'


const cleanups: Array<() => Promise<unknown>> = []
const home = mkdtempSync(join(tmpdir(), 'broker-ha-admin-'))
let a: TestNode
let b: TestNode
let nameA: string
let nameB: string
const clients: MqttClient[] = []

function run (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runCli(['admin', ...args], { env: { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: join(home, '.config'), ...env } })
}

/**
 * A key: the third members below join through one seed, which only a key
 * admits (without one, by address, discovery must yield every member); and
 * with api.user set, members reach each other's API with the credential
 * derived from it.
 */
const CLUSTER_KEY = 'admin-test-key-0123456789abcdefg'

before(async () => {
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  const config = (host: string): ConfigOverrides => ({
    api: { user: { admin: 'pw' }, proxy_timeout: 2000 },
    cluster: { config: { probe_interval: 200, probe_timeout: 100, gossip_interval: 50, push_pull_interval: 1000, secret_key: CLUSTER_KEY } },
    discovery: { seeds: hosts.filter((h) => h !== host).map((h) => `${h}:7946`), formation_wait_min: 0, formation_wait_max: 200 }
  })
  ;[a, b] = await Promise.all([startNode(config(hosts[0]!), hosts[0]), startNode(config(hosts[1]!), hosts[1])]) as [TestNode, TestNode]
  cleanups.push(() => a.stop(), () => b.stop())
  nameA = a.config.cluster.name
  nameB = b.config.cluster.name
  const api = new ApiClient({ baseUrl: a.apiUrl, username: 'admin', password: 'pw' })
  cleanups.push(() => api.close())
  await waitFor(async () => (await api.members()).filter((m) => m.State === 0).length === 2, { timeout: 15_000, message: 'two alive members' })
  const onA = await mqtt.connectAsync(a.mqttUrl, { clientId: 'sensor-1', protocolVersion: 5, username: 'probe', reconnectPeriod: 0 })
  const onB = await mqtt.connectAsync(b.mqttUrl, { clientId: 'dashboard', reconnectPeriod: 0 })
  clients.push(onA, onB)
  await onB.subscribeAsync('home/#', { qos: 1 })
  await onA.publishAsync('home/temp', '21.5', { retain: true, qos: 1 })
  await onA.publishAsync('home/config', '{"unit":"C"}', { retain: true, qos: 1 })
  // Retained messages are replicated: wait until both nodes hold both.
  await waitFor(async () => {
    const held = await api.proxyTopicMessages('home/#')
    return [nameA, nameB].every((n) => Array.isArray(held[n]) && (held[n] as unknown[]).length === 2)
  }, { message: 'retained stored on both nodes' })
})

after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {})
  for (const c of cleanups.reverse()) await c().catch(() => {})
  rmSync(home, { recursive: true, force: true })
})

test('members and clients: tables for people, JSON for machines', async () => {
  const auth = ['--url', a.apiUrl, '--user', 'admin:pw']
  // Both alive (the fast probes of these tests can make one suspect for a moment on a loaded machine).
  const members = await waitFor(async () => {
    const r = await run(['members', ...auth])
    return r.code !== 0 || (r.stdout.match(/\salive\s/g) ?? []).length === 2 ? r : undefined
  }, { timeout: 10_000, message: 'admin members listing both members alive' })
  assert.equal(members.code, 0, members.stderr)
  assert.match(members.stdout, /^NAME\s+STATE\s+ADDRESS\s+API\s+VERSION\n/)
  assert.match(members.stdout, new RegExp(`${nameA}\\s+alive\\s+${a.host}:7946\\s+http://${a.host}:8080`))
  assert.match(members.stdout, new RegExp(`${nameB}\\s+alive`))

  const json = await waitFor(async () => {
    const r = await run(['members', '--json', ...auth])
    return r.code !== 0 || (JSON.parse(r.stdout) as Array<{ state: string }>).every((m) => m.state === 'alive') ? r : undefined
  }, { timeout: 10_000, message: 'admin members --json listing both members alive' })
  assert.equal(json.code, 0)
  const parsed = JSON.parse(json.stdout) as Array<{ name: string, state: string, api: string }>
  assert.deepEqual(parsed.map((m) => [m.name, m.state, m.api]).sort(), [[nameA, 'alive', a.apiUrl], [nameB, 'alive', b.apiUrl]].sort())

  const table = await run(['clients', ...auth])
  assert.equal(table.code, 0, table.stderr)
  assert.match(table.stdout, new RegExp(`dashboard\\s+${nameB}\\s+-\\s+3\\.1\\.1\\s+yes\\s+home/#`))
  assert.match(table.stdout, new RegExp(`sensor-1\\s+${nameA}\\s+probe\\s+5\\.0\\s+yes\\s+-`))
  const clientsJson = JSON.parse((await run(['clients', '--json', ...auth])).stdout) as { clients: Array<{ id: string, node: string, subscriptions: string[] }>, unreachable: object }
  assert.deepEqual(clientsJson.clients.map((c) => [c.id, c.node, c.subscriptions]), [['dashboard', nameB, ['home/#']], ['sensor-1', nameA, []]])
  assert.deepEqual(clientsJson.unreachable, {})
})

test('-o yaml, -o json and -o wide beside --json, as kubectl has them', async () => {
  const auth = ['--url', a.apiUrl, '--user', 'admin:pw']
  const [json, yaml, o, wide, wideMembers] = await Promise.all([
    run(['clients', '--json', ...auth]), run(['clients', '-o', 'yaml', ...auth]), run(['clients', '-o', 'json', ...auth]),
    run(['clients', '-o', 'wide', ...auth]), run(['members', '--output', 'wide', ...auth])
  ])
  for (const r of [json, yaml, o, wide, wideMembers]) assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(parseYaml(yaml.stdout), JSON.parse(json.stdout), 'YAML carries the same data as JSON')
  assert.equal(o.stdout, json.stdout)
  const parsed = JSON.parse(json.stdout) as { clients: Array<{ id: string, remote: string, connected_at: string }> }
  const sensor = parsed.clients.find((c) => c.id === 'sensor-1')!
  assert.match(sensor.remote, /^127\.\d+\.\d+\.\d+:\d+$/)
  assert.match(sensor.connected_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
  assert.match(wide.stdout, /^CLIENT ID\s+NODE\s+USER\s+MQTT\s+CLEAN\s+ADDRESS\s+CONNECTED\s+KEEPALIVE\s+SUBSCRIPTIONS\n/)
  assert.match(wide.stdout, new RegExp(`dashboard\\s+${nameB}\\s+-\\s+3\\.1\\.1\\s+yes\\s+127\\.\\S+\\s+\\d{4}-\\S+Z\\s+\\S+\\s+home/#:q1`))
  assert.match(wideMembers.stdout, /^NAME\s+STATE\s+ADDRESS\s+API\s+MQTT\s+VERSION\n/)
  assert.match(wideMembers.stdout, new RegExp(`${nameA}\\s+alive\\s+\\S+\\s+\\S+\\s+${a.host.replace(/\./g, '\\.')}:1883\\s+`))
})

test('retained and subscribers, with credentials from the environment', async () => {
  const env = { BROKER_ADMIN_URL: b.apiUrl, BROKER_ADMIN_USER: 'admin', BROKER_ADMIN_PASSWORD: 'pw' }
  const retained = await run(['retained', 'home/#'], env)
  assert.equal(retained.code, 0, retained.stderr)
  assert.match(retained.stdout, /home\/config\s+1\s+12\s+2\s+\{"unit":"C"\}/)
  assert.match(retained.stdout, /home\/temp\s+1\s+4\s+2\s+21\.5/)
  const retainedJson = JSON.parse((await run(['retained', 'home/temp', '--json'], env)).stdout) as { retained: Array<{ topic: string, payload: string, nodes: string[] }> }
  assert.deepEqual(retainedJson.retained.map((r) => [r.topic, Buffer.from(r.payload, 'base64').toString(), [...r.nodes].sort()]), [['home/temp', '21.5', [nameA, nameB].sort()]])
  const subs = await run(['subscribers', 'home/kitchen'], env)
  assert.equal(subs.code, 0, subs.stderr)
  assert.match(subs.stdout, new RegExp(`dashboard\\s+${nameB}\\s+home/#\\s+1\\s+-`))
  // A wildcard where a topic name belongs is the caller's mistake: said once, with the reason, exit 2.
  const bad = await run(['subscribers', 'c/#'], env)
  assert.equal(bad.code, 2, bad.stderr)
  assert.equal(bad.stdout, '', 'no empty table')
  assert.equal(bad.stderr, 'broker-ha admin: topic "c/#" is not a valid MQTT topic name: must be a topic name, without wildcards\n')
  const badFilter = await run(['retained', 'a/#/b', '--json'], env)
  assert.equal(badFilter.code, 2, badFilter.stderr)
  assert.equal(badFilter.stdout, '')
  assert.match(badFilter.stderr, /^broker-ha admin: topic "a\/#\/b" is not a valid MQTT topic filter: .*\n$/)
})

test('a named cluster from the clusters file; kick disconnects the client on the member that has it', async () => {
  mkdirSync(join(home, '.config', 'broker-ha'), { recursive: true })
  writeFileSync(join(home, '.config', 'broker-ha', 'admin.yaml'), `clusters:\n  lab:\n    url: ${a.apiUrl}\n    user: "admin:pw"\n`)
  const victim = await mqtt.connectAsync(b.mqttUrl, { clientId: 'kick-me', protocolVersion: 5, reconnectPeriod: 0 })
  clients.push(victim)
  const closed = new Promise((resolve) => victim.once('close', () => resolve(undefined)))
  let reason: number | undefined
  victim.on('disconnect', (packet) => { reason = packet.reasonCode })
  const kick = await run(['kick', 'kick-me', '--cluster', 'lab', '--json'])
  assert.equal(kick.code, 0, kick.stderr)
  assert.deepEqual(JSON.parse(kick.stdout), { client_id: 'kick-me', stopped: [nameB], failed: {}, unreachable: {} })
  await closed
  assert.equal(reason, 0x98, 'MQTT 5 clients are told why: administrative action')
  const again = await run(['kick', 'kick-me', '--cluster', 'lab'])
  assert.equal(again.code, 1)
  assert.match(again.stdout, /kick-me is not connected to any member that answered/)
  const unknown = await run(['members', '--cluster', 'prod'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /cluster "prod" is not in .*admin\.yaml; known: lab/)
})

test('exit statuses: unreachable URL 1, bad credentials 1 with a clear message, bad usage 2', async () => {
  const host = await freeLoopbackAddress()
  const usageCases = [['members', '--url', 'localhost:8080'], ['subscribers'], ['members', '--nope'], ['members', '--url', a.apiUrl, '--timeout', 'soon']]
  // Independent runs, in parallel to keep the file's wall time short.
  const [unreachable, badCredentials, noCredentials, ...usage] = await Promise.all([
    run(['members', '--url', `http://${host}:8080`, '--timeout', '2000']),
    run(['clients', '--url', a.apiUrl, '--user', 'admin:wrong']),
    run(['members', '--url', a.apiUrl]),
    ...usageCases.map((args) => run(args))
  ]) as [Run, Run, Run, ...Run[]]
  assert.equal(unreachable.code, 1)
  assert.match(unreachable.stderr, new RegExp(`cannot reach http://${host.replace(/\./g, '\\.')}:8080: connection refused`))
  assert.equal(badCredentials.code, 1)
  assert.match(badCredentials.stderr, /credentials refused by .* \(HTTP 401: wrong username or password\): check --user or BROKER_ADMIN_USER/)
  assert.equal(badCredentials.stdout, '')
  assert.equal(noCredentials.code, 1)
  assert.match(noCredentials.stderr, /HTTP 401/)
  usage.forEach((r, i) => assert.equal(r.code, 2, `${usageCases[i]!.join(' ')}: ${r.stderr}`))
  const noTerminal = await run(['--url', a.apiUrl])
  assert.equal(noTerminal.code, 2)
  assert.match(noTerminal.stderr, /needs a terminal; in scripts use a subcommand/)
})

test('a partial answer (one member refuses) prints what came and exits 3', async () => {
  // A third member whose API stops answering (members no longer forward the
  // caller's credentials, so other users on it would not make it refuse).
  const host = await freeLoopbackAddress()
  const c = await startNode({
    api: { user: { other: 'x' } },
    cluster: { config: { probe_interval: 200, probe_timeout: 100, gossip_interval: 50, push_pull_interval: 1000, secret_key: CLUSTER_KEY } },
    discovery: { seeds: [`${a.host}:7946`], formation_wait_min: 0, formation_wait_max: 200 }
  }, host)
  try {
    const api = new ApiClient({ baseUrl: a.apiUrl, username: 'admin', password: 'pw' })
    await waitFor(async () => (await api.members()).filter((m) => m.State === 0).length === 3, { timeout: 15_000, message: 'three alive members' })
    await api.close()
    await c.node.api.stop()
    const r = await run(['clients', '--url', a.apiUrl, '--user', 'admin:pw'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stdout, /sensor-1/)
    assert.match(r.stderr, new RegExp(`no answer from ${c.config.cluster.name}: network`))
  } finally {
    await c.stop()
  }
})

test('the cluster source moves to another member when its entry node stops answering', async () => {
  const host = await freeLoopbackAddress()
  const c = await startNode({
    api: { user: { admin: 'pw' } },
    cluster: { config: { probe_interval: 200, probe_timeout: 100, gossip_interval: 50, push_pull_interval: 1000, secret_key: CLUSTER_KEY } },
    discovery: { seeds: [`${a.host}:7946`], formation_wait_min: 0, formation_wait_max: 200 }
  }, host)
  const source = new ApiClusterSource({ url: c.apiUrl, username: 'admin', password: 'pw' }, { timeoutMs: 2000 })
  try {
    await waitFor(async () => (await source.members()).filter((m) => m.State === 0).length === 3, { timeout: 15_000, message: 'three alive members' })
    await c.stop()
    const members = await source.members()
    assert.notEqual(source.currentUrl, c.apiUrl)
    assert.ok([a.apiUrl, b.apiUrl].includes(source.currentUrl))
    assert.ok(members.length >= 2)
    const answer = await source.clients()
    assert.ok(nameA in answer && nameB in answer)
  } finally {
    await source.close()
    await c.stop().catch(() => {})
  }
})
