// With a cluster key, every TCP link is authenticated and replay-proof
// (issue 14), and what an unauthenticated connection may cost is bounded.
// The attackers: a peer with a wrong key, a recorder that replays a real
// link's bytes (captured by a TCP proxy between two real peer links) and a
// real push/pull request, and connections that never finish their handshake
// or announce huge frames.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect as netConnect, createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { FAST } from '../helpers/cluster.js'
import { collect, connect, endAll, metricValue } from '../helpers/mqtt-clients.js'
import { Keyring } from '../../src/server/cluster/keyring.js'
import { OUR_VERSIONS, encodeStream } from '../../src/server/cluster/membership/codec.js'
import { PeerLink, type DeliveryInfo } from '../../src/server/cluster/dataplane/peer-link.js'
import { LinkAcceptor, LinkListener } from '../../src/server/cluster/dataplane/link-acceptor.js'
import { FrameDecoder, PREAMBLE, encodeRecord, frame } from '../../src/server/cluster/dataplane/frame-codec.js'
import { dialerSession, initFrameBody, newNonce, parseInit } from '../../src/server/cluster/dataplane/link-handshake.js'

const KEY = 'cluster-key-0123456789-abcdefghi'
const running: TestNode[] = []
after(async () => { await Promise.all(running.map(async (n) => await n.stop())) })

let a: TestNode

before(async () => {
  a = await startNode({ cluster: { max_pending_connections: 4, config: { ...FAST, secret_key: KEY } } })
  running.push(a)
})

