// Peer links over real loopback TCP (127.0.0.1, ephemeral ports, so parallel
// test files never collide).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { setImmediate as yieldLoop, setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import { PeerLink, type DeliveryInfo, type PeerLinkOptions } from '../../../../src/server/cluster/dataplane/peer-link.js'
import { LinkAcceptor, LinkListener } from '../../../../src/server/cluster/dataplane/link-acceptor.js'
import {
  FrameDecoder, PREAMBLE, decodeRecords, encodeRecord, frame,
  type FrameCipher, type LinkRecord
} from '../../../../src/server/cluster/dataplane/frame-codec.js'
import { NO_KEY, dialerSession, initFrameBody, newNonce, parseInit, type LinkKeys } from '../../../../src/server/cluster/dataplane/link-handshake.js'
import { Keyring } from '../../../../src/server/cluster/keyring.js'
import { waitFor } from '../../../helpers/wait.js'

const HOST = '127.0.0.1'

interface Received { payload: Buffer, reliable: boolean, info: DeliveryInfo }

interface Side {
  link: PeerLink
  received: Received[]
}

interface Pair {
  a: Side // dials (lower name)
  b: Side // accepts
  acceptor: LinkAcceptor
  port: number
  close: () => Promise<void>
}

type LinkTuning = Partial<Omit<PeerLinkOptions, 'localName' | 'peerName' | 'keys' | 'connect' | 'onMessage'>>

async function startAcceptorSide (name: string, peer: string, keys: LinkKeys, tuning: LinkTuning = {}): Promise<{ side: Side, acceptor: LinkAcceptor, listener: LinkListener, port: number }> {
  const received: Received[] = []
  const link = new PeerLink({ localName: name, peerName: peer, keys, onMessage: (payload, info) => received.push({ payload: Buffer.from(payload), reliable: info.reliable, info }), ...tuning })
  const acceptor = new LinkAcceptor({ localName: name, keys, lookup: (n) => (n === peer ? link : undefined) })
  const listener = new LinkListener(acceptor)
  const { port } = await listener.start(HOST, 0)
  link.start()
  return { side: { link, received }, acceptor, listener, port }
}

function startDialerSide (name: string, peer: string, keys: LinkKeys, port: number, tuning: LinkTuning = {}): Side {
  const received: Received[] = []
  const link = new PeerLink({
    localName: name,
    peerName: peer,
    keys,
    connect: () => connect({ host: HOST, port }),
    onMessage: (payload, info) => received.push({ payload: Buffer.from(payload), reliable: info.reliable, info }),
    minBackoffMs: 10,
    maxBackoffMs: 100,
    ...tuning
  })
  link.start()
  return { link, received }
}

async function startPair (options: { cipherA?: LinkKeys, cipherB?: LinkKeys, tuningA?: LinkTuning, tuningB?: LinkTuning, waitUp?: boolean } = {}): Promise<Pair> {
  const { side: b, acceptor, listener, port } = await startAcceptorSide('b', 'a', options.cipherB ?? NO_KEY, options.tuningB)
  const a = startDialerSide('a', 'b', options.cipherA ?? NO_KEY, port, options.tuningA)
  const pair = {
    a,
    b,
    acceptor,
    port,
    close: async () => {
      a.link.stop()
      b.link.stop()
      await listener.stop()
    }
  }
  if (options.waitUp !== false) await waitFor(() => a.link.state === 'up' && b.link.state === 'up', { message: 'link up' })
  return pair
}

const seqPayload = (i: number, size = 8): Buffer => {
  const b = Buffer.alloc(Math.max(4, size))
  b.writeUInt32BE(i, 0)
  return b
}
const indices = (r: Received[]): number[] => r.map((m) => m.payload.readUInt32BE(0))
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

