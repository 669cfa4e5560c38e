// End to end: `broker-ha admin` in a real pseudo-terminal (tmux, 80x24)
// against a real two-node cluster with real MQTT clients. The operator opens
// Clients, filters, disconnects a client behind the confirmation, and quits;
// the client is really disconnected, the screen says so, and the terminal is
// restored. Needs tmux (CI installs it); skipped with a message otherwise.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { BIN, startNode, type ConfigOverrides, type TestNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { ApiClient } from '../../src/client/index.js'

const run = promisify(execFile)

function tmuxVersion (): string | undefined {
  try {
    return execFileSync('tmux', ['-V'], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}

const TMUX = tmuxVersion()
const SOCKET = `broker-ha-admin-test-${process.pid}`
const SESSION = 'admin'
const tmux = async (...args: string[]): Promise<string> => (await run('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' })).stdout
const screen = (): Promise<string> => tmux('capture-pane', '-p', '-t', SESSION)
/** Keys into the pane: `-l` sends the text as it is, in one write. */
const key = (k: string, literal = false): Promise<string> => tmux('send-keys', '-t', SESSION, ...(literal ? ['-l', k] : [k]))

async function screenWith (check: (s: string) => boolean, message: string, timeout = 10_000): Promise<string> {
  let last = ''
  try {
    return await waitFor(async () => { last = await screen(); return check(last) ? last : undefined }, { timeout, interval: 50, message })
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- screen ---\n${last}`, { cause: err })
  }
}

const cleanups: Array<() => Promise<unknown>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

let a: TestNode
let b: TestNode
const mqttClients: MqttClient[] = []

before(async () => {
  if (TMUX === undefined) return
  const hosts = [await freeLoopbackAddress(), await freeLoopbackAddress()]
  const config = (host: string): ConfigOverrides => ({
    api: { user: { admin: 'pw' } },
    // With api.user set, members reach each other's API with the credential derived from the cluster key.
    cluster: { config: { secret_key: 'admin-tui-test-key-of-32-bytes!!', probe_interval: 400, probe_timeout: 200, gossip_interval: 50, push_pull_interval: 1000 } },
    discovery: { seeds: hosts.filter((h) => h !== host).map((h) => `${h}:7946`), formation_wait_min: 0, formation_wait_max: 200 }
  })
  ;[a, b] = await Promise.all([startNode(config(hosts[0]!), hosts[0]), startNode(config(hosts[1]!), hosts[1])]) as [TestNode, TestNode]
  cleanups.push(() => a.stop(), () => b.stop())
  const api = new ApiClient({ baseUrl: a.apiUrl, username: 'admin', password: 'pw' })
  await waitFor(async () => (await api.members()).filter((m) => m.State === 0).length === 2, { timeout: 15_000, message: 'two alive members' })
  await api.close()
  cleanups.push(async () => { for (const c of mqttClients) await c.endAsync(true) })
})

test('admin in a terminal: Clients view, filter, disconnect with confirmation, quit restores the screen', { skip: TMUX === undefined ? 'tmux is not installed (apt-get install tmux): the pseudo-terminal test needs it' : false }, async () => {
  const victim = await mqtt.connectAsync(b.mqttUrl, { clientId: 'victim-7', protocolVersion: 5, reconnectPeriod: 0 })
  const bystander = await mqtt.connectAsync(a.mqttUrl, { clientId: 'bystander', reconnectPeriod: 0 })
  mqttClients.push(victim, bystander)
  let disconnectReason: number | undefined
  let closed = false
  victim.on('disconnect', (packet) => { disconnectReason = packet.reasonCode })
  victim.on('close', () => { closed = true })
  const nameB = b.config.cluster.name

  // Its own tmux server (socket), killed in `after`; `exec cat` keeps the pane open after admin exits so its exit status can be read.
  const command = `env TERM=xterm-256color BROKER_ADMIN_USER=admin:pw ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} admin --url ${a.apiUrl} --refresh 500; echo ADMIN-EXIT=$?; exec cat`
  await tmux('new-session', '-d', '-s', SESSION, '-x', '80', '-y', '24', command)
  cleanups.push(() => tmux('kill-server'))

  // Probes this fast can make B suspect for a moment on a loaded machine
  // ("1 of 2 members alive", which also contains "2 members alive"): the
  // screen is awaited until it shows both alive, which it must within the deadline.
  const bAlive = new RegExp(`${nameB}\\s+alive\\s+${b.host.replace(/\./g, '\\.')}:7946`)
  let s = await screenWith((x) => /no alerts: 2 members alive/.test(x) && x.includes('2 clients') && bAlive.test(x), 'the overview with both members alive')
  assert.match(s, /broker-ha admin {2}1 Overview {2}2 Clients/)

  await key('2')
  s = await screenWith((x) => x.includes('CLIENT ID') && x.includes('victim-7'), 'the clients view')
  assert.match(s, /bystander/)
  await key('/')
  await screenWith((x) => x.includes('filter: █'), 'filter input')
  await key('victim', true)
  await screenWith((x) => x.includes('filter: victim█'), 'filter typed')
  await key('Enter')
  s = await screenWith((x) => x.includes('filter: victim  (Esc clears)'), 'filter kept')
  assert.match(s, /1 of 2 clients/)
  assert.match(s, new RegExp(`› victim-7\\s+${nameB}`))
  assert.doesNotMatch(s, /bystander/)
  assert.match(s, new RegExp(`victim-7 on ${nameB} · user \\(none\\) · MQTT 5\\.0`))

  await key('K')
  await screenWith((x) => x.includes(`Disconnect victim-7 from ${nameB}?`), 'the confirmation dialog')
  assert.equal(closed, false, 'nothing happens before the confirmation')
  await key('y')
  await screenWith((x) => x.includes(`victim-7 disconnected from ${nameB}`), 'the outcome on screen')
  await waitFor(() => closed, { message: 'the MQTT client to be disconnected' })
  assert.equal(disconnectReason, 0x98, 'MQTT 5 DISCONNECT with reason 0x98 (administrative action)')
  assert.equal(bystander.connected, true, 'the other client stays')
  await screenWith((x) => x.includes('0 of 1 client') && x.includes('no client matches the filter'), 'the list without the client')

  await key('q')
  s = await screenWith((x) => x.includes('ADMIN-EXIT='), 'admin to exit')
  assert.match(s, /ADMIN-EXIT=0/)
  assert.doesNotMatch(s, /broker-ha admin {2}1 Overview/, 'the alternate screen is gone: the terminal is as before')
  const cursor = (await tmux('display-message', '-p', '-t', SESSION, '#{cursor_flag}')).trim()
  assert.equal(cursor, '1', 'the cursor is visible again')
})

test('admin in a terminal: keys that arrive together are each handled (send-keys j j, /sub in one write)', { skip: TMUX === undefined ? 'tmux is not installed' : false }, async () => {
  for (const id of ['chunk-a', 'chunk-b', 'chunk-c', 'sub-1', 'sub-2']) mqttClients.push(await mqtt.connectAsync(a.mqttUrl, { clientId: id, reconnectPeriod: 0 }))
  const session = 'chunks'
  const command = `env TERM=xterm-256color BROKER_ADMIN_USER=admin:pw ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} admin --url ${a.apiUrl} --refresh 500 --view clients; echo ADMIN-EXIT=$?; exec cat`
  await tmux('new-session', '-d', '-s', session, '-x', '80', '-y', '24', command)
  cleanups.push(() => tmux('kill-server'))
  const send = (...keys: string[]): Promise<string> => tmux('send-keys', '-t', session, ...keys)
  const pane = (): Promise<string> => tmux('capture-pane', '-p', '-t', session)
  const paneWith = async (check: (s: string) => boolean, message: string): Promise<string> => {
    let last = ''
    try {
      return await waitFor(async () => { last = await pane(); return check(last) ? last : undefined }, { timeout: 10_000, interval: 50, message })
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${last}`, { cause: err })
    }
  }
  await paneWith((x) => x.includes('CLIENT ID') && x.includes('sub-2'), 'the clients view with every client')
  // "/chunk" and its Enter in one write each: the filter opens and takes the text.
  await send('-l', '/chunk')
  await paneWith((x) => x.includes('filter: chunk█'), 'the filter typed in one write')
  await send('Enter')
  let s = await paneWith((x) => x.includes('filter: chunk  (Esc clears)'), 'the filter kept')
  assert.match(s, /3 of \d+ clients/)
  assert.match(s, /› chunk-a/)
  await send('j', 'j')
  s = await paneWith((x) => x.includes('› chunk-c'), 'two moves down from one send-keys j j')
  assert.doesNotMatch(s, /› chunk-b/)
  await send('Escape')
  await paneWith((x) => x.includes('type / to filter'), 'Esc clears the filter')
  await send('/', 's', 'u', 'b')
  s = await paneWith((x) => x.includes('filter: sub█'), 'send-keys / s u b opens the filter and types "sub"')
  assert.match(s, /2 of \d+ clients/)
  await send('Enter', 'q')
  s = await paneWith((x) => x.includes('ADMIN-EXIT='), 'Enter then q in one send-keys: the filter is kept, then the UI quits')
  assert.match(s, /ADMIN-EXIT=0/)
})

