// Without a cluster key (the default), a node admits only the addresses its
// discovery yields (issue 14). The attackers here sit on other loopback
// addresses of the same machine: a rogue broker-ha node whose seeds point at
// the cluster, a hand-written peer that claims a member's name, and a
// spoofed UDP packet asking a node to ping an address of its choice.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect as netConnect, type Socket } from 'node:net'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { FAST } from '../helpers/cluster.js'
import { collect, connect, endAll, metricValue } from '../helpers/mqtt-clients.js'
import { Keyring } from '../../src/server/cluster/keyring.js'
import { encodePacket } from '../../src/server/cluster/membership/codec.js'
import { FrameDecoder, PREAMBLE, decodeRecords, encodeRecord, frame, type LinkRecord } from '../../src/server/cluster/dataplane/frame-codec.js'
import { NO_KEY, dialerSession, initFrameBody, newNonce, parseInit } from '../../src/server/cluster/dataplane/link-handshake.js'

const running: TestNode[] = []
after(async () => { await Promise.all(running.map(async (n) => await n.stop())) })

const liveNames = (n: TestNode): string[] => n.node.membership.members().filter((m) => m.state === 'alive' || m.state === 'suspect').map((m) => m.name).sort()
const nameOf = (n: TestNode): string => n.config.cluster.name

let a: TestNode
let b: TestNode
/** In every member's seed list, but no node runs there: where an attacker on an admitted address sits. */
let spare: string

before(async () => {
  const [ha, hb] = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  spare = await freeLoopbackAddress()
  const discovery = { seeds: [ha, hb, spare].map((h) => `${h}:7946`), formation_wait_min: 100, formation_wait_max: 300, resolve_interval: 1000 }
  ;[a, b] = await Promise.all([ha, hb].map(async (h) => await startNode({ discovery, cluster: { config: FAST } }, h))) as [TestNode, TestNode]
  running.push(a, b)
  await waitFor(() => a.node.dataPlane.link(nameOf(b))?.state === 'up' && b.node.dataPlane.link(nameOf(a))?.state === 'up', { timeout: 10_000, message: 'a and b linked' })
})

test('a rogue node without a key, from an address discovery did not yield, cannot join, link or receive messages', async () => {
  const rogueHost = await freeLoopbackAddress()
  const rogue = await startNode({
    cluster: { config: FAST },
    discovery: { seeds: [`${a.host}:7946`, `${b.host}:7946`], formation_wait_min: 100, formation_wait_max: 200, resolve_interval: 1000 }
  }, rogueHost)
  running.push(rogue)
  const spy = await connect(rogue.mqttUrl, { clientId: 'spy' })
  const seen = collect(spy)
  await spy.subscribeAsync('#', { qos: 1 })
  // It keeps trying (every re-resolution): wait for refused joins, counted by address.
  await waitFor(async () => await metricValue(a.node.registry, 'broker_cluster_refused_total', { kind: 'tcp', reason: 'address' }) >= 2,
    { timeout: 8000, message: 'refused join attempts counted on a' })
  // A data-plane connection from the rogue's address is closed before a byte is answered.
  const socket = netConnect({ host: a.host, port: 7946, localAddress: rogueHost })
  const answered: Buffer[] = []
  socket.on('data', (d: Buffer) => answered.push(d))
  socket.on('error', () => {})
  socket.write(Buffer.concat([PREAMBLE, frame(initFrameBody(newNonce()))]))
  await once(socket, 'close')
  assert.equal(Buffer.concat(answered).length, 0)
  // Its gossip is dropped as well.
  const udpBefore = await metricValue(a.node.registry, 'broker_cluster_refused_total', { kind: 'udp', reason: 'address' })
  const udp = createSocket('udp4')
  await new Promise<void>((resolve) => udp.bind(0, rogueHost, () => resolve()))
  const dead = { type: 'dead' as const, incarnation: 99, node: nameOf(b), from: 'rogue' }
  await new Promise<void>((resolve) => udp.send(new Keyring().seal(encodePacket([dead])), 7946, a.host, () => resolve()))
  udp.close()
  await waitFor(async () => await metricValue(a.node.registry, 'broker_cluster_refused_total', { kind: 'udp', reason: 'address' }) > udpBefore,
    { timeout: 3000, message: 'forged gossip refused' })

  const publisher = await connect(a.mqttUrl, { clientId: 'alarm' })
  try {
    for (let i = 0; i < 5; i++) await publisher.publishAsync('home/alarm/code', `1234-${i}`, { qos: 1 })
    assert.deepEqual(liveNames(a), [nameOf(a), nameOf(b)].sort())
    assert.deepEqual(liveNames(b), [nameOf(a), nameOf(b)].sort())
    assert.deepEqual(liveNames(rogue), [nameOf(rogue)])
    assert.deepEqual(a.node.dataPlane.peers, [nameOf(b)])
    assert.notEqual(a.node.membership.members().find((m) => m.name === nameOf(b))!.state, 'dead', 'b is still a member of a (suspect for a moment at most, under load)')
    assert.equal(seen.filter((m) => m.topic.startsWith('home/')).length, 0)
  } finally {
    await endAll(publisher, spy)
    await rogue.stop()
  }
})

