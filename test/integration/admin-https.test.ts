// `broker-ha admin` against an API served over HTTPS, as operators expose it:
// behind a proxy or ingress that terminates TLS (here a small node:https
// reverse proxy with a test CA). --ca trusts that CA; without it the
// certificate is refused; --insecure skips the check.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import { request } from 'node:http'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startNode, type TestNode } from '../helpers/node.js'
import { runCli } from '../helpers/run.js'
import { TestCertificates } from '../helpers/certificates.js'

let node: TestNode
let certs: TestCertificates
let proxy: Server
let url: string
const home = mkdtempSync(join(tmpdir(), 'broker-ha-admin-'))

before(async () => {
  certs = new TestCertificates()
  node = await startNode()
  const server = certs.server(node.host)
  proxy = createServer({ cert: readFileSync(server.cert), key: readFileSync(server.key) }, (req, res) => {
    const upstream = request(`${node.apiUrl}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on('error', () => { res.writeHead(502); res.end() })
    req.pipe(upstream)
  })
  proxy.listen(0, node.host)
  await once(proxy, 'listening')
  url = `https://${node.host}:${(proxy.address() as { port: number }).port}`
})

after(async () => {
  proxy?.closeAllConnections()
  proxy?.close()
  await node?.stop()
  certs?.cleanup()
  rmSync(home, { recursive: true, force: true })
})

const admin = (args: string[]): ReturnType<typeof runCli> => runCli(['admin', ...args], { env: { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: join(home, '.config') } })

test('admin reaches an HTTPS API with --ca, is refused without it, and --insecure skips the check', async () => {
  const trusted = await admin(['members', '--url', url, '--ca', certs.ca.cert, '--json'])
  assert.equal(trusted.code, 0, trusted.stderr)
  const members = JSON.parse(trusted.stdout) as Array<{ name: string, state: string }>
  assert.ok(members.some((m) => m.name === node.config.cluster.name && m.state === 'alive'), trusted.stdout)
  const untrusted = await admin(['members', '--url', url, '--json'])
  assert.notEqual(untrusted.code, 0)
  assert.match(untrusted.stderr, /certificate/i)
  const insecure = await admin(['members', '--url', url, '--insecure', '--json'])
  assert.equal(insecure.code, 0, insecure.stderr)
})