test('admin in a terminal: the Topics filter replaces #; a malformed one is refused with its reason; Esc restores #', { skip: TMUX === undefined ? 'tmux is not installed' : false }, async () => {
  const publisher = await mqtt.connectAsync(a.mqttUrl, { clientId: 'retainer', reconnectPeriod: 0 })
  mqttClients.push(publisher)
  await publisher.publishAsync('tui/home/temp', '21.5', { retain: true, qos: 1 })
  await publisher.publishAsync('elsewhere/x', 'y', { retain: true, qos: 1 })
  const session = 'topics'
  const command = `env TERM=xterm-256color BROKER_ADMIN_USER=admin:pw ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} admin --url ${a.apiUrl} --refresh 500 --view topics; echo ADMIN-EXIT=$?; exec cat`
  await tmux('new-session', '-d', '-s', session, '-x', '80', '-y', '24', command)
  cleanups.push(() => tmux('kill-server'))
  const send = (...keys: string[]): Promise<string> => tmux('send-keys', '-t', session, ...keys)
  let last = ''
  const paneWith = (check: (s: string) => boolean, message: string): Promise<string> =>
    waitFor(async () => { last = await tmux('capture-pane', '-p', '-t', session); return check(last) ? last : undefined }, { timeout: 10_000, interval: 50, message })
      .catch((err: Error) => { throw new Error(`${err.message}\n--- screen ---\n${last}`, { cause: err }) })
  await paneWith((x) => x.includes('retained filter (/): #') && x.includes('tui/home/temp') && x.includes('elsewhere/x'), 'every retained topic under #')
  await send('-l', '/tui/#')
  await paneWith((x) => x.includes('retained filter (/): tui/#█'), 'a fresh filter, not appended to #')
  await send('Enter')
  let s = await paneWith((x) => x.includes('retained filter (/): tui/#') && x.includes('tui/home/temp') && !x.includes('elsewhere/x'), 'only tui/#')
  assert.match(s, /tui\/home\/temp/)
  assert.match(s, /1 topics?/)
  await send('-l', '/a/#/b')
  await send('Enter')
  s = await paneWith((x) => x.includes('✖ topic "a/#/b" is not a valid MQTT topic filter'), 'the refusal with its reason')
  assert.doesNotMatch(s, /no answer from/)
  await send('Escape')
  await paneWith((x) => x.includes('retained filter (/): #') && x.includes('elsewhere/x') && !x.includes('✖'), 'Esc: back to #')
  await send('q')
  s = await paneWith((x) => x.includes('ADMIN-EXIT='), 'admin to exit')
  assert.match(s, /ADMIN-EXIT=0/)
})