/** A hand-driven peer named 'a' speaking the wire format directly, for misbehaviour the real link never shows. */
async function rawPeer (port: number, keys: LinkKeys = NO_KEY): Promise<{ socket: Socket, records: LinkRecord[], send: (...r: LinkRecord[]) => void }> {
  const socket = connect({ host: HOST, port })
  await once(socket, 'connect')
  const records: LinkRecord[] = []
  const decoder = new FrameDecoder(64 * 1024 * 1024)
  const nonce = newNonce()
  let session: FrameCipher | undefined
  const send = (...r: LinkRecord[]): void => { socket.write(frame(session!.seal(Buffer.concat(r.map(encodeRecord))))) }
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (session === undefined) {
        session = dialerSession(keys, nonce, parseInit(f))
        send({ type: 'hello', hello: { proto: 3, name: 'a', incarnation: 'raw-1', recv: { incarnation: null, seq: 0 } } })
      } else {
        records.push(...decodeRecords(session.open(f)))
      }
    }
  })
  socket.on('error', () => {})
  socket.write(Buffer.concat([PREAMBLE, frame(initFrameBody(nonce))]))
  await waitFor(() => records.some((r) => r.type === 'hello'), { message: 'hello from b' })
  return { socket, records, send }
}

/** Sockets, servers and (ref'd) timers alive in this process. */
const resources = (): string[] => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP') || r === 'Timeout').sort()

test('reliable and unreliable messages arrive in order, both ways, encrypted; stop() leaves nothing running', async () => {
  const key = randomBytes(32)
  const before = resources()
  const p = await startPair({ cipherA: new Keyring([key]), cipherB: new Keyring([key]) })
  try {
    for (let i = 0; i < 500; i++) p.a.link.send(seqPayload(i), i % 3 !== 0 ? 'reliable' : 'unreliable')
    for (let i = 0; i < 500; i++) p.b.link.send(seqPayload(i), 'reliable')
    await waitFor(() => p.b.received.length === 500 && p.a.received.length === 500, { message: 'all delivered' })
    assert.deepEqual(indices(p.b.received), range(500))
    assert.deepEqual(p.b.received.map((m) => m.reliable), range(500).map((i) => i % 3 !== 0))
    assert.deepEqual(indices(p.a.received), range(500))
    await waitFor(() => p.a.link.unackedCount === 0 && p.b.link.unackedCount === 0, { message: 'all acknowledged' })
    assert.equal(p.a.link.stats().bufferedBytes, 0)
  } finally {
    await p.close()
  }
  await waitFor(() => resources().length === before.length, { message: `no sockets or timers left (before ${before.join()}, now ${resources().join()})` })
})

test('no loss and no duplicates across connection drops in the middle of a burst', async () => {
  const p = await startPair()
  try {
    const total = 20_000
    let sent = 0
    let drops = 0
    const dropAt = [3000, 9000, 15_000]
    // Send in slices so drops land mid-burst with messages queued, in flight and
    // unacknowledged; sending goes on while the link is down (those queue too).
    const bothUp = (): boolean => p.a.link.state === 'up' && p.b.link.state === 'up'
    while (sent < total || drops < dropAt.length) {
      for (let k = 0; k < 500 && sent < total; k++) {
        const r = p.a.link.send(seqPayload(sent, 64), 'reliable')
        assert.equal(r, 'queued')
        sent++
      }
      if (drops < dropAt.length && sent >= dropAt[drops]! && bothUp()) {
        // Alternate which end loses the socket: the dialer, then the acceptor.
        if (drops % 2 === 0) p.a.link.dropConnection()
        else p.b.link.dropConnection()
        drops++
      } else if (sent >= total && drops < dropAt.length) {
        await waitFor(bothUp, { message: 'link back up' })
      }
      await yieldLoop()
    }
    await waitFor(() => p.b.received.length >= total && p.a.link.unackedCount === 0 && p.a.link.stats().connects === drops + 1, { timeout: 15_000, message: 'burst delivered' })
    assert.deepEqual(indices(p.b.received), range(total), 'every message once, in order')
    const s = p.a.link.stats()
    assert.equal(drops, 3)
    assert.equal(s.connects, 4, 'reconnected after each drop')
    console.log(`# drops: ${drops}, connects ${s.connects}, retransmitted ${s.retransmitted}, duplicates discarded ${p.b.link.stats().duplicates}`)
  } finally {
    await p.close()
  }
})