/** Resolves when the socket closes; rejects after `ms` (what an attacker could hold it for). */
async function closedWithin (socket: Socket, ms: number, what: string): Promise<void> {
  socket.resume()
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    once(socket, 'close'),
    new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms`)), ms) })
  ])
  clearTimeout(timer)
}

test('a peer with a wrong key cannot open a data-plane link: its HELLO does not authenticate', async () => {
  const before = a.node.dataPlane.links.acceptor.refused.auth ?? 0
  const socket = netConnect({ host: a.host, port: 7946 })
  socket.on('error', () => {})
  const wrong = new Keyring(['another-key-0123456789-abcdefghi'])
  const nonce = newNonce()
  const decoder = new FrameDecoder(4096)
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      const session = dialerSession(wrong, nonce, parseInit(f))
      const hello = { proto: 3, name: 'rogue', incarnation: 'x', recv: { incarnation: null, seq: 0 } }
      socket.write(frame(session.seal(encodeRecord({ type: 'hello', hello }))))
    }
  })
  socket.write(Buffer.concat([PREAMBLE, frame(initFrameBody(nonce))]))
  await closedWithin(socket, 3000, 'wrong-key link')
  assert.equal(a.node.dataPlane.links.acceptor.refused.auth, before + 1)
  assert.deepEqual(a.node.dataPlane.peers, [])
})

interface Received { payload: string, info: DeliveryInfo }

test('a recorded encrypted link stream replayed verbatim is refused, and the real link survives', async () => {
  const keys = new Keyring([KEY])
  const host = await freeLoopbackAddress()
  const atB: Received[] = []
  const b: PeerLink = new PeerLink({ localName: 'b', peerName: 'a', keys, onMessage: (p, info) => atB.push({ payload: p.toString(), info }) })
  const acceptor = new LinkAcceptor({ localName: 'b', keys, lookup: (n) => (n === 'a' ? b : undefined) })
  const listener = new LinkListener(acceptor)
  const { port } = await listener.start(host, 0)
  // A raw TCP proxy between a and b that records what a sends.
  const recorded: Buffer[] = []
  const proxySockets: Socket[] = []
  const proxy = createServer((client) => {
    const upstream = netConnect({ host, port })
    proxySockets.push(client, upstream)
    client.on('data', (d: Buffer) => { recorded.push(Buffer.from(d)); upstream.write(d) })
    upstream.on('data', (d: Buffer) => client.write(d))
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  proxy.listen(0, host)
  await once(proxy, 'listening')
  const proxyPort = (proxy.address() as { port: number }).port
  const aLink = new PeerLink({ localName: 'a', peerName: 'b', keys, connect: () => netConnect({ host, port: proxyPort }), onMessage: () => {} })
  try {
    b.start()
    aLink.start()
    await waitFor(() => aLink.state === 'up' && b.state === 'up', { message: 'link up through the proxy' })
    for (let i = 0; i < 5; i++) aLink.send(Buffer.from(`qos0-${i}`), 'unreliable')
    for (let i = 0; i < 5; i++) aLink.send(Buffer.from(`qos1-${i}`), 'reliable')
    await waitFor(() => atB.length === 10, { message: '10 messages through the real link' })
    const connects = b.stats().connects
    const refusedBefore = acceptor.refused.auth ?? 0

    // The replay: everything a sent, on a new connection of the attacker's own.
    const replay = netConnect({ host, port })
    replay.on('error', () => {})
    await once(replay, 'connect')
    replay.write(Buffer.concat(recorded))
    await closedWithin(replay, 3000, 'replayed stream')
    assert.equal(acceptor.refused.auth, refusedBefore + 1)
    assert.equal(atB.length, 10, 'nothing delivered again')
    assert.equal(b.state, 'up')
    assert.equal(b.stats().connects, connects, 'the real connection was not replaced')
    // And the real link still carries messages.
    aLink.send(Buffer.from('after-replay'), 'reliable')
    await waitFor(() => atB.length === 11, { message: 'a message after the replay' })
    assert.equal(atB[10]!.payload, 'after-replay')
  } finally {
    aLink.stop()
    b.stop()
    for (const s of proxySockets) s.destroy()
    proxy.close()
    await listener.stop()
  }
})

/** One push/pull exchange on a raw connection: the answer, or undefined when the node closes without one. */
async function exchange (host: string, request: Buffer): Promise<Buffer | undefined> {
  const socket = netConnect({ host, port: 7946 })
  socket.on('error', () => {})
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  const head = Buffer.alloc(4)
  head.writeUInt32BE(request.length, 0)
  socket.write(Buffer.concat([head, request]))
  await once(socket, 'close')
  const all = Buffer.concat(chunks)
  return all.length === 0 ? undefined : all.subarray(4)
}

test('a push/pull request replayed verbatim is refused: its nonce was seen', async () => {
  const keys = new Keyring([KEY])
  const header = Buffer.alloc(24)
  randomBytes(16).copy(header, 0)
  header.writeDoubleBE(Date.now(), 16)
  const state = encodeStream({
    type: 'push-pull',
    join: false,
    nodes: [{ name: 'someone', addr: '127.0.0.1', port: 1, meta: { api: 8080, mqtt: 1883, version: 'x' }, incarnation: 0, state: 'dead', vsn: OUR_VERSIONS }],
    userState: ''
  })
  const request = keys.seal(Buffer.concat([header, state]))
  const before = await metricValue(a.node.registry, 'broker_cluster_bad_packets_total', { reason: 'replay' })
  assert.notEqual(await exchange(a.host, request), undefined, 'the first request is answered')
  assert.equal(await exchange(a.host, request), undefined, 'the replay is not')
  assert.equal(await metricValue(a.node.registry, 'broker_cluster_bad_packets_total', { reason: 'replay' }), before + 1)
  // A request from outside the replay window is refused as well.
  header.writeDoubleBE(Date.now() - 3600_000, 16)
  randomBytes(16).copy(header, 0)
  assert.equal(await exchange(a.host, keys.seal(Buffer.concat([header, state]))), undefined)
})

test('before authentication: connections are capped, frames are small, and big announcements are cut at once', async () => {
  // max_pending_connections is 4: the fifth and sixth link handshakes in flight are closed at once.
  const pendingBefore = a.node.dataPlane.links.acceptor.refused.pending ?? 0
  const idle: Socket[] = []
  for (let i = 0; i < 6; i++) {
    const s = netConnect({ host: a.host, port: 7946 })
    s.on('error', () => {})
    await once(s, 'connect')
    s.write(PREAMBLE)
    idle.push(s)
  }
  await waitFor(() => (a.node.dataPlane.links.acceptor.refused.pending ?? 0) === pendingBefore + 2, { timeout: 3000, message: 'two over the cap refused' })
  assert.equal(a.node.dataPlane.links.acceptor.pendingCount, 4)
  for (const s of idle) s.destroy()
  await waitFor(() => a.node.dataPlane.links.acceptor.pendingCount === 0, { timeout: 3000, message: 'pending released' })

  // A link frame of 1 MiB before the handshake, and a 16 MiB push/pull request: cut at once, not read.
  const sizeBefore = a.node.dataPlane.links.acceptor.refused.size ?? 0
  const big = Buffer.alloc(4)
  big.writeUInt32BE(1024 * 1024, 0)
  const link = netConnect({ host: a.host, port: 7946 })
  link.on('error', () => {})
  link.write(Buffer.concat([PREAMBLE, big]))
  await closedWithin(link, 1000, 'a 1 MiB frame before the handshake')
  assert.equal(a.node.dataPlane.links.acceptor.refused.size, sizeBefore + 1)
  const badBefore = await metricValue(a.node.registry, 'broker_cluster_bad_packets_total', { reason: 'size' })
  const huge = Buffer.alloc(4)
  huge.writeUInt32BE(16 * 1024 * 1024, 0)
  const pp = netConnect({ host: a.host, port: 7946 })
  pp.on('error', () => {})
  pp.write(Buffer.concat([huge, randomBytes(1024)]))
  await closedWithin(pp, 1000, 'a 16 MiB push/pull request')
  assert.equal(await metricValue(a.node.registry, 'broker_cluster_bad_packets_total', { reason: 'size' }), badBefore + 1)

  // Connections that send nothing, or a push/pull request slowly, are capped too.
  const ppBefore = await metricValue(a.node.registry, 'broker_cluster_refused_total', { kind: 'tcp', reason: 'pending' })
  const slow: Socket[] = []
  const small = Buffer.alloc(4)
  small.writeUInt32BE(1000, 0)
  for (let i = 0; i < 6; i++) {
    const s = netConnect({ host: a.host, port: 7946 })
    s.on('error', () => {})
    await once(s, 'connect')
    if (i % 2 === 0) s.write(Buffer.concat([small, Buffer.alloc(10)]))
    slow.push(s)
  }
  await waitFor(async () => await metricValue(a.node.registry, 'broker_cluster_refused_total', { kind: 'tcp', reason: 'pending' }) === ppBefore + 2,
    { timeout: 3000, message: 'two connections over the cap refused' })
  for (const s of slow) s.destroy()
})

test('key rotation: members halfway through it (old primary + new secondary, and the reverse) link and exchange messages', async () => {
  const [oldKey, newKey] = ['old-key-0123456789-abcdefghijklm', Buffer.alloc(32, 7).toString('base64')]
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  const discovery = { seeds: hosts.map((h) => `${h}:7946`), formation_wait_min: 100, formation_wait_max: 300, resolve_interval: 1000 }
  const [x, y] = await Promise.all([
    startNode({ discovery, cluster: { config: { ...FAST, secret_key: oldKey, secondary_keys: [newKey] } } }, hosts[0]),
    startNode({ discovery, cluster: { config: { ...FAST, secret_key: newKey, secondary_keys: [oldKey] } } }, hosts[1])
  ])
  running.push(x, y)
  const [nx, ny] = [x.config.cluster.name, y.config.cluster.name]
  await waitFor(() => x.node.dataPlane.link(ny)?.state === 'up' && y.node.dataPlane.link(nx)?.state === 'up', { timeout: 10_000, message: 'linked across the rotation' })
  // The dialer's HELLO is under its primary key, which the acceptor opens with a secondary; push/pull both ways likewise.
  const sub = await connect(x.mqttUrl, { clientId: 'rot-sub' })
  const got = collect(sub)
  await sub.subscribeAsync('rotation/#', { qos: 1 })
  await waitFor(() => y.node.dataPlane.routing.peersFor('rotation/x').includes(nx), { timeout: 5000, message: 'route across' })
  const pub = await connect(y.mqttUrl, { clientId: 'rot-pub' })
  try {
    await pub.publishAsync('rotation/x', 'hello', { qos: 1 })
    await waitFor(() => got.length === 1, { timeout: 5000, message: 'delivered across the rotation' })
  } finally {
    await endAll(pub, sub)
  }
})