test('admin in a terminal: Ctrl-C exits cleanly; an unreachable URL is explained and retried', { skip: TMUX === undefined ? 'tmux is not installed' : false }, async () => {
  const host = await freeLoopbackAddress()
  const session = 'unreachable'
  const command = `env TERM=xterm-256color ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} admin --url http://${host}:8080 --refresh 500; echo ADMIN-EXIT=$?; exec cat`
  await tmux('new-session', '-d', '-s', session, '-x', '80', '-y', '24', command)
  cleanups.push(() => tmux('kill-server'))
  const pane = (): Promise<string> => tmux('capture-pane', '-p', '-t', session)
  let last = ''
  const text = await waitFor(async () => { last = await pane(); return last.includes('retrying in') ? last : undefined }, { timeout: 10_000, message: `retry message; screen:\n${last}` })
  assert.match(text.replace(/\s*\n\s*/g, ' '), new RegExp(`✖ cannot reach http://${host.replace(/\./g, '\\.')}:8080: connection refused · retrying in \\d+s`))
  await tmux('send-keys', '-t', session, 'C-c')
  const after = await waitFor(async () => { last = await pane(); return last.includes('ADMIN-EXIT=') ? last : undefined }, { timeout: 10_000, message: 'exit after Ctrl-C' })
  assert.match(after, /ADMIN-EXIT=0/)
  assert.doesNotMatch(after, /broker-ha admin {2}1 Overview/)
})