test('whenAcked() resolves once the peer delivered the message, false when the link stops first', async () => {
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY)
  try {
    const raw = await rawPeer(port)
    assert.equal(b.link.send(seqPayload(1), 'reliable'), 'queued')
    const first = b.link.lastQueuedSeq
    b.link.send(seqPayload(2), 'reliable')
    const second = b.link.lastQueuedSeq
    assert.equal(second, first + 1)
    let firstAcked: boolean | undefined
    const p1 = b.link.whenAcked(first).then((v) => { firstAcked = v })
    const p2 = b.link.whenAcked(second)
    await waitFor(() => raw.records.filter((r) => r.type === 'data').length === 2, { message: 'written' })
    assert.equal(firstAcked, undefined, 'written is not acknowledged')
    raw.send({ type: 'ack', seq: first })
    await p1
    assert.equal(firstAcked, true)
    b.link.stop()
    assert.equal(await p2, false)
    raw.socket.destroy()
  } finally {
    b.link.stop()
    await listener.stop()
  }
})

test('the receiver discards duplicates by sequence number and acks cumulatively', async () => {
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY)
  try {
    const raw = await rawPeer(port)
    raw.send(
      { type: 'data', seq: 1, payload: seqPayload(1), hold: false },
      { type: 'data', seq: 2, payload: seqPayload(2), hold: false },
      { type: 'data', seq: 1, payload: seqPayload(1), hold: false },
      { type: 'data', seq: 3, payload: seqPayload(3), hold: false },
      { type: 'data', seq: 2, payload: seqPayload(2), hold: false },
      { type: 'data', seq: 0, payload: seqPayload(99), hold: false }
    )
    await waitFor(() => b.received.length === 4, { message: 'delivery' })
    assert.deepEqual(indices(b.received), [1, 2, 3, 99])
    assert.equal(b.link.stats().duplicates, 2)
    await waitFor(() => raw.records.some((r) => r.type === 'ack' && r.seq === 3), { message: 'cumulative ack 3' })
    // The same sender lifetime reconnecting: its retransmissions are still recognised.
    raw.socket.destroy()
    await waitFor(() => b.link.state === 'waiting', { message: 'b notices the drop' })
    const again = await rawPeer(port)
    const hello = again.records.find((r) => r.type === 'hello')
    assert.ok(hello?.type === 'hello')
    assert.deepEqual(hello.hello.recv, { incarnation: 'raw-1', seq: 3 }, 'b tells the sender what it already has')
    again.send({ type: 'data', seq: 3, payload: seqPayload(3), hold: false }, { type: 'data', seq: 4, payload: seqPayload(4), hold: false })
    await waitFor(() => b.received.length === 5, { message: 'seq 4' })
    assert.deepEqual(indices(b.received), [1, 2, 3, 99, 4])
    again.socket.destroy()
  } finally {
    b.link.stop()
    await listener.stop()
  }
})

test('a restarted sender (new incarnation) starts its sequence again and is delivered', async () => {
  const p = await startPair()
  try {
    for (let i = 0; i < 10; i++) p.a.link.send(seqPayload(i), 'reliable')
    await waitFor(() => p.b.received.length === 10 && p.a.link.unackedCount === 0, { message: 'first lifetime' })
    p.a.link.stop()
    const a2 = startDialerSide('a', 'b', NO_KEY, p.port)
    try {
      for (let i = 10; i < 20; i++) a2.link.send(seqPayload(i), 'reliable')
      await waitFor(() => p.b.received.length === 20, { message: 'second lifetime delivered' })
      assert.deepEqual(indices(p.b.received), range(20))
    } finally {
      a2.link.stop()
    }
  } finally {
    await p.close()
  }
})

