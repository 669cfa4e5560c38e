// Authentication and ACL seen from real mqtt.js clients (MQTT 3.1.1 and 5.0)
// against an in-process node: CONNACK / SUBACK / PUBACK / PUBREC codes on the
// wire, refused messages never delivered, connections kept, counters moving.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient, IClientOptions } from 'mqtt'
import { startNode, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { recordingClient, connackRefusal, type RecordingClient } from '../helpers/mqtt-clients.js'
import { hashPassword } from '../../src/security/password.js'
import type { AuthRuleConfig, AclRuleConfig } from '../../src/config/index.js'

// Source addresses for the `remote` rules. Outside 127.100-199 (where test
// nodes listen), so no node ever binds them; picked per run.
const octet = (): number => 2 + Math.floor(Math.random() * 250)
const REMOTE_IP = `127.201.${octet()}.${octet()}`
const REMOTE_NET = `127.202.${octet()}`
const ELSEWHERE = `127.203.${octet()}.${octet()}`

const auth: AuthRuleConfig[] = [
  { username: 'alice', password: 'alice-pw', allow: true },
  // log2 N = 10: a real scrypt hash, cheap enough for a test.
  { username: 'hashed', password: hashPassword('hashed-pw', 10), allow: true },
  { username: 'banned', allow: false },
  { client: 'exact-client', allow: true },
  { client: 'cam-*', allow: true },
  { client: 'admin-*', allow: true },
  { remote: REMOTE_IP, allow: true },
  { remote: `${REMOTE_NET}.0/24`, allow: true }
]

const acl: AclRuleConfig[] = [
  // 0: alice's own tree, with a carve-out; shared is read only, drop write only.
  { username: 'alice', filters: { 'alice/#': 3, 'alice/secret/#': 0, 'shared/#': 1, 'drop/#': 2 } },
  // 1: consulted for alice only when rule 0 has no matching filter.
  { username: 'alice', filters: { 'fall/#': 1 } },
  // 2: no filters: admins may do anything.
  { client: 'admin-*' },
  // 3: everyone else.
  { filters: { 'shared/#': 3, 'locked/#': 0 } }
]


const open: MqttClient[] = []

const VERSION_NAME = { 3: 'v3.1', 4: 'v3.1.1', 5: 'v5' } as const

// A broken hook tends to leave a client waiting for an acknowledgement: fail, do not hang.
const T = { timeout: 15_000 }

async function connect (node: TestNode, options: IClientOptions & { localAddress?: string } = {}): Promise<RecordingClient> {
  return await recordingClient(node, open, options)
}

async function refusal (node: TestNode, options: IClientOptions & { localAddress?: string }): Promise<number> {
  return await connackRefusal(node, open, options)
}

async function refusals (node: TestNode): Promise<Record<string, number>> {
  const metric = node.node.registry.getSingleMetric('broker_auth_refusals_total')
  assert.ok(metric, 'broker_auth_refusals_total is registered')
  const out: Record<string, number> = {}
  for (const v of (await metric.get()).values) out[String(v.labels.kind)] = v.value
  return out
}

/** Raw SUBACK codes for one SUBSCRIBE, as sent on the wire. */
async function subackCodes (c: RecordingClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  const before = c.packets.length
  await new Promise<void>((resolve) => c.client.subscribe(filters, { qos }, () => resolve()))
  const suback = c.packets.slice(before).find((p) => p.cmd === 'suback') as { granted: number[] } | undefined
  assert.ok(suback, 'SUBACK received')
  return suback.granted
}

/** Publishes and resolves with the publish callback's error (or undefined). */
async function publish (c: RecordingClient, topic: string, payload: string, qos: 0 | 1 | 2): Promise<Error & { code?: number } | undefined> {
  return await new Promise((resolve) => c.client.publish(topic, payload, { qos }, (err) => resolve(err ?? undefined)))
}

function ackCode (c: RecordingClient, cmd: 'puback' | 'pubrec', since: number): number | undefined {
  const p = c.packets.slice(since).find((x) => x.cmd === cmd) as { reasonCode?: number } | undefined
  return p?.reasonCode
}

describe('MQTT authentication and ACL', () => {
  let node: TestNode

  before(async () => {
    node = await startNode({ mqtt: { auth, acl } })
  })

  after(async () => {
    for (const c of open) c.end(true)
    await node?.stop()
  })

  describe('CONNECT', () => {
    for (const protocolVersion of [3, 4, 5] as const) {
      const refused = protocolVersion === 5 ? 0x87 : 5
      const v = VERSION_NAME[protocolVersion]

      test(`${v}: username + plain password`, T, async () => {
        const ok = await connect(node, { protocolVersion, username: 'alice', password: 'alice-pw' })
        ok.client.end(true)
        assert.equal(await refusal(node, { protocolVersion, username: 'alice', password: 'wrong' }), refused)
        assert.equal(await refusal(node, { protocolVersion, username: 'alice' }), refused)
      })

      test(`${v}: username + scrypt-hashed password`, T, async () => {
        const ok = await connect(node, { protocolVersion, username: 'hashed', password: 'hashed-pw' })
        ok.client.end(true)
        const again = await connect(node, { protocolVersion, username: 'hashed', password: 'hashed-pw' })
        again.client.end(true)
        assert.equal(await refusal(node, { protocolVersion, username: 'hashed', password: 'hashed-pw2' }), refused)
      })

      test(`${v}: client id, exact and prefix*`, T, async () => {
        ;(await connect(node, { protocolVersion, clientId: 'exact-client' })).client.end(true)
        ;(await connect(node, { protocolVersion, clientId: 'cam-42' })).client.end(true)
        assert.equal(await refusal(node, { protocolVersion, clientId: 'exact-client-2' }), refused)
        assert.equal(await refusal(node, { protocolVersion, clientId: 'dog-1' }), refused)
      })

      test(`${v}: remote IP and CIDR`, T, async () => {
        ;(await connect(node, { protocolVersion, localAddress: REMOTE_IP })).client.end(true)
        ;(await connect(node, { protocolVersion, localAddress: `${REMOTE_NET}.${octet()}` })).client.end(true)
        assert.equal(await refusal(node, { protocolVersion, localAddress: ELSEWHERE }), refused)
      })

      test(`${v}: allow: false refuses`, T, async () => {
        assert.equal(await refusal(node, { protocolVersion, username: 'banned', password: 'x' }), refused)
      })

      test(`${v}: a will on a topic the client may not write refuses the connection`, T, async () => {
        const will = { topic: 'shared/will', payload: Buffer.from('gone'), qos: 0 as const, retain: false }
        assert.equal(await refusal(node, { protocolVersion, username: 'alice', password: 'alice-pw', will }), refused)
        const admin = await connect(node, { protocolVersion: 5, clientId: `admin-will-${v}` })
        assert.deepEqual(await subackCodes(admin, ['alice/will']), [1])
        const payload = Buffer.from(`gone-${v}`)
        const allowed = await connect(node, { protocolVersion, username: 'alice', password: 'alice-pw', will: { ...will, topic: 'alice/will', payload } })
        allowed.client.stream.destroy() // no DISCONNECT: the will is published
        await waitFor(() => admin.messages.some((m) => m.payload === payload.toString()), { message: 'an authorized will is published' })
        allowed.client.end(true)
        admin.client.end(true)
      })
    }

    test('refused connections are counted', T, async () => {
      const before = (await refusals(node)).connect ?? 0
      await refusal(node, { username: 'nobody', password: 'x' })
      await refusal(node, { protocolVersion: 5, username: 'nobody', password: 'x' })
      assert.equal((await refusals(node)).connect, before + 2)
    })
  })

  describe('ACL', () => {
    for (const protocolVersion of [3, 4, 5] as const) {
      const v = VERSION_NAME[protocolVersion]
      const subRefused = protocolVersion === 5 ? 0x87 : 0x80

      test(`${v}: SUBSCRIBE read allowed / refused, per filter`, T, async () => {
        const alice = await connect(node, { protocolVersion, username: 'alice', password: 'alice-pw' })
        const before = (await refusals(node)).subscribe ?? 0
        const codes = await subackCodes(alice, ['shared/#', 'drop/#', 'alice/secret/#', 'alice/#', 'fall/#', 'other/x', '#'])
        assert.deepEqual(codes, [1, subRefused, subRefused, 1, 1, 1, subRefused])
        assert.equal((await refusals(node)).subscribe, before + 3)
        assert.equal(alice.client.connected, true)
        if (protocolVersion !== 5) {
          // v5 shared subscriptions are refused by aedes itself (0x9E, not advertised).
          assert.deepEqual(await subackCodes(alice, ['$share/g/drop/x']), [0x80], '$share/g/f is checked as f')
        }
        alice.client.end(true)
      })

      test(`${v}: PUBLISH write allowed / refused at QoS 0, 1, 2; refused messages never delivered`, T, async () => {
        const admin = await connect(node, { protocolVersion: 5, clientId: `admin-${v}` })
        assert.deepEqual(await subackCodes(admin, ['#']), [1])
        const alice = await connect(node, { protocolVersion, username: 'alice', password: 'alice-pw' })
        const counted = (await refusals(node)).publish ?? 0
        const tag = `${v}-${Date.now()}`

        // write allowed (rule 0), no applicable filter (allowed), write refused: read only, deny 0,
        // and read-only in the fall-through rule 1.
        for (const qos of [0, 1, 2] as const) {
          assert.equal(await publish(alice, `alice/ok/${qos}`, tag, qos), undefined)
          assert.equal(await publish(alice, `other/ok/${qos}`, tag, qos), undefined)
          for (const topic of [`shared/no/${qos}`, `alice/secret/no/${qos}`, `fall/no/${qos}`]) {
            const since = alice.packets.length
            const err = await publish(alice, topic, tag, qos)
            if (qos === 0) continue
            const cmd = qos === 1 ? 'puback' : 'pubrec'
            if (protocolVersion === 5) {
              assert.equal(err?.code, 0x87, `${topic}: ${cmd} reason`)
              assert.equal(ackCode(alice, cmd, since), 0x87)
            } else {
              // 3.1.1 cannot refuse: acknowledged (QoS 2 flow completes), dropped.
              assert.equal(err, undefined, `${topic}: acknowledged`)
              assert.ok(alice.packets.slice(since).some((p) => p.cmd === cmd), `${cmd} received`)
            }
          }
        }
        // A marker after everything: once it arrives, any refused message would have too.
        assert.equal(await publish(alice, 'alice/marker', tag, 1), undefined)
        await waitFor(() => admin.messages.some((m) => m.topic === 'alice/marker' && m.payload === tag), { message: 'marker' })
        const received = admin.messages.filter((m) => m.payload === tag).map((m) => m.topic).sort()
        assert.deepEqual(received, ['alice/marker', 'alice/ok/0', 'alice/ok/1', 'alice/ok/2', 'other/ok/0', 'other/ok/1', 'other/ok/2'])
        assert.equal(alice.client.connected, true, 'refusals keep the connection')
        assert.equal((await refusals(node)).publish, counted + 9)
        alice.client.end(true)
        admin.client.end(true)
      })
    }

    test('a rule without filters allows everything; the catch-all rule applies to others', T, async () => {
      const admin = await connect(node, { protocolVersion: 5, clientId: 'admin-free' })
      const cam = await connect(node, { protocolVersion: 5, clientId: 'cam-1' })
      assert.deepEqual(await subackCodes(admin, ['locked/#', 'drop/#']), [1, 1])
      assert.equal(await publish(admin, 'locked/a', 'x', 1), undefined)
      assert.equal((await publish(cam, 'locked/a', 'x', 1))?.code, 0x87)
      assert.deepEqual(await subackCodes(cam, ['locked/#', 'shared/#']), [0x87, 1])
      assert.equal(await publish(cam, 'shared/a', 'x', 1), undefined)
      await waitFor(() => admin.messages.some((m) => m.topic === 'locked/a'), { message: 'admin receives locked/a' })
      admin.client.end(true)
      cam.client.end(true)
    })

    test('deny carve-out inside an allowed subscription is enforced per message', T, async () => {
      const admin = await connect(node, { protocolVersion: 5, clientId: 'admin-pub' })
      const alice = await connect(node, { protocolVersion: 5, username: 'alice', password: 'alice-pw' })
      assert.deepEqual(await subackCodes(alice, ['alice/#']), [1])
      assert.equal(await publish(admin, 'alice/secret/x', 'hidden', 1), undefined)
      assert.equal(await publish(admin, 'alice/x', 'visible', 1), undefined)
      await waitFor(() => alice.messages.some((m) => m.topic === 'alice/x'), { message: 'alice/x delivered' })
      assert.deepEqual(alice.messages.map((m) => m.topic), ['alice/x'])
      alice.client.end(true)
      admin.client.end(true)
    })
  })
})

describe('refused QoS 2 and Receive Maximum', () => {
  let node: TestNode
  before(async () => { node = await startNode({ mqtt: { max_inflight: 2, acl: [{ filters: { 'no/#': 0 } }] } }) })
  after(async () => {
    for (const c of open) c.end(true)
    await node?.stop()
  })

  // MQTT 5 §4.3.3: a PUBREC with a reason code >= 0x80 ends the QoS 2 flow, so
  // the packet id is free again and no PUBREL follows; counting it as
  // unreleased would disconnect the client (0x93) after max_inflight refusals.
  test('v5: refused QoS 2 publishes do not use up the Receive Maximum', T, async () => {
    const c = await connect(node, { protocolVersion: 5 })
    const closed = new Promise<never>((_resolve, reject) => c.client.once('close', () => reject(new Error('connection closed'))))
    closed.catch(() => {})
    for (let i = 0; i < 4; i++) assert.equal((await Promise.race([publish(c, 'no/x', 'x', 2), closed]))?.code, 0x87, `refusal ${i}`)
    assert.equal(c.client.connected, true)
    c.client.end(true)
  })
})

describe('MQTT without auth rules', () => {
  let node: TestNode
  before(async () => { node = await startNode({}, await freeLoopbackAddress()) })
  after(async () => {
    for (const c of open) c.end(true)
    await node?.stop()
  })

  test('anonymous clients connect, publish and subscribe anything', T, async () => {
    const c = await connect(node, { protocolVersion: 5 })
    assert.deepEqual(await subackCodes(c, ['#']), [1])
    assert.equal(await publish(c, 'any/topic', 'x', 1), undefined)
    await waitFor(() => c.messages.some((m) => m.topic === 'any/topic'), { message: 'own message' })
    assert.deepEqual(await refusals(node), { connect: 0, publish: 0, subscribe: 0 })
    c.client.end(true)
  })
})
