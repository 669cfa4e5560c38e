// Every way a client reaches a node, with real clients: mqtt.js over mqtts,
// ws and wss; raw WebSocket frames; client certificates (identity in the
// ACL, expired and unknown ones refused); mosquitto_pub/mosquitto_sub with
// --cafile and --cert/--key; PROXY protocol v1 and v2 giving the real
// address to `remote` rules and /api/mqtt/clients.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { WebSocket, createWebSocketStream } from 'ws'
import mqtt, { MqttClient, type IClientOptions } from 'mqtt'
import { Peer, V1ProxyProtocol, V2ProxyProtocol, INETProtocol, Command, TransportProtocol, IPv6ProxyAddress, IPv6Address } from 'proxy-protocol-js'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { uniqueId } from '../helpers/mqtt-clients.js'
import { TestCertificates, type Issued } from '../helpers/certificates.js'

const run = promisify(execFile)
const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate: (packet: object, opts?: { protocolVersion: number }) => Buffer }

// Ports of the listeners below; each node has its own loopback address.
const PORTS = { mqtts: 8883, ws: 8083, wss: 8084, mtls: 8885, proxied: 1885, proxiedTls: 8886, proxiedWs: 8087 }
const REAL_V4 = '10.9.8.7'
const REAL_V6 = '2001:db8::7'

