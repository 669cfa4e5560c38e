// The executable as a user runs it: exit statuses, --help, --version,
// --check-config, and config errors stopping start-up before any port opens.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { BIN, ROOT } from '../helpers/node.js'
import { NO_TMUX, TmuxPane } from '../helpers/tmux.js'
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

test('a reader that closes the pipe early ends the output, not the command with a stack trace', async () => {
  // `broker-ha chaos --dry-run --duration 60m | head -1`: the schedule is far longer than one line.
  const child = spawn(process.execPath, [BIN, 'chaos', '--dry-run', '--duration', '60m', '--seed', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  await once(child.stdout, 'data')
  child.stdout.destroy()
  const [code] = await once(child, 'exit') as [number | null]
  assert.equal(stderr, '', 'nothing on stderr')
  assert.equal(code, 0)
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

test('a mistyped word gets "Did you mean ...?" at every level: commands, subcommands, options, values', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['serev'], /unknown command 'serev'\n\(Did you mean serve\?\)/],
    [['admin', 'memebrs'], /unknown command 'memebrs' for 'admin'\n\(Did you mean members\?\)/],
    [['admin', 'members', '--jsn'], /unknown option '--jsn'\n\(Did you mean --json\?\)/],
    [['admin', 'members', '-o', 'jsn'], /-o: json, yaml, wide; got jsn\n\(Did you mean json\?\)/],
    [['serve', '--prot', '1884'], /\(Did you mean --port\?\)/],
    [['chaos', '--dry-run', '--faults', 'partiton'], /\(Did you mean partition\?\)/],
    [['chaos', '--dry-run', '--scope', 'ful'], /\(Did you mean full\?\)/],
    [['bench', '--url', 'mqtt://127.0.0.1:1', '--count', '1', '--pattern', 'fan-ot'], /\(Did you mean fan-out\?\)/]
  ]
  const results = await Promise.all(cases.map(([args]) => run(args)))
  results.forEach((r, i) => {
    assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, cases[i]![1])
  })
})

test('numeric defaults are shown as numbers in --help', async () => {
  for (const [args, pattern] of [
    [['chaos', '--help'], /--nodes <n>\s+nodes to start .*\(default:\s+3\)/s],
    [['admin', '--help'], /--refresh <ms>\s+poll interval \(default: 2000\)/],
    [['admin', 'members', '--help'], /--timeout <ms>\s+deadline of each API request \(default: 5000\)/]
  ] as const) {
    const r = await run([...args])
    assert.equal(r.code, 0)
    assert.match(r.stdout, pattern)
    assert.doesNotMatch(r.stdout, /default: "\d+"/, `${args.join(' ')}: no number shown as a string`)
  }
})

test('serve -p/--port, --bind and -v set config keys, named as flags, over env and file', async () => {
  const cfg = tempConfig('mqtt:\n  port: 1999\nlog:\n  level: warn\n')
  try {
    const r = await run(['serve', '--config', cfg.path, '-p', '2001', '--bind', '127.0.0.1', '-v', '--check-config'], { env: { BROKER_MQTT_PORT: '2000' } })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^ {2}port: 2001 # flag --port$/m, 'the flag wins over the environment and the file')
    assert.equal([...r.stdout.matchAll(/^ {2}bind: 127\.0\.0\.1 # flag --bind$/gm)].length, 3, 'MQTT, API and cluster listen addresses')
    assert.match(r.stdout, /^ {2}level: debug # flag --verbose$/m)
    const bad = await run(['serve', '--port', '70000', '--check-config'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /mqtt\.port: must be <= 65535 \(flag --port\)/)
    // At the top level, -v is still the version.
    assert.equal((await run(['-v'])).stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version)
  } finally {
    cfg.cleanup()
  }
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

test('hash-password on a terminal asks twice without echo, as mosquitto_passwd does', { skip: NO_TMUX }, async () => {
  const pane = new TmuxPane()
  try {
    await pane.start(`${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} hash-password; echo HP-EXIT=$?; exec cat`, 200, 10)
    await pane.screenWith((s) => s.includes('Password:'), 'the first prompt')
    await pane.send(['pa55 word'], true)
    await pane.send(['Enter'])
    await pane.screenWith((s) => s.includes('Reenter password:'), 'the second prompt')
    await pane.send(['pa55 word'], true)
    await pane.send(['Enter'])
    const screen = await pane.screenWith((s) => s.includes('HP-EXIT='), 'the hash')
    assert.match(screen, /HP-EXIT=0/)
    assert.ok(!screen.includes('pa55'), `the password is never shown:\n${screen}`)
    const hash = /^(scrypt\$\S+)$/m.exec(screen)?.[1]
    assert.ok(hash !== undefined, screen)
    assert.equal(await verifyPassword('pa55 word', hash), true)
  } finally {
    await pane.stop()
  }
  const mismatch = new TmuxPane()
  try {
    await mismatch.start(`${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} hash-password; echo HP-EXIT=$?; exec cat`, 200, 10)
    await mismatch.screenWith((s) => s.includes('Password:'), 'the first prompt')
    await mismatch.send(['one'], true)
    await mismatch.send(['Enter'])
    await mismatch.screenWith((s) => s.includes('Reenter password:'), 'the second prompt')
    await mismatch.send(['two'], true)
    await mismatch.send(['Enter'])
    const screen = await mismatch.screenWith((s) => s.includes('HP-EXIT='), 'the refusal')
    assert.match(screen, /the passwords do not match/)
    assert.match(screen, /HP-EXIT=2/)
    assert.doesNotMatch(screen, /scrypt\$/)
  } finally {
    await mismatch.stop()
  }
})
