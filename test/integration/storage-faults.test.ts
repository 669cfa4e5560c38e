// Bad state on disk (docs/storage.md): a corrupted or truncated store, a
// store from a newer version or another cluster, and a full store. A node
// never crash-loops silently, and a full store refuses publishes without
// dropping the client.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, statSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { startNode, startProcessNode, type ProcessNode, type ConfigOverrides } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import type { MqttClient } from 'mqtt'
import { connect, endAll, metricValue } from '../helpers/mqtt-clients.js'
import { waitFor } from '../helpers/wait.js'
import { FILE_NAME } from '../../src/server/storage/durable-store.js'
import { LOCK_FILE } from '../../src/server/storage/dir-lock.js'

function tmpDir (t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-storage-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Starts a node that writes a few retained messages to `dir`, then kills it. */
async function fillStore (dir: string, host: string, overrides: ConfigOverrides = {}): Promise<void> {
  const node = await startProcessNode({ ...overrides, storage: { dir, sync: 'always' } }, { host })
  const pub = await connect(node.mqttUrl)
  for (let i = 0; i < 200; i++) await pub.publishAsync(`state/${i}`, Buffer.alloc(200, i), { qos: 1, retain: true })
  await endAll(pub)
  await node.stop('SIGKILL')
}

async function exitOf (node: ProcessNode): Promise<number | string> {
  await waitFor(() => node.child.exitCode !== null, { timeout: 20_000, message: 'the node to exit' })
  return node.child.exitCode!
}

test('a corrupted or truncated store stops the node with a clear error (exit 2); --reset-storage and on_corruption: reset start it empty', async (t) => {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  const file = join(dir, FILE_NAME)
  for (const damage of ['overwritten', 'truncated'] as const) {
    await fillStore(dir, host)
    if (damage === 'overwritten') {
      const b = readFileSync(file)
      for (let i = 0; i < b.length; i += 7) b[i]! ^= 0x5a
      writeFileSync(file, b)
    } else {
      truncateSync(file, Math.floor(statSync(file).size / 3))
    }
    const refused = await startProcessNode({ storage: { dir } }, { host, waitUntilListening: false })
    assert.equal(await exitOf(refused), 2, `${damage}: exit status 2`)
    assert.match(refused.output(), /cannot be read .*--reset-storage/, `${damage}: the error says what happened and what to do`)
    assert.doesNotMatch(refused.output(), /MQTT listening/)

    const reset = await startProcessNode({ storage: { dir } }, { host, args: ['--reset-storage'] })
    assert.match(reset.output(), /moved aside; starting empty/)
    assert.ok(readdirSync(dir).some((f) => f.startsWith(`${FILE_NAME}.broken-`)), 'the broken store is kept aside')
    // Started empty and usable: a new retained write sticks.
    const pub = await connect(reset.mqttUrl)
    await pub.publishAsync('after/reset', 'ok', { qos: 1, retain: true })
    await endAll(pub)
    await reset.stop('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }

  // storage.on_corruption: reset, the unattended way: started, loudly, counted.
  await fillStore(dir, host)
  const b = readFileSync(file)
  for (let i = 0; i < b.length; i += 7) b[i]! ^= 0x5a
  writeFileSync(file, b)
  const auto = await startProcessNode({ storage: { dir, on_corruption: 'reset' } }, { host })
  t.after(async () => { await auto.stop('SIGKILL') })
  assert.match(auto.output(), /STORE CORRUPTED: moved aside, starting EMPTY/)
  const metrics = await (await fetch(`${auto.apiUrl}/metrics`)).text()
  assert.match(metrics, /broker_storage_errors_total\{kind="reset"\} 1/)
})

test('a store from a newer version, or from another cluster, is refused with exit 2', async (t) => {
  const dir = tmpDir(t)
  const host = await freeLoopbackAddress()
  await fillStore(dir, host, { cluster: { config: { secret_key: 'k'.repeat(32) } } })

  const other = await startProcessNode({ storage: { dir }, cluster: { config: { secret_key: 'x'.repeat(32) } } }, { host, waitUntilListening: false })
  assert.equal(await exitOf(other), 2)
  assert.match(other.output(), /belongs to another cluster/)

  // The old key as a secondary key (a rotation in progress) still opens it.
  const rotated = await startProcessNode({ storage: { dir }, cluster: { config: { secret_key: 'x'.repeat(32), secondary_keys: ['k'.repeat(32)] } } }, { host })
  await rotated.stop('SIGKILL')

  const db = open({ path: join(dir, FILE_NAME) })
  await db.put('m\u0000format', 99)
  await db.close()
  const newer = await startProcessNode({ storage: { dir }, cluster: { config: { secret_key: 'x'.repeat(32) } } }, { host, waitUntilListening: false })
  assert.equal(await exitOf(newer), 2)
  assert.match(newer.output(), /format 99, written by a newer broker-ha/)
})

test('a full store refuses QoS 1 and retained publishes with 0x97 on MQTT 5, keeps the client, and takes them again once space frees', async (t) => {
  const dir = tmpDir(t)
  const node = await startNode({ storage: { dir, sync: 'batch', max_size: 400_000 } })
  t.after(async () => { await node.stop() })
  const client = await connect(node.mqttUrl, { protocolVersion: 5 })
  t.after(async () => { await endAll(client) })
  const { stored, refusal } = await fillUntilRefused(client, 16_000, 200)
  assert.ok(refusal !== undefined, 'a publish was refused before 200 x 16 kB (the limit is 400 kB)')
  assert.equal(refusal.code, 0x97, 'quota exceeded')
  assert.ok(stored >= 10, `some were stored first (${stored})`)
  assert.equal(client.connected, true, 'the client stays connected')
  assert.equal(await metricValue(node.node.registry, 'broker_storage_full'), 1)
  await assert.rejects(client.publishAsync('plain/qos1', 'x', { qos: 1 }), (err: Error & { code?: number }) => err.code === 0x97)
  // QoS 0 without retain needs no storage: it still goes.
  await client.publishAsync('plain/qos0', 'x', { qos: 0 })

  // Space frees: the retained topics are cleared (allowed while full), and publishes are taken again.
  await freeAndRetry(client, stored, 10_000)
  assert.equal(await metricValue(node.node.registry, 'broker_storage_full'), 0)
  assert.equal(await metricValue(node.node.registry, 'broker_storage_errors_total', { kind: 'full' }), 1)
})

test('a really full disk (a 2 MiB tmpfs): refused with 0x97, the client stays, the node recovers once retained topics are cleared', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-tmpfs-'))
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'ignore' }).status === 0
  const held: { node?: ProcessNode, client?: MqttClient } = {}
  // One hook, in this order: the node must be gone before its file system is.
  t.after(async () => {
    await endAll(held.client)
    await held.node?.stop('SIGKILL')
    if (mounted) spawnSync('umount', [dir], { stdio: 'ignore' })
    rmSync(dir, { recursive: true, force: true })
  })
  if (!mounted) { t.skip('mounting a tmpfs needs root (mount -t tmpfs): not available here'); return }
  // No size limit of our own: the disk is the limit. A real process: lmdb-js' failed commits must not end it.
  const node = held.node = await startProcessNode({ storage: { dir: join(dir, 'data'), sync: 'always', max_size: 0 } })
  const api = node.apiUrl
  const metric = async (line: RegExp): Promise<boolean> => line.test(await (await fetch(`${api}/metrics`)).text())
  const client = held.client = await connect(node.mqttUrl, { protocolVersion: 5 })
  const { stored, refusal } = await fillUntilRefused(client, 20_000, 300, node.output)
  assert.equal(refusal?.code, 0x97, `refused with quota exceeded after ${stored} x 20 kB on 2 MiB`)
  assert.equal(client.connected, true)
  assert.ok(await metric(/broker_storage_errors_total\{kind="write"\} [1-9]/), 'the failed commit is counted')
  assert.ok(await metric(/broker_storage_full 1/))
  await freeAndRetry(client, stored, 15_000, node.output)
  assert.ok(await metric(/broker_storage_full 0/))
  assert.equal(node.child.exitCode, null, 'the node is still running')
})

