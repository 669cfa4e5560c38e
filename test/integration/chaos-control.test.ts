// The chaos control channel: off unless a node is started for chaos, and
// then only on loopback.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.js'
import { BrokerNode } from '../../src/server/node.js'
import { ApiClient, ApiClientError } from '../../src/client/index.js'
import { BIN, nodeConfigObject, type ConfigOverrides } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'

const stops: Array<() => Promise<void>> = []
const nodes = new Map<string, BrokerNode>()
after(async () => { for (const s of stops) await s() })

async function node (chaosControl: boolean, overrides: ConfigOverrides = {}, host?: string): Promise<ApiClient> {
  host ??= await freeLoopbackAddress()
  const { config } = loadConfig({ object: nodeConfigObject(host, overrides) })
  const n = new BrokerNode(config, pino({ level: 'silent' }), { chaosControl })
  nodes.set(host, n)
  await n.start()
  const api = new ApiClient({ baseUrl: `http://${host}:${config.api.port}` })
  stops.push(async () => { await api.close(); await n.stop() })
  return api
}

test('a chaos node takes a blocked-peer list on /chaos/faults and reports it', async () => {
  const api = await node(true)
  const set = await api.request<{ blocked: string[], links: string[] }>('POST', '/chaos/faults', { blocked: ['127.9.9.9', '127.9.9.8:7946', '127.9.9.9'], links: ['127.9.9.7'] })
  assert.deepEqual(set.blocked, ['127.9.9.9', '127.9.9.8:7946'])
  assert.deepEqual(set.links, ['127.9.9.7'])
  assert.deepEqual((await api.request<{ blocked: string[] }>('GET', '/chaos/faults')).blocked, ['127.9.9.9', '127.9.9.8:7946'])
  assert.deepEqual((await api.request<{ blocked: string[] }>('POST', '/chaos/faults', { blocked: [] })).blocked, [])
  await assert.rejects(api.request('POST', '/chaos/faults', { blocked: 'all' }), (err: unknown) => err instanceof ApiClientError && err.status === 400)
  const doc = await api.openapi()
  assert.equal(Object.keys(doc.paths).some((p) => p.startsWith('/chaos')), false, 'hidden from the OpenAPI document')
})

test('a link cut drops the data-plane link but not the member; a partition drops both; heal restores', async () => {
  const [hostA, hostB] = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  const fast: ConfigOverrides = {
    cluster: { config: { probe_interval: 400, probe_timeout: 200, gossip_interval: 50 } },
    discovery: { seeds: [`${hostA}:7946`, `${hostB}:7946`], formation_wait_min: 0, formation_wait_max: 200 }
  }
  const [apiA] = await Promise.all([node(true, fast, hostA), node(true, fast, hostB)])
  const a = nodes.get(hostA)!
  const nameB = `node-${hostB}`
  const linkUp = (): boolean => a.dataPlane.link(nameB)?.state === 'up'
  await waitFor(linkUp, { timeout: 10_000, message: 'data-plane link A-B up' })

  // Probes this fast can time out on a loaded machine and make B suspect for a
  // moment; what the cut must not do is make the membership lose B.
  let leftDuringCut = false
  const onLeave = (m: { name: string }): void => { if (m.name === nameB) leftDuringCut = true }
  a.membership.on('leave', onLeave)
  await apiA.request('POST', '/chaos/faults', { blocked: [], links: [hostB] })
  await waitFor(() => !linkUp(), { timeout: 5000, message: 'link cut' })
  const stateB = (): string | undefined => a.membership.members().find((m) => m.name === nameB)?.state
  await waitFor(() => stateB() === 'alive', { timeout: 5000, message: 'membership does not notice a link cut' })
  assert.equal(linkUp(), false, 'the link stays cut while the member is alive')
  a.membership.off('leave', onLeave)
  assert.equal(leftDuringCut, false, 'the member never left during the link cut')
  await apiA.request('POST', '/chaos/faults', { blocked: [] })
  await waitFor(linkUp, { timeout: 15_000, message: 'link back after heal' })

  await apiA.request('POST', '/chaos/faults', { blocked: [hostB] })
  await waitFor(() => !linkUp(), { timeout: 5000, message: 'link down in a partition' })
  await apiA.request('POST', '/chaos/faults', { blocked: [] })
  await waitFor(linkUp, { timeout: 15_000, message: 'link back after the partition heals' })
})

test('a normal node has no /chaos/faults route', async () => {
  const api = await node(false)
  await assert.rejects(api.request('POST', '/chaos/faults', { blocked: [] }), (err: unknown) => err instanceof ApiClientError && err.status === 404)
})

test('serve --chaos-control refuses a non-loopback bind before opening any port', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-control-'))
  try {
    const configPath = join(dir, 'config.yaml')
    // Ports no test uses: the node must refuse before it would listen anyway.
    writeFileSync(configPath, stringify({ api: { bind: '0.0.0.0', port: 1 }, mqtt: { bind: '127.0.0.1', port: 2 }, cluster: { bind: '127.0.0.1', port: 3 } }))
    const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath, '--chaos-control'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } })
    let err = ''
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const [code] = await once(child, 'exit')
    assert.equal(code, 2)
    assert.match(err, /--chaos-control needs loopback binds, not api\.bind=0\.0\.0\.0/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
