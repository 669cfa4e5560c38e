// The executable as a user runs it: exit statuses, --help, --version,
// --check-config, and config errors stopping start-up before any port opens.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { ROOT } from '../helpers/node.js'
import { runCli, type Run } from '../helpers/run.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { verifyPassword } from '../../src/security/password.js'

function run (args: string[], options: { env?: Record<string, string>, input?: string, cwd?: string } = {}): Promise<Run> {
  return runCli(args, { env: { PATH: process.env.PATH ?? '', ...options.env }, input: options.input, cwd: options.cwd ?? tmpdir() })
}

function tempConfig (text: string): { path: string, cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-cli-'))
  const path = join(dir, 'config.yaml')
  writeFileSync(path, text)
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

test('--version prints the package version', async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const r = await run(['--version'])
  assert.equal(r.code, 0)
  assert.equal(r.stdout.trim(), version)
})

test('--help works on the program and every subcommand', async () => {
  const top = await run(['--help'])
  assert.equal(top.code, 0)
  for (const name of ['serve', 'admin', 'chaos', 'hash-password']) {
    assert.match(top.stdout, new RegExp(`\\b${name}\\b`))
    const sub = await run([name, '--help'])
    assert.equal(sub.code, 0, `${name} --help`)
    assert.match(sub.stdout, new RegExp(`Usage: broker-ha ${name}`))
  }
})

test('bad usage exits with status 2', async () => {
  const unknownOption = await run(['serve', '--no-such-flag'])
  assert.equal(unknownOption.code, 2)
  assert.match(unknownOption.stderr, /unknown option '--no-such-flag'/)
  const unknownCommand = await run(['serev'])
  assert.equal(unknownCommand.code, 2)
})

test('--check-config prints the effective config with secrets masked and env overrides applied', async () => {
  const cfg = tempConfig('api:\n  user:\n    admin: hunter2\ncluster:\n  config:\n    secret_key: "0123456789abcdef"\n')
  try {
    const r = await run(['serve', '--config', cfg.path, '--check-config'], { env: { BROKER_MQTT_PORT: '11883' } })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /port: 11883 # env BROKER_MQTT_PORT/, 'a value from the environment is named as such, not as the file\'s')
    assert.match(r.stdout, /user: # file .*config\.yaml line 2/)
    assert.match(r.stdout, /probe_interval: 500 # default/)
    assert.match(r.stdout, /admin: "?\*{8}"?/)
    assert.ok(!r.stdout.includes('hunter2'))
    assert.ok(!r.stdout.includes('0123456789abcdef'))
  } finally {
    cfg.cleanup()
  }
})

test('a bad config stops start-up with status 2 before any port opens', async () => {
  const host = await freeLoopbackAddress()
  const cfg = tempConfig(`mqtt:\n  bind: ${host}\n  port: 1883\napi:\n  bind: ${host}\n  port: 123456\n`)
  try {
    const r = await run(['serve', '--config', cfg.path])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /api\.port: must be <= 65535/)
    assert.match(r.stderr, /line 6/)
    // Nothing listened: the MQTT port on that address refuses connections.
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(1883, host)
      socket.once('connect', () => { socket.destroy(); resolve(false) })
      socket.once('error', () => resolve(true))
    })
    assert.equal(refused, true)
  } finally {
    cfg.cleanup()
  }
})

test('an unreadable config file exits with status 2 and names the file', async () => {
  const r = await run(['serve', '--config', '/nonexistent/dir/config.yaml'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /cannot read \/nonexistent\/dir\/config\.yaml/)
})

test('./config.yaml in the working directory is picked up when no --config is given', async () => {
  const cfg = tempConfig('mqtt:\n  port: 12883\n')
  try {
    const r = await run(['serve', '--check-config'], { cwd: join(cfg.path, '..') })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /from file \.\/config\.yaml/)
    assert.match(r.stdout, /port: 12883 # file \.\/config\.yaml line 2/)
  } finally {
    cfg.cleanup()
  }
})

test('hash-password reads the password from stdin and prints a hash that verifies', async () => {
  const r = await run(['hash-password'], { input: 'pa55word\n' })
  assert.equal(r.code, 0, r.stderr)
  const hash = r.stdout.trim()
  assert.match(hash, /^scrypt\$/)
  assert.equal(await verifyPassword('pa55word', hash), true)
  const empty = await run(['hash-password'], { input: '' })
  assert.equal(empty.code, 2)
})