/**
 * A publish's acknowledgement, or a failure naming the publish after
 * `ms`: a PUBACK that never comes is a broken promise to the client, and
 * would otherwise show only as the file's timeout. `context`: the node's
 * output, for a process node.
 */
class NoAnswer extends Error {}

async function acked (p: Promise<unknown>, what: string, context?: () => string, ms = 20_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new NoAnswer(`no answer to ${what} within ${ms} ms${context === undefined ? '' : `; node output:\n${context().slice(-4000)}`}`)) }, ms)
  })
  try {
    await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Retained QoS 1 publishes of `bytes` each until one is refused (at most `max`). */
async function fillUntilRefused (client: MqttClient, bytes: number, max: number, context?: () => string): Promise<{ stored: number, refusal: (Error & { code?: number }) | undefined }> {
  const payload = Buffer.alloc(bytes, 1)
  let stored = 0
  for (let i = 0; i < max; i++) {
    try {
      await acked(client.publishAsync(`big/${i}`, payload, { qos: 1, retain: true }), `retained QoS 1 publish big/${i}`, context)
      stored++
    } catch (err) {
      if (err instanceof NoAnswer) throw err
      return { stored, refusal: err as Error & { code?: number } }
    }
  }
  return { stored, refusal: undefined }
}

/** Clears the retained topics fillUntilRefused stored (allowed while full), then waits until a QoS 1 publish is taken again. */
async function freeAndRetry (client: MqttClient, stored: number, timeout: number, context?: () => string): Promise<void> {
  for (let i = 0; i < stored; i++) await acked(client.publishAsync(`big/${i}`, '', { qos: 1, retain: true }), `the clear of big/${i}`, context)
  await waitFor(async () => {
    try {
      await acked(client.publishAsync('plain/qos1', 'again', { qos: 1 }), 'a QoS 1 publish while full', context)
      return true
    } catch (err) {
      if (err instanceof NoAnswer) throw err
      return false
    }
  }, { timeout, message: 'a QoS 1 publish to be accepted again' })
}

test('two nodes on one storage.dir: the second is refused (exit 2) while the first runs, even with --reset-storage; a lock left by a killed node is taken over', async (t) => {
  const dir = tmpDir(t)
  const hostA = await freeLoopbackAddress()
  const hostB = await freeLoopbackAddress()
  const first = await startProcessNode({ storage: { dir, sync: 'always' } }, { host: hostA })
  t.after(async () => { await first.stop('SIGKILL') })
  const pub = await connect(first.mqttUrl)
  await pub.publishAsync('kept/by/first', 'on disk', { qos: 1, retain: true })
  await endAll(pub)

  for (const args of [[], ['--reset-storage']]) {
    const second = await startProcessNode({ storage: { dir } }, { host: hostB, waitUntilListening: false, args })
    assert.equal(await exitOf(second), 2, `${args.join(' ')}: exit status 2`)
    assert.match(second.output(), /storage\.dir .* is in use by pid \d+ on host .*two nodes must not share one store/)
    assert.doesNotMatch(second.output(), /moved aside/)
  }
  assert.ok(!readdirSync(dir).some((f) => f.includes('.broken-') || f.includes('.reset-')), 'the live store was not moved aside')

  // The first is killed: its lock is left behind, and taken over by the next node (no operator needed).
  await first.stop('SIGKILL')
  assert.ok(readdirSync(dir).includes(LOCK_FILE))
  const next = await startProcessNode({ storage: { dir } }, { host: hostB })
  const reader = await connect(next.mqttUrl)
  const got: string[] = []
  reader.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`))
  await reader.subscribeAsync('kept/#', { qos: 1 })
  await waitFor(() => got.length === 1, { message: 'the retained message the first node stored' })
  assert.deepEqual(got, ['kept/by/first=on disk'])
  await endAll(reader)
  // A clean stop gives the lock up.
  await next.stop('SIGTERM')
  assert.ok(!readdirSync(dir).includes(LOCK_FILE), 'the lock is removed on stop')
})