/** A hand-written peer on `from` that runs the handshake (no key) and sends a HELLO named `name`. */
async function helloAs (from: string, to: TestNode, name: string): Promise<{ socket: Socket, records: LinkRecord[] }> {
  const socket = netConnect({ host: to.host, port: 7946, localAddress: from })
  socket.on('error', () => {})
  await once(socket, 'connect')
  const records: LinkRecord[] = []
  const decoder = new FrameDecoder(1024 * 1024)
  const nonce = newNonce()
  let session: ReturnType<typeof dialerSession> | undefined
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (session === undefined) {
        session = dialerSession(NO_KEY, nonce, parseInit(f))
        const hello = { proto: 3, name, incarnation: 'rogue', recv: { incarnation: null, seq: 0 }, process: 'rogue' }
        socket.write(frame(session.seal(encodeRecord({ type: 'hello', hello }))))
      } else {
        records.push(...decodeRecords(session.open(f)))
      }
    }
  })
  socket.write(Buffer.concat([PREAMBLE, frame(initFrameBody(nonce))]))
  return { socket, records }
}

test("a HELLO under an existing member's name from another address is refused; the member's link stays up", async () => {
  // The lower name dials: the impostor speaks as the dialer to the accepting side.
  const [dialer, acceptor] = nameOf(a) < nameOf(b) ? [a, b] : [b, a]
  const link = acceptor.node.dataPlane.link(nameOf(dialer))!
  const connects = link.stats().connects
  const { socket, records } = await helloAs(spare, acceptor, nameOf(dialer))
  await once(socket, 'close')
  assert.deepEqual(records.map((r) => r.type), ['refuse'])
  assert.equal((records[0] as Extract<LinkRecord, { type: 'refuse' }>).refuse.code, 'address')
  assert.equal(acceptor.node.dataPlane.links.acceptor.refused.address, 1)
  assert.equal(link.state, 'up')
  assert.equal(link.stats().connects, connects)
  // Messages still flow on the member's own link.
  const sub = await connect(dialer.mqttUrl, { clientId: 'sub-after-impostor' })
  const got = collect(sub)
  await sub.subscribeAsync('after/impostor', { qos: 1 })
  await waitFor(() => acceptor.node.dataPlane.routing.peersFor('after/impostor').includes(nameOf(dialer)), { timeout: 5000, message: 'route' })
  const pub = await connect(acceptor.mqttUrl, { clientId: 'pub-after-impostor' })
  try {
    await pub.publishAsync('after/impostor', 'still here', { qos: 1 })
    await waitFor(() => got.length === 1, { timeout: 5000, message: 'delivered over the real link' })
  } finally {
    await endAll(pub, sub)
  }
})

test('one spoofed UDP packet does not make a node ping an address of its choice', async () => {
  // A victim port the attacker wants pinged.
  const victim = createSocket('udp4')
  const pinged: Buffer[] = []
  victim.on('message', (m) => pinged.push(m))
  await new Promise<void>((resolve) => victim.bind(0, spare, () => resolve()))
  const victimPort = (victim.address()).port
  const before = await metricValue(a.node.registry, 'broker_cluster_bad_packets_total', { reason: 'target' })
  const udp = createSocket('udp4')
  await new Promise<void>((resolve) => udp.bind(0, spare, () => resolve()))
  const spoofed = { type: 'indirect-ping' as const, seq: 7, target: 'victim', addr: spare, port: victimPort, nack: false, source: { name: nameOf(b), addr: b.host, port: 7946 } }
  await new Promise<void>((resolve) => udp.send(new Keyring().seal(encodePacket([spoofed])), 7946, a.host, () => resolve()))
  udp.close()
  try {
    await waitFor(async () => await metricValue(a.node.registry, 'broker_cluster_bad_packets_total', { reason: 'target' }) > before,
      { timeout: 3000, message: 'the indirect ping ignored and counted' })
    // A relay sends its ping at once; nothing arrived by the time the packet was handled and counted.
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(pinged.length, 0)
  } finally {
    victim.close()
  }
})