describe('listeners: mqtts, ws, wss, mutual TLS, PROXY protocol', () => {
  let certs: TestCertificates
  let server: Issued
  let node: TestNode
  let host: string
  const clients: MqttClient[] = []

  before(async () => {
    certs = new TestCertificates()
    host = await freeLoopbackAddress()
    server = certs.server(host)
    const tls = { cert: server.cert, key: server.key, ca: certs.ca.cert }
    node = await startNode({
      mqtt: {
        listeners: [
          { type: 'mqtts', port: PORTS.mqtts, ...tls, client_auth: 'optional', username_must_match: true },
          { type: 'ws', port: PORTS.ws },
          { type: 'wss', port: PORTS.wss, ...tls },
          { type: 'mqtts', port: PORTS.mtls, ...tls, client_auth: 'require' },
          { type: 'mqtt', port: PORTS.proxied, proxy_protocol: true },
          { type: 'mqtts', port: PORTS.proxiedTls, ...tls, proxy_protocol: true },
          { type: 'ws', port: PORTS.proxiedWs, proxy_protocol: true }
        ] as never,
        auth: [
          { username: 'device-1', allow: true },
          { username: 'user', password: 'pw', allow: true },
          { remote: REAL_V4, allow: true },
          { remote: REAL_V6, allow: true }
        ],
        acl: [
          { username: 'device-1', filters: { 'devices/device-1/#': 3, 'devices/#': 0 } },
          { remote: REAL_V4, filters: { 'proxied/#': 3, 'elsewhere/#': 0 } }
        ]
      }
    }, host)
  })

  after(async () => {
    for (const c of clients) c.end(true)
    await node?.stop()
    certs?.cleanup()
  })

  // Rejects on an error or a close before CONNACK: a refused TLS 1.3 client certificate shows only as a close.
  const open = async (url: string, options: IClientOptions = {}): Promise<MqttClient> => {
    const c = mqtt.connect(url, { clientId: uniqueId(), reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, ...options })
    clients.push(c)
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve())
      c.once('error', reject)
      c.once('close', () => reject(new Error('closed before CONNACK')))
    })
    return c
  }
  const ca = (): Buffer => readFileSync(certs.ca.cert)
  const roundTrip = async (sub: MqttClient, pub: MqttClient, topic: string): Promise<void> => {
    await sub.subscribeAsync(topic, { qos: 1 })
    const got = new Promise<[string, Buffer]>((resolve) => sub.once('message', (t, p) => resolve([t, p])))
    await pub.publishAsync(topic, 'hello', { qos: 1 })
    const [t, payload] = await got
    assert.equal(t, topic)
    assert.equal(payload.toString(), 'hello')
  }

  test('mqtt.js over mqtts (ALPN mqtt), ws and wss reach each other and plain TCP', async () => {
    const user = { username: 'user', password: 'pw' }
    const tcp = await open(`mqtt://${host}:1883`, user)
    const tls = await open(`mqtts://${host}:${PORTS.mqtts}`, { ...user, ca: ca(), ALPNProtocols: ['mqtt'] })
    assert.equal((tls.stream as unknown as { alpnProtocol: string }).alpnProtocol, 'mqtt')
    assert.equal((tls.stream as unknown as { getProtocol: () => string }).getProtocol().startsWith('TLSv1.'), true)
    const ws = await open(`ws://${host}:${PORTS.ws}/mqtt`, user)
    const wss = await open(`wss://${host}:${PORTS.wss}/mqtt`, { ...user, ca: ca() })
    await roundTrip(ws, tls, 'x/ws-from-tls')
    await roundTrip(wss, tcp, 'x/wss-from-tcp')
    await roundTrip(tls, wss, 'x/tls-from-wss')
    await roundTrip(tcp, ws, 'x/tcp-from-ws')
  })

  test('TLS 1.1 is refused', async () => {
    const { connect } = await import('node:tls')
    const socket = connect({ host, port: PORTS.mqtts, ca: ca(), maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })
    const [err] = await once(socket, 'error') as [Error]
    assert.match(err.message, /version|protocol/i)
  })

  test('WebSocket: one packet split over frames and several packets in one frame; text frames close', async () => {
    const ws = new WebSocket(`ws://${host}:${PORTS.ws}/mqtt`, ['mqtt'])
    await once(ws, 'open')
    assert.equal(ws.protocol, 'mqtt')
    const received: Buffer[] = []
    ws.on('message', (data: Buffer) => received.push(data))
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: uniqueId(), keepalive: 30, username: 'user', password: Buffer.from('pw') })
    ws.send(connect.subarray(0, 5))
    ws.send(connect.subarray(5))
    await waitFor(() => Buffer.concat(received).includes(Buffer.from([0x20, 0x02, 0x00, 0x00])), { message: 'CONNACK accepted' })
    const subscribe = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'frames/t', qos: 0 }] })
    const publish = mqttPacket.generate({ cmd: 'publish', topic: 'frames/t', payload: Buffer.from('two-in-one'), qos: 0, retain: false, dup: false })
    ws.send(Buffer.concat([subscribe, publish]))
    await waitFor(() => Buffer.concat(received).includes(Buffer.from('two-in-one')), { message: 'own publish back' })
    ws.send('text is not MQTT')
    const [code] = await once(ws, 'close') as [number]
    assert.equal(code, 1003)
  })

  test('WebSocket: a wrong path gets 404 and no upgrade', async () => {
    const ws = new WebSocket(`ws://${host}:${PORTS.ws}/elsewhere`, ['mqtt'])
    const [err] = await once(ws, 'error') as [Error]
    assert.match(err.message, /Unexpected server response: 404/)
  })

  test("a client certificate's CN is the user name for mqtt.auth and mqtt.acl", async () => {
    const device = certs.client('device-1')
    const c = await open(`mqtts://${host}:${PORTS.mtls}`, { ca: ca(), cert: readFileSync(device.cert), key: readFileSync(device.key) })
    const own = await c.subscribeAsync('devices/device-1/#', { qos: 1 })
    assert.equal(own[0]!.qos, 1)
    await assert.rejects(c.subscribeAsync('devices/device-2/#', { qos: 1 }), /Not authorized/)
    const clientsList = await (await fetch(`${node.apiUrl}/api/mqtt/clients`)).json() as Array<{ ID: string, Username: string }>
    assert.ok(clientsList.some((x) => x.ID === c.options.clientId && x.Username === 'device-1'), JSON.stringify(clientsList))
  })

  test('with username_must_match, a CONNECT naming another user is refused', async () => {
    const device = certs.client('device-1')
    await assert.rejects(open(`mqtts://${host}:${PORTS.mqtts}`, { ca: ca(), cert: readFileSync(device.cert), key: readFileSync(device.key), username: 'user', password: 'pw' }), /Not authorized|0x87|135/i)
    // The matching name is fine.
    const ok = await open(`mqtts://${host}:${PORTS.mqtts}`, { ca: ca(), cert: readFileSync(device.cert), key: readFileSync(device.key), username: 'device-1' })
    assert.equal(ok.connected, true)
  })

  test('expired, unknown and missing client certificates are refused where one is required', async () => {
    const expired = certs.client('device-1', { days: -1 })
    const stranger = certs.client('device-1', { ca: certs.authority('other-ca') })
    for (const [what, cert] of [['expired', expired], ['unknown CA', stranger], ['none', undefined]] as const) {
      const tlsOptions = cert === undefined ? {} : { cert: readFileSync(cert.cert), key: readFileSync(cert.key) }
      await assert.rejects(open(`mqtts://${host}:${PORTS.mtls}`, { ca: ca(), ...tlsOptions }), what)
    }
    // On the optional listener a bad certificate is refused too, no certificate is not.
    await assert.rejects(open(`mqtts://${host}:${PORTS.mqtts}`, { ca: ca(), cert: readFileSync(expired.cert), key: readFileSync(expired.key) }))
    const text = await (await fetch(`${node.apiUrl}/metrics`)).text()
    assert.match(text, /broker_mqtt_listener_refused_total\{listener="mqtts [^"]+:8885",reason="client_certificate"\} [1-9]/)
  })

  test('mosquitto_pub and mosquitto_sub with --cafile, and with --cert/--key', { skip: !hasMosquittoClients() }, async () => {
    const device = certs.client('device-1')
    const subArgs = ['-h', host, '-p', String(PORTS.mtls), '--cafile', certs.ca.cert, '--cert', device.cert, '--key', device.key, '-t', 'devices/device-1/m', '-C', '1', '-q', '1', '-i', uniqueId('msub')]
    const sub = spawn('mosquitto_sub', subArgs, { stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = once(sub, 'exit')
    let out = ''
    let errors = ''
    sub.stdout.on('data', (d: Buffer) => { out += d.toString() })
    sub.stderr.on('data', (d: Buffer) => { errors += d.toString() })
    await waitFor(async () => {
      const list = await (await fetch(`${node.apiUrl}/api/mqtt/clients`)).json() as Array<{ Subscriptions: object, ID: string, Username: string }>
      return list.some((c) => c.ID.startsWith('msub') && c.Username === 'device-1' && Object.keys(c.Subscriptions).length > 0)
    }, { message: 'mosquitto_sub subscribed' }).catch((err: Error) => {
      sub.kill()
      throw new Error(`${err.message}; mosquitto_sub said: ${errors}`)
    })
    // --cafile only, a user name and password: the same message reaches the certificate holder.
    await run('mosquitto_pub', ['-h', host, '-p', String(PORTS.mqtts), '--cafile', certs.ca.cert, '-u', 'device-1', '-t', 'devices/device-1/m', '-m', 'from-mosquitto', '-q', '1'])
      .catch(async () => {
        // device-1 has no password rule; publish with the certificate instead.
        await run('mosquitto_pub', ['-h', host, '-p', String(PORTS.mtls), '--cafile', certs.ca.cert, '--cert', device.cert, '--key', device.key, '-t', 'devices/device-1/m', '-m', 'from-mosquitto', '-q', '1'])
      })
    const [code] = await exited as [number]
    assert.equal(code, 0)
    assert.equal(out.trim(), 'from-mosquitto')
    // --cafile alone against the server certificate, with a password user.
    const pub = await run('mosquitto_pub', ['-h', host, '-p', String(PORTS.mqtts), '--cafile', certs.ca.cert, '-u', 'user', '-P', 'pw', '-t', 'x/y', '-m', 'ok', '-d'])
    assert.match(pub.stdout, /CONNACK/)
  })

  const viaProxy = async (port: number, header: Buffer | string, options: IClientOptions): Promise<MqttClient> => {
    const socket = createConnection({ host, port })
    await once(socket, 'connect')
    socket.write(header)
    const c = new MqttClient(() => socket, { clientId: uniqueId(), reconnectPeriod: 0, protocolVersion: 5, ...options })
    clients.push(c)
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve())
      c.once('error', reject)
      c.once('close', () => reject(new Error('closed')))
    })
    return c
  }

  test('PROXY v1: the real address reaches `remote` rules in auth and ACL, and /api/mqtt/clients', async () => {
    const header = new V1ProxyProtocol(INETProtocol.TCP4, new Peer(REAL_V4, 40001), new Peer(host, PORTS.proxied)).build()
    const c = await viaProxy(PORTS.proxied, header, {})
    const granted = await c.subscribeAsync('proxied/#')
    assert.equal(granted[0]!.qos, 0)
    await assert.rejects(c.subscribeAsync('elsewhere/#'), /Not authorized/)
    const list = await (await fetch(`${node.apiUrl}/api/mqtt/clients`)).json() as Array<{ ID: string, Remote?: string }>
    assert.equal(list.find((x) => x.ID === c.options.clientId)?.Remote, `${REAL_V4}:40001`)
  })

  test('PROXY v2 (IPv6): the real address admits the client; without it the same client is refused', async () => {
    const src = IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7])
    const dst = IPv6Address.createFrom([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    const header = Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, new IPv6ProxyAddress(src, 40002, dst, PORTS.proxied)).build())
    const c = await viaProxy(PORTS.proxied, header, {})
    const list = await (await fetch(`${node.apiUrl}/api/mqtt/clients`)).json() as Array<{ ID: string, Remote?: string }>
    assert.equal(list.find((x) => x.ID === c.options.clientId)?.Remote, `[${REAL_V6}]:40002`)
    await assert.rejects(open(`mqtt://${host}:1883`), /Not authorized|135/i)
  })

  test('PROXY header before TLS (mqtts with proxy_protocol)', async () => {
    const { connect } = await import('node:tls')
    const raw = createConnection({ host, port: PORTS.proxiedTls })
    await once(raw, 'connect')
    raw.write(new V1ProxyProtocol(INETProtocol.TCP4, new Peer(REAL_V4, 40003), new Peer(host, PORTS.proxiedTls)).build())
    const tls = connect({ socket: raw, ca: ca(), servername: 'localhost' })
    await once(tls, 'secureConnect')
    const c = new MqttClient(() => tls, { clientId: uniqueId(), reconnectPeriod: 0, protocolVersion: 5 })
    clients.push(c)
    await new Promise((resolve) => c.once('connect', resolve))
    const list = await (await fetch(`${node.apiUrl}/api/mqtt/clients`)).json() as Array<{ ID: string, Remote?: string }>
    assert.equal(list.find((x) => x.ID === c.options.clientId)?.Remote, `${REAL_V4}:40003`)
  })

  test('PROXY header before a WebSocket upgrade (ws with proxy_protocol)', async () => {
    const raw = createConnection({ host, port: PORTS.proxiedWs })
    await once(raw, 'connect')
    // Header and upgrade request in one segment, as a balancer may send them.
    raw.cork()
    raw.write(new V1ProxyProtocol(INETProtocol.TCP4, new Peer(REAL_V4, 40004), new Peer(host, PORTS.proxiedWs)).build())
    const ws = new WebSocket(`ws://${host}:${PORTS.proxiedWs}/mqtt`, ['mqtt'], { createConnection: () => raw } as never)
    setTimeout(() => raw.uncork(), 50)
    await once(ws, 'open')
    const stream = createWebSocketStream(ws)
    const c = new MqttClient(() => stream as never, { clientId: uniqueId(), reconnectPeriod: 0, protocolVersion: 5 })
    clients.push(c)
    await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject) })
    const list = await (await fetch(`${node.apiUrl}/api/mqtt/clients`)).json() as Array<{ ID: string, Remote?: string }>
    assert.equal(list.find((x) => x.ID === c.options.clientId)?.Remote, `${REAL_V4}:40004`)
  })

  test('a connection without a valid PROXY header is closed and counted', async () => {
    const socket = createConnection({ host, port: PORTS.proxied })
    await once(socket, 'connect')
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'no-header', keepalive: 30 }))
    await once(socket, 'close')
    const text = await (await fetch(`${node.apiUrl}/metrics`)).text()
    assert.match(text, /broker_mqtt_listener_refused_total\{listener="mqtt [^"]+:1885",reason="proxy_header"\} [1-9]/)
  })
})

function hasMosquittoClients (): boolean {
  try {
    require('node:child_process').execFileSync('mosquitto_pub', ['--help'], { stdio: 'ignore' })
    return true
  } catch (err) {
    // mosquitto_pub --help exits 1 after printing its usage.
    return (err as { status?: number }).status === 1
  }
}
