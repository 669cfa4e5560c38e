// MQTT played by an attacker (issue 14): `$` topics under a deny-by-default
// ACL and with no ACL (publish, subscribe, will; mqtt.js and mosquitto
// clients), `$SYS` events readable only with an explicit grant, user-name
// enumeration by timing, password guessing (per-address backoff), and a
// client collecting subscriptions.
import { test, after, describe, before } from 'node:test'
import assert from 'node:assert/strict'
import { createConnection, type Socket } from 'node:net'
import { spawnSync, execFile } from 'node:child_process'
import type { MqttClient, IClientOptions } from 'mqtt'
import { pino } from 'pino'
import { startNode, nodeConfigObject, type TestNode } from '../helpers/node.js'
import { loadConfig } from '../../src/config/index.js'
import { BrokerNode } from '../../src/server/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { recordingClient, connackRefusal, type RecordingClient } from '../helpers/mqtt-clients.js'
import { hashPassword } from '../../src/security/password.js'
import { LOGIN_BACKOFF } from '../../src/security/login-backoff.js'

const open: MqttClient[] = []
const nodes: TestNode[] = []
after(async () => {
  for (const c of open) c.end(true)
  for (const n of nodes) await n.stop()
})

const T = { timeout: 20_000 }


async function connect (node: TestNode, options: IClientOptions & { localAddress?: string } = {}): Promise<RecordingClient> {
  return await recordingClient(node, open, options)
}

async function refusal (node: TestNode, options: IClientOptions & { localAddress?: string }): Promise<number> {
  return await connackRefusal(node, open, options)
}

async function subackCodes (c: RecordingClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  const before = c.packets.length
  await new Promise<void>((resolve) => c.client.subscribe(filters, { qos }, () => resolve()))
  const suback = c.packets.slice(before).find((p) => p.cmd === 'suback') as { granted: number[] } | undefined
  assert.ok(suback, 'SUBACK received')
  return suback.granted
}

async function publishAck (c: RecordingClient, topic: string, qos: 1 | 2): Promise<number | undefined> {
  const before = c.packets.length
  await new Promise<void>((resolve) => c.client.publish(topic, 'x', { qos }, () => resolve()))
  const ack = c.packets.slice(before).find((p) => p.cmd === (qos === 1 ? 'puback' : 'pubrec')) as { reasonCode?: number } | undefined
  assert.ok(ack, 'acknowledged')
  return ack.reasonCode
}

/** Publishes `sentinel` after the rest and waits for it, so everything before it had its chance to arrive. */
async function flush (publisher: RecordingClient, subscriber: RecordingClient, sentinel: string): Promise<void> {
  publisher.client.publish(sentinel, 'end', { qos: 1 })
  await waitFor(() => subscriber.messages.some((m) => m.topic === sentinel), { message: `sentinel ${sentinel}` })
}

