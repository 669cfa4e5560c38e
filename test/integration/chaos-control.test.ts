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
import { BIN, nodeConfigObject } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'

const stops: Array<() => Promise<void>> = []
after(async () => { for (const s of stops) await s() })

async function node (chaosControl: boolean): Promise<ApiClient> {
  const host = await freeLoopbackAddress()
  const { config } = loadConfig({ object: nodeConfigObject(host) })
  const n = new BrokerNode(config, pino({ level: 'silent' }), { chaosControl })
  await n.start()
  const api = new ApiClient({ baseUrl: `http://${host}:${config.api.port}` })
  stops.push(async () => { await api.close(); await n.stop() })
  return api
}

test('a chaos node takes a blocked-peer list on /chaos/faults and reports it', async () => {
  const api = await node(true)
  const set = await api.request<{ blocked: string[], peer_links: string }>('POST', '/chaos/faults', { blocked: ['127.9.9.9', '127.9.9.8:7946', '127.9.9.9'] })
  assert.deepEqual(set.blocked, ['127.9.9.9', '127.9.9.8:7946'])
  assert.equal(set.peer_links, 'not-integrated')
  assert.deepEqual((await api.request<{ blocked: string[] }>('GET', '/chaos/faults')).blocked, ['127.9.9.9', '127.9.9.8:7946'])
  assert.deepEqual((await api.request<{ blocked: string[] }>('POST', '/chaos/faults', { blocked: [] })).blocked, [])
  await assert.rejects(api.request('POST', '/chaos/faults', { blocked: 'all' }), (err: unknown) => err instanceof ApiClientError && err.status === 400)
  const doc = await api.openapi()
  assert.equal(Object.keys(doc.paths).some((p) => p.startsWith('/chaos')), false, 'hidden from the OpenAPI document')
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