test('a wrong cluster key is refused and never reaches the handler', async () => {
  const p = await startPair({ cipherA: new Keyring([randomBytes(16)]), cipherB: new Keyring([randomBytes(16)]), waitUp: false })
  try {
    p.a.link.send(seqPayload(1), 'reliable')
    await waitFor(() => (p.acceptor.refused.auth ?? 0) >= 2, { message: 'two refused attempts' })
    assert.notEqual(p.a.link.state, 'up')
    assert.equal(p.b.link.state, 'waiting')
    assert.equal(p.b.received.length, 0)
    // Plain text against an encrypted node is refused the same way.
    const plain = startDialerSide('a', 'b', NO_KEY, p.port)
    try {
      await waitFor(() => (p.acceptor.refused.auth ?? 0) >= 4, { message: 'plain text refused' })
      assert.notEqual(plain.link.state, 'up')
    } finally {
      plain.link.stop()
    }
  } finally {
    await p.close()
  }
})

test('garbage bytes are refused without crashing, before and after the handshake', async () => {
  const p = await startPair()
  try {
    const before = (reason: string): number => (p.acceptor.refused as Record<string, number>)[reason] ?? 0
    // Before the handshake: random bytes, a huge length after a valid preamble, a bad hello.
    for (const junk of [randomBytes(4096), Buffer.concat([PREAMBLE, Buffer.from([0xff, 0xff, 0xff, 0xff])]), Buffer.concat([PREAMBLE, frame(Buffer.from([0x01, 0, 0, 0, 2, 0x7b, 0x7d]))])]) {
      const s = connect({ host: HOST, port: p.port })
      s.on('error', () => {})
      await once(s, 'connect')
      s.write(junk)
      await once(s, 'close')
    }
    assert.equal(before('preamble'), 1)
    assert.equal(before('size'), 1)
    assert.equal(before('handshake'), 1)
    // After the handshake: a sender that turns to garbage loses its connection, counted.
    p.a.link.stop()
    await waitFor(() => p.b.link.state === 'waiting', { message: 'b waiting' })
    const raw = await rawPeer(p.port)
    raw.socket.write(Buffer.from([0, 0, 0, 3, 0x09, 0x09, 0x09]))
    await once(raw.socket, 'close')
    assert.equal(p.b.link.stats().protocolErrors.decode, 1)
    assert.equal(p.b.link.state, 'waiting')
    // And b still takes a good connection afterwards.
    const a2 = startDialerSide('a', 'b', NO_KEY, p.port)
    try {
      a2.link.send(seqPayload(7), 'reliable')
      await waitFor(() => p.b.received.length === 1, { message: 'delivery after garbage' })
    } finally {
      a2.link.stop()
    }
  } finally {
    await p.close()
  }
})

test('a slow reader: QoS 0 is shed and counted, reliable sends report backpressure, memory stays bounded', async () => {
  const maxBufferedBytes = 256 * 1024
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY, { maxBufferedBytes, frameBytes: 16 * 1024 })
  try {
    const raw = await rawPeer(port)
    raw.socket.pause() // reads nothing: the kernel buffers fill, then ours
    let shed = 0
    let queued = 0
    for (let round = 0; round < 2000 && shed === 0; round++) {
      for (let k = 0; k < 64; k++) if (b.link.send(seqPayload(queued, 1024), 'unreliable') === 'shed') shed++; else queued++
      await yieldLoop()
    }
    const s = b.link.stats()
    console.log(`# slow reader: ${queued} QoS 0 messages queued before shedding began, ${s.shed} shed, ${s.bufferedBytes} bytes buffered`)
    assert.ok(s.shed > 0, 'QoS 0 was shed')
    assert.ok(s.bufferedBytes <= maxBufferedBytes, `buffer bounded: ${s.bufferedBytes}`)
    // Reliable messages are never shed: while the buffer is full they are refused with backpressure.
    assert.equal(b.link.send(seqPayload(0, 1024), 'reliable'), 'backpressure')
    assert.equal(b.link.stats().backpressured, 1)
    // The reader catches up: everything queued arrives, in order, none of the shed ones.
    raw.socket.resume()
    await waitFor(() => raw.records.filter((r) => r.type === 'data').length === queued, { timeout: 10_000, message: 'reader drained' })
    const got = raw.records.flatMap((r) => (r.type === 'data' ? [r.payload.readUInt32BE(0)] : []))
    assert.deepEqual(got, range(queued))
    raw.socket.destroy()
  } finally {
    b.link.stop()
    await listener.stop()
  }
})

