// mqtt-packet's debug calls do nothing unless DEBUG enables them at start
// (quiet-debug.ts). Each case runs in a fresh process: the factory has to
// be in place before mqtt-packet loads, and DEBUG is read when debug loads.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const quietDebug = fileURLToPath(new URL('../../../src/server/mqtt/quiet-debug.js', import.meta.url))

/** Runs a script after quietPacketDebug() in a fresh process; returns what it printed. */
function run (body: string, env: Record<string, string> = {}): { stdout: string, stderr: string, status: number | null } {
  const script = `
    import { createRequire } from 'node:module'
    import { quietPacketDebug, silentDebug } from ${JSON.stringify(quietDebug)}
    const installed = quietPacketDebug()
    const require = createRequire(${JSON.stringify(quietDebug)})
    ${body}
  `
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' })
  return { stdout: r.stdout, stderr: r.stderr, status: r.status }
}

test('mqtt-packet\'s namespaces get a function that does nothing; other namespaces get the real debug', () => {
  const r = run(`
    const debug = require('debug')
    console.log(JSON.stringify({
      installed,
      parser: debug('mqtt-packet:parser') === silentDebug,
      writer: debug('mqtt-packet:writeToStream') === silentDebug,
      other: debug('mqtt:client') === silentDebug,
      otherIsDebug: typeof debug('mqtt:client').extend === 'function',
      again: quietPacketDebug()
    }))
    // And mqtt-packet still parses and writes.
    const mqttPacket = require('mqtt-packet')
    const bytes = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, messageId: 7 })
    const parser = mqttPacket.parser()
    parser.on('packet', (p) => console.log(JSON.stringify({ topic: p.topic, messageId: p.messageId })))
    parser.parse(bytes)
  `)
  assert.equal(r.status, 0, r.stderr)
  const [flags, packet] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.deepEqual(flags, { installed: true, parser: true, writer: true, other: false, otherIsDebug: true, again: true })
  assert.deepEqual(packet, { topic: 't', messageId: 7 })
  assert.equal(r.stderr, '')
})

test('DEBUG=mqtt-packet:* at start still traces every packet', () => {
  const r = run(`
    const mqttPacket = require('mqtt-packet')
    mqttPacket.generate({ cmd: 'puback', messageId: 7 })
    console.log(require('debug')('mqtt-packet:parser') === silentDebug)
  `, { DEBUG: 'mqtt-packet:*' })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'false')
  assert.match(r.stderr, /mqtt-packet:writeToStream/)
})

test('too late once mqtt-packet is loaded: nothing changes, and it says so', () => {
  const late = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { createRequire } from 'node:module'
    const require = createRequire(${JSON.stringify(quietDebug)})
    require('mqtt-packet')
    const { quietPacketDebug, silentDebug } = await import(${JSON.stringify(quietDebug)})
    console.log(JSON.stringify({ installed: quietPacketDebug(), parser: require('debug')('mqtt-packet:parser') === silentDebug }))
  `], { env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' })
  assert.equal(late.status, 0, late.stderr)
  assert.deepEqual(JSON.parse(late.stdout.trim()), { installed: false, parser: false })
})
