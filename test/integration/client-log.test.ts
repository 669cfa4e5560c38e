// A log line per client connect and disconnect, with the reason (issue 19,
// item 5): what an operator greps for a device. Real node, real clients; the
// node's pino output is collected as JSON.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startLoggedNode, type ConfigOverrides, type LogLine as Line } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { connect, nextDisconnect, RawClient, uniqueId } from '../helpers/mqtt-clients.js'

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

async function start (overrides: ConfigOverrides = {}): Promise<{ host: string, url: string, api: string, lines: Line[] }> {
  const { node, host, config, lines } = await startLoggedNode(overrides)
  cleanups.push(() => node.stop())
  return { host, url: `mqtt://${host}:${config.mqtt.port}`, api: `http://${host}:${config.api.port}`, lines }
}

const about = (lines: Line[], id: string, msg: string): Line[] => lines.filter((l) => l.client === id && l.msg === msg)

test('a connect says from where, as whom and how; a DISCONNECT and a takeover say why the connection went', async () => {
  const { url, host, lines } = await start({ mqtt: { auth: [{ username: 'sensor', password: 'pw', allow: true }] } as never })
  const id = uniqueId('logged')
  const first = await connect(url, { clientId: id, clean: false, protocolVersion: 4, keepalive: 30, username: 'sensor', password: 'pw' })
  const [connected] = await waitFor(() => { const l = about(lines, id, 'client connected'); return l.length === 1 ? l : undefined }, { message: 'the connect line' })
  assert.match(String(connected!.remote), new RegExp(`^127\\.\\d+\\.\\d+\\.\\d+:\\d+$`))
  assert.equal(connected!.user, 'sensor')
  assert.equal(connected!.protocol, '3.1.1')
  assert.equal(connected!.keepalive, 30)
  assert.equal(connected!.session, 'persistent')
  assert.equal(connected!.sessionPresent, false)
  assert.equal(JSON.stringify(lines).includes('"pw"'), false, 'no password in the log')

  // The same client id again on this node: the first connection is taken over.
  const second = await connect(url, { clientId: id, clean: false, protocolVersion: 4, keepalive: 30, username: 'sensor', password: 'pw' })
  first.end(true)
  const [gone] = await waitFor(() => { const l = about(lines, id, 'client disconnected'); return l.length === 1 ? l : undefined }, { message: 'the takeover line' })
  assert.match(String(gone!.reason), /^taken over by a new connection on this node from 127\./)
  const again = await waitFor(() => { const l = about(lines, id, 'client connected'); return l.length === 2 ? l : undefined }, { message: 'the second connect line' })
  assert.equal(again[1]!.sessionPresent, false, 'a session without subscriptions or queue is not present (3.1.1)')

  await second.endAsync()
  const lines2 = await waitFor(() => { const l = about(lines, id, 'client disconnected'); return l.length === 2 ? l : undefined }, { message: 'the DISCONNECT line' })
  assert.equal(lines2[1]!.reason, 'client sent DISCONNECT')
  assert.match(String(lines2[1]!.connectedFor), /^\d+\.\ds$/)
  assert.ok(host.startsWith('127.'))
})

test('a keep alive timeout, a dropped socket and an operator\'s client/stop are told apart', async () => {
  const { host, url, api, lines } = await start()
  const port = Number(new URL(url).port)

  const silent = await RawClient.open(host, port)
  await silent.connect('silent-one', 4, { keepalive: 1 })
  await silent.waitClosed(5000)
  const [timedOut] = await waitFor(() => { const l = about(lines, 'silent-one', 'client disconnected'); return l.length === 1 ? l : undefined }, { message: 'the keep alive line' })
  assert.equal(timedOut!.reason, 'keep alive timeout')
  assert.equal(about(lines, 'silent-one', 'client connected')[0]!.keepalive, 1)

  const dropped = await RawClient.open(host, port)
  await dropped.connect('dropped-one')
  dropped.destroy()
  const [cut] = await waitFor(() => { const l = about(lines, 'dropped-one', 'client disconnected'); return l.length === 1 ? l : undefined }, { message: 'the dropped line' })
  assert.match(String(cut!.reason), /connection (closed|reset) by the client or the network/)

  const v5 = await connect(url, { clientId: 'stopped-one', protocolVersion: 5 })
  cleanups.push(() => v5.endAsync(true))
  const disconnect = nextDisconnect(v5)
  const res = await fetch(`${api}/api/mqtt/client/stop`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"client_id":"stopped-one"}' })
  assert.equal(res.status, 200)
  assert.equal(((await disconnect) as { reasonCode?: number } | undefined)?.reasonCode, 0x98)
  const [stopped] = await waitFor(() => { const l = about(lines, 'stopped-one', 'client disconnected'); return l.length === 1 ? l : undefined }, { message: 'the client/stop line' })
  assert.equal(stopped!.reason, 'disconnected by an operator (client/stop)')
  assert.equal(about(lines, 'stopped-one', 'client connected')[0]!.protocol, '5.0')
})

test('log.clients: false keeps the log quiet about clients', async () => {
  const { url, api, lines } = await start({ log: { clients: false } } as ConfigOverrides)
  const id = uniqueId('quiet')
  const c = await connect(url, { clientId: id })
  const listed = async (): Promise<boolean> => ((await (await fetch(`${api}/api/mqtt/clients`)).json()) as Array<{ ID: string }>).some((x) => x.ID === id)
  assert.equal(await listed(), true)
  await c.endAsync()
  // Gone from the node: its disconnect was handled, and would have been logged.
  await waitFor(async () => !(await listed()), { message: 'the client gone from /api/mqtt/clients' })
  assert.ok(lines.some((l) => l.msg === 'MQTT listening'), 'the node\'s own lines still come')
  assert.deepEqual(lines.filter((l) => l.client === id), [])
})

test('an MQTT 5 PUBLISH refused by the ACL keeps the connection: its later DISCONNECT is the reason, and no client error is logged', async () => {
  const { url, lines } = await start({ mqtt: { acl: [{ filters: { 'open/#': 3, 'closed/#': 0 } }] } as never })
  const id = uniqueId('refused')
  const c = await connect(url, { clientId: id, protocolVersion: 5 })
  const refused = await new Promise<(Error & { code?: number }) | undefined>((resolve) => c.publish('closed/x', 'no', { qos: 1 }, (err) => resolve(err ?? undefined)))
  assert.equal(refused?.code, 0x87, 'PUBACK 0x87')
  await c.publishAsync('open/x', 'yes', { qos: 1 })
  await c.endAsync()
  const [gone] = await waitFor(() => { const l = about(lines, id, 'client disconnected'); return l.length === 1 ? l : undefined }, { message: 'the disconnect line' })
  assert.equal(gone!.reason, 'client sent DISCONNECT')
  assert.equal(lines.filter((l) => l.msg === 'MQTT client error' && l.client === id).length, 0)
  assert.equal(lines.filter((l) => l.msg === 'MQTT publish refused: not authorized' && l.clientId === id).length, 1)
})