test('unacknowledged reliable messages fill the buffer; whenWritable() resolves once acks arrive', async () => {
  const maxBufferedBytes = 64 * 1024
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY, { maxBufferedBytes })
  try {
    const raw = await rawPeer(port)
    let accepted = 0
    while (b.link.send(seqPayload(accepted, 1000), 'reliable') === 'queued') accepted++
    assert.ok(accepted > 10 && accepted * 1011 <= maxBufferedBytes + 1011, `${accepted} accepted`)
    let writable = false
    const w = b.link.whenWritable().then(() => { writable = true })
    await waitFor(() => raw.records.filter((r) => r.type === 'data').length === accepted, { message: 'all written' })
    assert.equal(writable, false, 'written is not acknowledged')
    raw.send({ type: 'ack', seq: accepted })
    await w
    assert.equal(b.link.unackedCount, 0)
    assert.equal(b.link.send(seqPayload(0), 'reliable'), 'queued')
    raw.socket.destroy()
  } finally {
    b.link.stop()
    await listener.stop()
  }
})

test('a full link to a peer that will not acknowledge: wakeWriters() releases the senders waiting for room; overBound still queues held messages', async () => {
  const maxBufferedBytes = 64 * 1024
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY, { maxBufferedBytes })
  try {
    const raw = await rawPeer(port)
    let accepted = 0
    while (b.link.send(seqPayload(accepted, 1000), 'held') === 'queued') accepted++
    let woken = false
    const w = b.link.whenWritable().then(() => { woken = true })
    await waitFor(() => raw.records.filter((r) => r.type === 'data').length === accepted, { message: 'all written' })
    assert.equal(woken, false, 'nothing acknowledged: no room')
    // The peer is declared dead (link-set.ts park): nobody may wait for room any more.
    b.link.wakeWriters()
    await w
    assert.equal(b.link.send(seqPayload(0, 1000), 'held'), 'backpressure', 'still full')
    assert.equal(b.link.send(seqPayload(0, 1000), 'held', true), 'queued', 'kept past the bound for the rescue')
    assert.equal(b.link.unheld().length, accepted + 1)
    raw.socket.destroy()
  } finally {
    b.link.stop()
    await listener.stop()
  }
})

test('a burst leaves in few writes; a lone message is not held back', async () => {
  const p = await startPair()
  try {
    const w0 = p.a.link.stats().writes
    for (let i = 0; i < 2000; i++) p.a.link.send(seqPayload(i, 100), i % 2 === 0 ? 'reliable' : 'unreliable')
    await waitFor(() => p.b.received.length === 2000, { message: 'burst delivered' })
    const writes = p.a.link.stats().writes - w0
    console.log(`# batching: 2000 messages of 100 bytes in ${writes} socket writes`)
    assert.ok(writes <= 4, `${writes} writes`)
    // A lone message goes out on the next turn of the event loop.
    await waitFor(() => p.a.link.unackedCount === 0, { message: 'acks' })
    const t = performance.now()
    p.a.link.send(seqPayload(5000), 'reliable')
    await waitFor(() => p.b.received.length === 2001, { interval: 1, message: 'lone message' })
    const ms = performance.now() - t
    console.log(`# lone message delivered in ${ms.toFixed(2)} ms`)
    assert.ok(ms < 250, `lone message took ${ms} ms`)
  } finally {
    await p.close()
  }
})