for (const [label, acl] of [
  ['a deny-by-default ACL', [
    { username: 'ops', filters: { '$SYS/#': 1, '$foo/#': 3, 'public/#': 3 } },
    { filters: { 'public/#': 3, '#': 0 } }
  ]],
  ['no ACL at all', []]
] as const) {
  describe(`$ topics under ${label}`, () => {
    let node: TestNode
    before(async () => { node = await startNode({ mqtt: { acl: acl as never } }); nodes.push(node) })

    test('no client may publish to a $ topic: v5 gets 0x87, v3.1.1 an ordinary PUBACK, and nobody receives it', T, async () => {
      // The subscriber with the strongest grant this ACL can give.
      const reader = await connect(node, { username: 'ops', protocolVersion: 5 })
      const granted = await subackCodes(reader, ['$foo/#', 'public/#'])
      assert.equal(granted[1], 1)
      const v5 = await connect(node, { username: 'ops', protocolVersion: 5 })
      const v4 = await connect(node, { username: 'ops', protocolVersion: 4 })
      assert.equal(await publishAck(v5, '$foo/bar', 1), 0x87)
      assert.equal(await publishAck(v5, '$SYS/fake/new/clients', 2), 0x87)
      assert.equal(await publishAck(v4, '$foo/bar', 1), undefined, 'v3.1.1: acknowledged and dropped')
      v4.client.publish('$foo/qos0', 'x', { qos: 0 })
      await flush(v4, reader, 'public/sentinel')
      assert.deepEqual(reader.messages.filter((m) => m.topic.startsWith('$')), [], 'no $ message was delivered')
      assert.ok(v4.client.connected && v5.client.connected, 'refused publishers keep their connections')
    })

    test('a will on a $ topic refuses the CONNECT', T, async () => {
      assert.equal(await refusal(node, { username: 'ops', protocolVersion: 5, will: { topic: '$foo/will', payload: Buffer.from('x'), qos: 0, retain: false } }), 0x87)
      assert.equal(await refusal(node, { username: 'ops', protocolVersion: 4, will: { topic: '$foo/will', payload: Buffer.from('x'), qos: 0, retain: false } }), 5)
    })

    test('$ subscriptions need a filter naming the prefix: # grants none, and without a grant they are refused', T, async () => {
      const anyone = await connect(node, { username: 'someone', protocolVersion: 5 })
      assert.deepEqual(await subackCodes(anyone, ['$foo/#', '$SYS/#', '$share/g/$SYS/#']), [0x87, 0x87, 0x87])
      const v4 = await connect(node, { username: 'someone', protocolVersion: 4 })
      assert.deepEqual(await subackCodes(v4, ['$foo/bar', '$SYS/+/new/clients']), [0x80, 0x80])
      if (acl.length > 0) {
        const ops = await connect(node, { username: 'ops', protocolVersion: 4 })
        assert.deepEqual(await subackCodes(ops, ['$SYS/#', '$foo/bar']), [1, 1], 'an explicit grant does')
      }
    })

    test('$SYS events that reveal other clients reach only an explicit grant', T, async () => {
      const anyone = await connect(node, { username: 'someone', protocolVersion: 4 })
      // `#` where the ACL lets it through (no ACL), public/# under the deny-by-default one.
      await subackCodes(anyone, ['#', 'public/#', '$SYS/#'])
      const ops = acl.length > 0 ? await connect(node, { username: 'ops', protocolVersion: 4 }) : undefined
      if (ops !== undefined) await subackCodes(ops, ['$SYS/#'])
      const victim = await connect(node, { clientId: 'victim-client-id', username: 'someone' })
      await subackCodes(victim, ['public/victim'])
      if (ops !== undefined) {
        await waitFor(() => ops.messages.some((m) => m.topic.endsWith('/new/clients') && m.payload === 'victim-client-id'), { message: 'ops sees the new client' })
      }
      await flush(victim, anyone, 'public/sentinel-sys')
      assert.deepEqual(anyone.messages.filter((m) => m.topic.startsWith('$')), [], 'no $SYS event reached a client without a grant')
    })

    test('mosquitto_pub / mosquitto_sub (a second client stack) are refused the same way', T, async (t) => {
      if (spawnSync('mosquitto_pub', ['--help'], { stdio: 'ignore' }).error !== undefined) return t.skip('mosquitto clients not installed')
      const args = ['-h', node.host, '-p', String(node.config.mqtt.port), '-u', 'ops', '-d']
      // Asynchronously: the broker runs in this process.
      const run = async (cmd: string, argv: string[]): Promise<string> => await new Promise((resolve) => {
        execFile(cmd, argv, { encoding: 'utf8', timeout: 10_000 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`))
      })
      const pub5 = await run('mosquitto_pub', [...args, '-V', '5', '-q', '1', '-t', '$foo/bar', '-m', 'x'])
      assert.match(pub5, /received PUBACK \(Mid: \d+, RC:135\)/, pub5)
      assert.match(pub5, /Not authorized/)
      const sub4 = await run('mosquitto_sub', ['-h', node.host, '-p', String(node.config.mqtt.port), '-u', 'someone', '-d', '-V', '311', '-t', '$SYS/#', '-C', '1', '-W', '2'])
      assert.match(sub4, /Subscribed \(mid: \d+\): 128/, sub4)
    })
  })
}

describe('password guessing', () => {
  let node: TestNode
  before(async () => {
    // log2 N = 12: a real scrypt, so the difference was visible (~1 ms against tens of ms before).
    node = await startNode({ mqtt: { auth: [{ username: 'device', password: hashPassword('device-pw', 12), allow: true }] } })
    nodes.push(node)
  })

  test('an unknown user name is refused after as much work as a wrong password for a known one', T, async () => {
    const time = async (username: string, password: string): Promise<number> => {
      const localAddress = await freeLoopbackAddress()
      const started = process.hrtime.bigint()
      assert.equal(await refusal(node, { username, password, localAddress }), 5)
      return Number(process.hrtime.bigint() - started) / 1e6
    }
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const known: number[] = []
    const unknown: number[] = []
    for (let i = 0; i < 5; i++) {
      known.push(await time('device', `guess-${i}`))
      unknown.push(await time(`nobody-${i}`, `guess-${i}`))
    }
    const ratio = median(known) / median(unknown)
    assert.ok(ratio < 3 && ratio > 1 / 3, `known/unknown median ratio ${ratio.toFixed(2)} (known ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms)`)
  })

  test('repeated failures from one address back it off: even the right password is refused for a while; other addresses are not', T, async () => {
    const attacker = await freeLoopbackAddress()
    for (let i = 0; i <= LOGIN_BACKOFF.FREE_FAILURES; i++) assert.equal(await refusal(node, { username: 'device', password: `guess-${i}`, localAddress: attacker }), 5)
    assert.equal(await refusal(node, { username: 'device', password: 'device-pw', localAddress: attacker }), 5, 'backed off')
    const fine = await connect(node, { username: 'device', password: 'device-pw', localAddress: await freeLoopbackAddress() })
    fine.client.end(true)
    await new Promise((resolve) => setTimeout(resolve, LOGIN_BACKOFF.BASE_MS + 100))
    const later = await connect(node, { username: 'device', password: 'device-pw', localAddress: attacker })
    later.client.end(true)
  })
})

describe('mqtt.max_subscriptions_per_client', () => {
  let node: TestNode
  before(async () => {
    node = await startNode({ mqtt: { max_subscriptions_per_client: 3 } })
    nodes.push(node)
  })

  test('past the limit new filters are refused in the SUBACK and counted; re-subscribing never counts', T, async () => {
    const v4 = await connect(node, { protocolVersion: 4 })
    assert.deepEqual(await subackCodes(v4, ['a/1', 'a/2']), [1, 1])
    assert.deepEqual(await subackCodes(v4, ['a/3', 'a/4', 'a/5']), [1, 0x80, 0x80])
    assert.deepEqual(await subackCodes(v4, ['a/1', 'a/3']), [1, 1], 'filters it holds are fine')
    await new Promise<void>((resolve) => v4.client.unsubscribe('a/2', () => resolve()))
    assert.deepEqual(await subackCodes(v4, ['a/4']), [1], 'room again after an UNSUBSCRIBE')
    assert.deepEqual(await subackCodes(v4, ['a/9']), [0x80], 'at the limit: refused whole')
    const v5 = await connect(node, { protocolVersion: 5 })
    // Past the limit within one SUBSCRIBE: aedes answers a hook's refusal with 0x87.
    assert.deepEqual(await subackCodes(v5, ['b/1', 'b/2', 'b/3', 'b/4']), [1, 1, 1, 0x87])
    // At the limit, a SUBSCRIBE of new filters only: 0x97 quota exceeded.
    assert.deepEqual(await subackCodes(v5, ['b/5', 'b/6']), [0x97, 0x97])
    assert.deepEqual(await subackCodes(v5, ['b/1']), [1], 'a filter it holds is still fine')
    // The packets behind a SUBSCRIBE answered early still flow.
    v5.client.publish('b/1', 'after', { qos: 1 })
    await waitFor(() => v5.messages.some((m) => m.topic === 'b/1' && m.payload === 'after'), { message: 'own message on b/1' })
    assert.ok(v5.client.connected && v4.client.connected)
    // A persistent session at the limit: refused the same way, and its session keeps working.
    const persistent = await connect(node, { protocolVersion: 5, clean: false, clientId: `quota-${Date.now()}`, properties: { sessionExpiryInterval: 60 } })
    assert.deepEqual(await subackCodes(persistent, ['p/1', 'p/2', 'p/3']), [1, 1, 1])
    assert.deepEqual(await subackCodes(persistent, ['p/4']), [0x97])
    const metric = node.node.registry.getSingleMetric('broker_limit_rejections_total')!
    const refused = (await metric.get()).values.find((v) => v.labels.limit === 'subscriptions')
    assert.equal(refused?.value, 7)
  })
})

test('silent sockets (no CONNECT before connect_timeout) log at most one line per 10 s, with the number left out', T, async () => {
  const host = await freeLoopbackAddress()
  const lines: Array<{ msg: string, suppressed?: number, err?: string }> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const { config } = loadConfig({ object: nodeConfigObject(host, { mqtt: { connect_timeout: 200 }, log: { clients: false } }) })
  const node = new BrokerNode(config, log)
  await node.start()
  try {
    const sockets = await Promise.all(Array.from({ length: 20 }, async () => await new Promise<Socket>((resolve) => {
      const s = createConnection({ host, port: config.mqtt.port }, () => resolve(s))
      s.on('error', () => {})
    })))
    await waitFor(() => sockets.every((s) => s.destroyed || s.readableEnded), { message: 'every silent socket closed by the node' })
    const errors = lines.filter((l) => l.msg === 'MQTT client error')
    // Before: one info line per socket, 20 here, as many as anyone cares to open.
    assert.equal(errors.length, 1, JSON.stringify(errors))
    assert.match(errors[0]!.err ?? '', /connect did not arrive in time/)
  } finally {
    await node.stop()
  }
})
