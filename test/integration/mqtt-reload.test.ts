// Live reload on a running `broker-ha serve` process: SIGHUP and a changed
// file put new mqtt.auth / mqtt.acl in force for connected clients, a bad
// config is refused with the key named while the old stays, and certificates
// rotate (a Kubernetes-style symlink swap) while clients stay connected.
// Certificate problems at start exit 2 naming the file and the problem.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync, mkdirSync, symlinkSync, renameSync, copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { stringify, parse } from 'yaml'
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import { startProcessNode, nodeConfigObject, BIN, type ProcessNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { uniqueId } from '../helpers/mqtt-clients.js'
import { TestCertificates } from '../helpers/certificates.js'

const MQTTS = 8883

describe('reload: SIGHUP and file changes on a running node', () => {
  let certs: TestCertificates
  let node: ProcessNode
  let host: string
  let secretDir: string
  const clients: MqttClient[] = []

  before(async () => {
    certs = new TestCertificates()
    host = await freeLoopbackAddress()
    // A Kubernetes Secret volume: files are links through ..data, a link to a timestamped directory.
    secretDir = join(certs.dir, 'secret')
    mkdirSync(join(secretDir, '..v1'), { recursive: true })
    const first = certs.server(host, 'first')
    copyFileSync(first.cert, join(secretDir, '..v1', 'tls.crt'))
    copyFileSync(first.key, join(secretDir, '..v1', 'tls.key'))
    symlinkSync('..v1', join(secretDir, '..data'))
    symlinkSync('..data/tls.crt', join(secretDir, 'tls.crt'))
    symlinkSync('..data/tls.key', join(secretDir, 'tls.key'))
    node = await startProcessNode({
      mqtt: {
        listeners: [{ type: 'mqtts', port: MQTTS, cert: join(secretDir, 'tls.crt'), key: join(secretDir, 'tls.key') }] as never,
        auth: [{ username: 'reader', password: 'r', allow: true }, { username: 'leaver', password: 'l', allow: true }, { username: 'pub', password: 'p', allow: true }],
        acl: [{ username: 'reader', filters: { 't/#': 3 } }]
      }
    }, { host })
    await waitFor(() => node.output().includes('broker-ha node started'), { message: 'node started' })
  })

  after(async () => {
    for (const c of clients) c.end(true)
    await node?.stop()
    certs?.cleanup()
  })

  const open = async (options: IClientOptions): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(node.mqttUrl, { clientId: uniqueId(), reconnectPeriod: 0, protocolVersion: 5, ...options })
    clients.push(c)
    return c
  }
  interface FileConfig { mqtt: { acl: unknown[], auth: Array<{ username: string }> } }
  const rewrite = (change: (config: FileConfig) => void): void => {
    const config = parse(readFileSync(node.configPath, 'utf8')) as FileConfig
    change(config)
    writeFileSync(node.configPath, stringify(config))
  }
  const serverName = async (): Promise<string> => {
    const socket = tlsConnect({ host, port: MQTTS, ca: readFileSync(certs.ca.cert), servername: 'localhost' })
    await once(socket, 'secureConnect')
    const cn = socket.getPeerCertificate().subject.CN as string
    socket.destroy()
    return cn
  }
  const configVersion = async (): Promise<string> => {
    const text = await (await fetch(`${node.apiUrl}/metrics`)).text()
    return /broker_config_info\{version="([0-9a-f]+)"/.exec(text)![1]!
  }

  test('a SIGHUP ACL change applies to a connected client; a removed user is disconnected with 0x87', async () => {
    const reader = await open({ username: 'reader', password: 'r' })
    const leaver = await open({ username: 'leaver', password: 'l' })
    const pub = await open({ username: 'pub', password: 'p' })
    const got: string[] = []
    reader.on('message', (topic) => got.push(topic))
    await reader.subscribeAsync('t/#', { qos: 1 })
    await pub.publishAsync('t/secret/1', 'x', { qos: 1 })
    await waitFor(() => got.includes('t/secret/1'), { message: 'first delivery' })
    const before = await configVersion()
    let reason: number | undefined
    leaver.on('disconnect', (packet) => { reason = packet.reasonCode })
    rewrite((c) => {
      c.mqtt.acl = [{ username: 'reader', filters: { 't/#': 3, 't/secret/#': 0 } }]
      c.mqtt.auth = c.mqtt.auth.filter((r) => r.username !== 'leaver')
    })
    node.child.kill('SIGHUP')
    await waitFor(() => node.output().includes('config reloaded'), { message: 'reload logged' })
    await pub.publishAsync('t/secret/2', 'x', { qos: 1 })
    await pub.publishAsync('t/open/2', 'x', { qos: 1 })
    await waitFor(() => got.includes('t/open/2'), { message: 'open delivery' })
    assert.ok(!got.includes('t/secret/2'), `denied topic delivered: ${got.join(', ')}`)
    await waitFor(() => reason !== undefined, { message: 'DISCONNECT to the removed user' })
    assert.equal(reason, 0x87)
    assert.notEqual(await configVersion(), before)
    // Publishing is checked again too: 0x87 on the now denied topic.
    await assert.rejects(reader.publishAsync('t/secret/3', 'x', { qos: 1 }), /Not authorized|135/)
  })

  test('a bad config is refused with the key named; the one in force stays', async () => {
    const before = await configVersion()
    rewrite((c) => { c.mqtt.acl = [{ username: 'reader', filters: { 't/#': 7 } }] })
    node.child.kill('SIGHUP')
    await waitFor(() => node.output().includes('config reload refused'), { message: 'refusal logged' })
    assert.match(node.output(), /mqtt\.acl\[0\]\.filters/)
    assert.equal(await configVersion(), before)
    const pub = await open({ username: 'pub', password: 'p' })
    assert.equal(pub.connected, true)
    // The file is fixed again: a change of the file reloads without a signal.
    rewrite((c) => { c.mqtt.acl = [{ username: 'reader', filters: { 't/#': 1 } }] })
    await waitFor(async () => (await configVersion()) !== before, { message: 'reload on file change' })
  })

  test('certificates rotate by a symlink swap while a client stays connected; a bad file keeps the old one', async () => {
    const ca = readFileSync(certs.ca.cert)
    const stays = await mqtt.connectAsync(`mqtts://${host}:${MQTTS}`, { ca, clientId: uniqueId(), reconnectPeriod: 0, username: 'pub', password: 'p' })
    clients.push(stays)
    assert.equal(await serverName(), 'first')
    // What the kubelet does: a new timestamped directory, then ..data swapped to it atomically.
    const second = certs.server(host, 'second')
    mkdirSync(join(secretDir, '..v2'))
    copyFileSync(second.cert, join(secretDir, '..v2', 'tls.crt'))
    copyFileSync(second.key, join(secretDir, '..v2', 'tls.key'))
    symlinkSync('..v2', join(secretDir, '..data_tmp'))
    renameSync(join(secretDir, '..data_tmp'), join(secretDir, '..data'))
    await waitFor(async () => (await serverName()) === 'second', { message: 'new certificate served' })
    assert.equal(stays.connected, true)
    await stays.publishAsync('t/still', 'here', { qos: 1 })
    // A broken certificate: logged, and the one in use stays.
    writeFileSync(join(secretDir, '..v2', 'tls.crt'), 'not a certificate')
    node.child.kill('SIGHUP')
    await waitFor(() => node.output().includes('TLS certificate reload failed'), { message: 'bad reload logged' })
    assert.match(node.output(), /not a PEM certificate/)
    assert.equal(await serverName(), 'second')
  })
})

describe('certificate problems at start exit 2 naming the file', () => {
  let certs: TestCertificates
  before(() => { certs = new TestCertificates() })
  after(() => certs.cleanup())

  const serve = async (listener: Record<string, string>): Promise<{ code: number | null, output: string }> => {
    const host = await freeLoopbackAddress()
    const path = join(certs.dir, `${uniqueId('config')}.yaml`)
    writeFileSync(path, stringify(nodeConfigObject(host, { mqtt: { listeners: [{ type: 'mqtts', ...listener }] as never } })))
    const child = spawn(process.execPath, [BIN, 'serve', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    const [code] = await once(child, 'exit') as [number | null]
    return { code, output }
  }

  test('expired, key mismatch, not PEM', async () => {
    const expired = certs.issue({ cn: 'old', days: -1 })
    const good = certs.server('127.0.0.1')
    const other = certs.server('127.0.0.1')
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ cert: expired.cert, key: expired.key }, /mqtt\.listeners\[0\]\.cert: .*old.*: certificate expired on/],
      [{ cert: good.cert, key: other.key }, /mqtt\.listeners\[0\]\.key: .*: private key does not match the certificate/],
      [{ cert: good.key, key: good.key }, /mqtt\.listeners\[0\]\.cert: .*: not a PEM certificate/],
      [{ cert: join(certs.dir, 'missing.pem'), key: good.key }, /mqtt\.listeners\[0\]\.cert: .*missing\.pem: cannot read: ENOENT/]
    ]
    for (const [listener, message] of cases) {
      const { code, output } = await serve(listener)
      assert.equal(code, 2, output)
      assert.match(output, message)
    }
  })
})