test('a silent peer is dropped after the idle timeout; a live idle link stays up on pings', async () => {
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY, { idleTimeoutMs: 300, pingIntervalMs: 50 })
  try {
    const raw = await rawPeer(port)
    await waitFor(() => b.link.state === 'waiting', { message: 'idle drop' })
    assert.equal(b.link.stats().protocolErrors.idle, 1)
    assert.ok(raw.records.some((r) => r.type === 'ping'), 'b pinged while idle')
    raw.socket.destroy()
  } finally {
    b.link.stop()
    await listener.stop()
  }
  const p = await startPair({ tuningA: { idleTimeoutMs: 700, pingIntervalMs: 50 }, tuningB: { idleTimeoutMs: 700, pingIntervalMs: 50 } })
  try {
    const until = Date.now() + 1200
    await waitFor(() => Date.now() > until || p.a.link.state !== 'up', { message: 'observation window' })
    assert.equal(p.a.link.state, 'up')
    assert.equal(p.a.link.stats().connects, 1, 'never reconnected')
  } finally {
    await p.close()
  }
})

test('a link is not judged idle on waking from a blocked event loop before reading what the peer sent meanwhile', async () => {
  // A starved node: its event loop blocked past the idle timeout while the
  // peer kept talking. Timers run before I/O, so the heartbeat saw a silent
  // link and dropped a live peer (whose declared death then counted as confirmed).
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY, { idleTimeoutMs: 300, pingIntervalMs: 50 })
  try {
    const raw = await rawPeer(port)
    for (let i = 0; i < 5; i++) {
      raw.send({ type: 'ping' })
      await sleep(40) // the peer's pace
    }
    assert.equal(b.link.state, 'up')
    // The peer's ping reaches b's socket while b's event loop is blocked for longer than the idle timeout.
    raw.send({ type: 'ping' })
    const until = Date.now() + 450
    while (Date.now() < until) { /* blocked */ }
    // Past the heartbeat that woke up overdue (every 50 ms), well within the 300 ms idle time after the ping.
    await sleep(100)
    assert.equal(b.link.state, 'up', 'still up: the ping was waiting to be read')
    assert.equal(b.link.stats().protocolErrors.idle ?? 0, 0)
    raw.socket.destroy()
  } finally {
    b.link.stop()
    await listener.stop()
  }
})

test('the dialer redials with growing backoff while the peer is unreachable, then connects', async () => {
  let attempts = 0
  const times: number[] = []
  let listenerPort = 0
  const a = new PeerLink({
    localName: 'a',
    peerName: 'b',
    keys: NO_KEY,
    onMessage: () => {},
    minBackoffMs: 5,
    maxBackoffMs: 40,
    random: () => 1, // no jitter: delays 5, 10, 20, 40, 40...
    connect: () => {
      attempts++
      times.push(performance.now())
      if (listenerPort === 0) throw new Error('no address yet')
      return connect({ host: HOST, port: listenerPort })
    }
  })
  let b: Awaited<ReturnType<typeof startAcceptorSide>> | undefined
  try {
    a.start()
    a.send(seqPayload(1), 'reliable')
    await waitFor(() => attempts >= 6, { message: 'redials' })
    assert.equal(a.state, 'backoff')
    const gaps = times.slice(1, 6).map((t, i) => t - times[i]!)
    // Timers fire late under load, never early: each gap is at least its backoff step (1 ms for rounding).
    for (const [i, min] of [5, 10, 20, 40, 40].entries()) assert.ok(gaps[i]! >= min - 1, `gap ${i}: ${gaps[i]} ms, want >= ${min}`)
    b = await startAcceptorSide('b', 'a', NO_KEY)
    listenerPort = b.port
    await waitFor(() => b!.side.received.length === 1, { message: 'queued message delivered after connecting' })
    assert.equal(a.state, 'up')
  } finally {
    a.stop()
    b?.side.link.stop()
    await b?.listener.stop()
  }
})

test('redialNow: a dial stuck in its handshake (the peer was cut off) starts afresh, and the backoff of the outage is forgotten', async () => {
  // A peer that accepts TCP and never answers: what a dial made during a partition can meet.
  const { createServer } = await import('node:net')
  const held: Socket[] = []
  const silent = createServer((s) => { held.push(s) })
  await new Promise<void>((resolve) => silent.listen(0, HOST, resolve))
  const silentPort = (silent.address() as { port: number }).port
  let dials = 0
  let failing = true
  const a = new PeerLink({
    localName: 'a',
    peerName: 'b',
    keys: NO_KEY,
    onMessage: () => {},
    minBackoffMs: 5,
    maxBackoffMs: 60_000,
    handshakeTimeoutMs: 60_000,
    random: () => 1,
    connect: () => {
      dials++
      if (failing) throw new Error('cut off')
      return connect({ host: HOST, port: silentPort })
    }
  })
  try {
    a.start()
    // Eight failed dials: the next wait would be 5 * 2^8 ms = 1.3 s, and it doubles.
    await waitFor(() => dials >= 8, { message: 'failed dials' })
    failing = false
    await waitFor(() => held.length === 1, { timeout: 10_000, message: 'a dial reached the silent peer' })
    // Older than STALE_HANDSHAKE_MS (1 s): a slower handshake is left to finish.
    const young = dials
    a.redialNow()
    assert.equal(dials, young, 'a handshake under 1 s old is not dropped')
    await sleep(1100)
    assert.equal(a.state, 'handshaking', 'stuck in the handshake (handshake_timeout is 60 s here)')
    const before = dials
    a.redialNow()
    await waitFor(() => dials > before, { timeout: 1000, message: 'a new dial at once, not after the handshake timeout' })
    // That dial is stuck too; the peer drops it: the next comes after the shortest wait again, not 1.3 s or more.
    await waitFor(() => held.length === 2, { message: 'the second dial reached the peer' })
    const dropped = dials
    held[1]!.destroy()
    await waitFor(() => dials > dropped, { timeout: 600, message: 'redialled after the shortest backoff' })
  } finally {
    a.stop()
    for (const s of held) s.destroy()
    await new Promise<void>((resolve) => silent.close(() => resolve()))
  }
})

test('a held message stays with the sender until the receiver settles it: out of order, reported again after a reconnect', async () => {
  const p = await startPair()
  try {
    const seqs: number[] = []
    for (let i = 0; i < 3; i++) {
      assert.equal(p.a.link.send(seqPayload(i, 1000), 'held'), 'queued')
      seqs.push(p.a.link.lastQueuedSeq)
    }
    const held = seqs.map((s) => { let v: boolean | undefined; p.a.link.onHeld(s, (x) => { v = x }); return () => v })
    await waitFor(() => p.b.received.length === 3 && p.a.link.unackedCount === 0, { message: 'delivered and acknowledged' })
    assert.ok(p.b.received.every((r) => r.info.hold === true && r.info.source !== undefined))
    assert.equal(p.a.link.unheldCount, 3, 'acknowledged is not held')
    assert.ok(p.a.link.bufferedBytes >= 3000, 'unsettled messages count against the buffer')
    // The last one first: reported although the first two are not settled.
    p.b.link.settle(p.b.received[2]!.info.source!)
    await waitFor(() => held[2]!() === true, { message: 'third held' })
    assert.equal(held[0]!(), undefined)
    assert.deepEqual(p.a.link.unheld().map((u) => u.seq), seqs.slice(0, 2))
    // A settlement made while the connection is down reaches the sender on the next one.
    p.b.link.dropConnection()
    p.b.link.settle(p.b.received[0]!.info.source!)
    p.b.link.settle(p.b.received[1]!.info.source!)
    await waitFor(() => held[0]!() === true && held[1]!() === true, { message: 'held after the reconnect' })
    assert.equal(p.a.link.unheldCount, 0)
    assert.equal(p.a.link.bufferedBytes, 0)
  } finally {
    await p.close()
  }
})

test('held messages fill the buffer until settled (backpressure), then whenWritable lets the sender go on', async () => {
  const p = await startPair({ tuningA: { maxBufferedBytes: 16 * 1024 } })
  try {
    let sent = 0
    while (p.a.link.send(seqPayload(sent, 1000), 'held') === 'queued') sent++
    assert.ok(sent >= 10 && sent < 32, `backpressure after ${sent}`)
    await waitFor(() => p.b.received.length === sent && p.a.link.unackedCount === 0, { message: 'all delivered and acknowledged' })
    assert.equal(p.a.link.send(seqPayload(sent, 1000), 'held'), 'backpressure', 'acknowledged but unsettled: still full')
    let writable = false
    void p.a.link.whenWritable().then(() => { writable = true })
    for (const r of p.b.received) p.b.link.settle(r.info.source!)
    await waitFor(() => writable, { message: 'writable once settled' })
    assert.equal(p.a.link.send(seqPayload(sent, 1000), 'held'), 'queued')
  } finally {
    await p.close()
  }
})

test('a receiver that restarts settles nothing of its predecessor: those messages are orphaned, not resent', async () => {
  const { side: b, listener, port } = await startAcceptorSide('b', 'a', NO_KEY, { process: 'b-1' } as LinkTuning)
  const orphans: number[][] = []
  const a = startDialerSide('a', 'b', NO_KEY, port, { process: 'a-1', onRestart: (o) => orphans.push(o.map((x) => x.seq)) } as LinkTuning)
  let b2: Awaited<ReturnType<typeof startAcceptorSide>> | undefined
  try {
    await waitFor(() => a.link.state === 'up', { message: 'up' })
    a.link.send(seqPayload(1), 'held')
    const first = a.link.lastQueuedSeq
    a.link.send(seqPayload(2), 'held')
    a.link.send(seqPayload(3), 'reliable')
    let firstHeld: boolean | undefined
    a.link.onHeld(first, (v) => { firstHeld = v })
    await waitFor(() => b.received.length === 3, { message: 'delivered to the first process' })
    // The first process dies without settling; a new one listens on another port.
    b.link.stop()
    await listener.stop()
    b2 = await startAcceptorSide('b', 'a', NO_KEY, { process: 'b-2' } as LinkTuning)
    const port2 = b2.port
    ;(a.link as unknown as { opts: { connect: () => Socket } }).opts.connect = () => connect({ host: HOST, port: port2 })
    a.link.redialNow()
    await waitFor(() => orphans.length === 1, { timeout: 10_000, message: 'the restart is noticed' })
    assert.deepEqual(orphans[0], [first, first + 1])
    assert.equal(firstHeld, false, 'a waiter learns the message was never held')
    assert.equal(a.link.unheldCount, 0)
    a.link.send(seqPayload(4), 'held')
    await waitFor(() => b2!.side.received.length >= 1, { message: 'the new process gets new messages' })
    assert.deepEqual(indices(b2.side.received), [4], 'nothing of the old process resent to the new one')
  } finally {
    a.link.stop()
    b2?.side.link.stop()
    await b2?.listener.stop()
  }
})

test('microbench: throughput over loopback, plain and AES-256-GCM (printed, not asserted)', async () => {
  const key = randomBytes(32)
  for (const [label, cipher] of [['plain', NO_KEY], ['aes-256-gcm', new Keyring([key])]] as const) {
    const p = await startPair({ cipherA: cipher, cipherB: cipher })
    try {
      const n = 200_000
      const payload = Buffer.alloc(100, 7)
      const t = performance.now()
      let i = 0
      while (i < n) {
        const r = p.a.link.send(payload, 'reliable')
        if (r === 'backpressure') { await p.a.link.whenWritable(); continue }
        i++
        if (i % 5000 === 0) await yieldLoop()
      }
      await waitFor(() => p.b.received.length === n && p.a.link.unackedCount === 0, { timeout: 20_000, interval: 5, message: 'bench delivered' })
      const s = (performance.now() - t) / 1000
      const st = p.a.link.stats()
      console.log(`# throughput ${label}: ${n} reliable messages of 100 bytes in ${s.toFixed(2)} s = ${Math.round(n / s)} msg/s, ` +
        `${(st.bytesSent / s / 1e6).toFixed(1)} MB/s, ${st.writes} writes, ${st.frames} frames`)
      assert.equal(p.b.received.length, n)
    } finally {
      await p.close()
    }
  }
})
