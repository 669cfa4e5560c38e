// The npm package as a user gets it: `npm pack`, then installed outside the
// source tree (so nothing resolves from our node_modules or src), then its
// bin started on a loopback address and an MQTT publish/subscribe round trip
// through it. Two layouts, both from the same tarball:
// - "npm install": the tarball installed into an empty folder, as
//   `npm install -g broker-ha` / `npx broker-ha` do (the bin through
//   node_modules/.bin, dependency ranges resolved by npm);
// - "image": the tarball unpacked, package-lock.json beside it and
//   `npm ci --omit=dev`: exactly the runtime stage of deploy/Dockerfile.
// Dependencies come from the npm registry (--prefer-offline: cache first).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, mkdirSync, rmSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { isBuiltin } from 'node:module'
import mqtt from 'mqtt'
import { ROOT } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { waitFor } from '../helpers/wait.js'
import { runCommand, type Run } from '../helpers/run.js'

function run (command: string, args: string[], options: { cwd: string, env?: NodeJS.ProcessEnv, timeoutMs?: number }): Promise<Run> {
  return runCommand(command, args, { ...options, env: options.env ?? process.env })
}

/**
 * The environment without npm_* variables: under `npm test` they carry our
 * project's settings (npm_config_local_prefix=/work/..., npm_package_*), and
 * an install that inherited them could reach back into the source tree.
 */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string
  version: string
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
}

let work: string
let installDir: string
let bin: string
let imageDir: string

/**
 * A registry fetch that stalls is given up after 30 s and tried again (npm's
 * default waits 5 minutes: one stalled download once ran the whole file into
 * the runner's 180 s timeout with nothing to say why).
 */
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--fetch-timeout=30000', '--fetch-retries=4']
/** Below the test runner's 180 s per file, so a slow install fails with npm's own output. */
const NPM_TIMEOUT_MS = 80_000

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'broker-ha-pack-'))
  // --ignore-scripts: the test runs after `npm run build` (npm test builds
  // first); prepack would rebuild and fail on any type error elsewhere.
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, env: cleanEnv })
  assert.equal(packed.code, 0, packed.stderr)
  const filename = (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename
  installDir = join(work, 'app')
  // An empty project, as `npm init -y` would write, so npm installs here and
  // not into some parent folder's package.json.
  mkdirSync(installDir)
  writeFileSync(join(installDir, 'package.json'), '{"name":"pack-test","private":true}\n')
  const installed = await run('npm', ['install', ...NPM_FLAGS, join(work, filename)], { cwd: installDir, env: cleanEnv, timeoutMs: NPM_TIMEOUT_MS })
  assert.equal(installed.code, 0, `npm install of the tarball failed:\n${installed.stderr}`)
  bin = join(installDir, 'node_modules', '.bin', 'broker-ha')

  imageDir = join(work, 'image')
  mkdirSync(imageDir)
  const untar = await run('tar', ['-xzf', join(work, filename), '-C', imageDir, '--strip-components=1'], { cwd: work })
  assert.equal(untar.code, 0, untar.stderr)
  copyFileSync(join(ROOT, 'package-lock.json'), join(imageDir, 'package-lock.json'))
  const ci = await run('npm', ['ci', '--omit=dev', ...NPM_FLAGS], { cwd: imageDir, env: cleanEnv, timeoutMs: NPM_TIMEOUT_MS })
  assert.equal(ci.code, 0, `npm ci --omit=dev in the unpacked tarball failed (as deploy/Dockerfile runs it):\n${ci.stderr}`)
})

after(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

test('the tarball holds compiled JavaScript, the bin and the licence; no sources, tests or source maps', () => {
  const root = join(installDir, 'node_modules', pkg.name)
  assert.ok(existsSync(join(root, 'bin', 'broker-ha.js')))
  assert.ok(existsSync(join(root, 'dist', 'src', 'cli.js')))
  assert.ok(existsSync(join(root, 'LICENSE')))
  assert.ok(!existsSync(join(root, 'src')), 'TypeScript sources are not shipped')
  assert.ok(!existsSync(join(root, 'dist', 'test')), 'compiled tests are not shipped')
  assert.deepEqual(readdirSync(join(root, 'dist')), ['src'])
  const maps = (readdirSync(join(root, 'dist', 'src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.map'))
  assert.deepEqual(maps, [])
})

test('dependencies install without dev dependencies', () => {
  for (const dep of Object.keys(pkg.dependencies)) {
    assert.ok(existsSync(join(installDir, 'node_modules', dep, 'package.json')), `dependency ${dep} installed`)
  }
  for (const dev of ['typescript', 'eslint', 'ink-testing-library', 'kubernetes-models']) {
    assert.ok(!existsSync(join(installDir, 'node_modules', dev)), `dev dependency ${dev} not installed`)
  }
})

test('every package the shipped code imports is a runtime dependency (admin and chaos load theirs lazily, so a round trip would not notice)', () => {
  const dist = join(installDir, 'node_modules', pkg.name, 'dist', 'src')
  const files = (readdirSync(dist, { recursive: true }) as string[]).filter((f) => f.endsWith('.js'))
  const imported = new Set<string>()
  for (const file of files) {
    const code = readFileSync(join(dist, file), 'utf8')
    for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)) {
      const specifier = m[1]!
      if (specifier.startsWith('.') || specifier.startsWith('node:') || isBuiltin(specifier)) continue
      imported.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!)
    }
  }
  assert.ok(imported.has('aedes') && imported.has('ink'), `the scan finds imports: ${[...imported].join(', ')}`)
  for (const name of imported) {
    assert.ok(name in pkg.dependencies, `${name} is imported by dist/src but is not in dependencies`)
    assert.ok(existsSync(join(installDir, 'node_modules', name, 'package.json')), `${name} is installed`)
  }
})

test('the installed bin answers --version from outside the source tree', async () => {
  const r = await run(bin, ['--version'], { cwd: installDir, env: { PATH: process.env.PATH ?? '' } })
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), pkg.version)
})

for (const layout of ['npm install', 'image'] as const) {
  test(`${layout} layout: the bin serves MQTT, a publish/subscribe round trip, then a clean SIGTERM exit`, async () => {
    const [command, args, cwd] = layout === 'image'
      ? [process.execPath, [join(imageDir, 'bin', 'broker-ha.js'), 'serve'], imageDir]
      : [bin, ['serve'], installDir]
    const host = await freeLoopbackAddress()
    // No config file: embedded defaults plus the environment, as `npx broker-ha serve` would run.
    const child = spawn(command, args, {
      cwd,
      env: {
        PATH: process.env.PATH ?? '',
        BROKER_MQTT_BIND: host,
        BROKER_API_BIND: host,
        BROKER_CLUSTER_BIND: host,
        BROKER_CLUSTER_NAME: 'pack-test',
        BROKER_LOG_FORMAT: 'json'
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    const exited = once(child, 'exit')
    let client: mqtt.MqttClient | undefined
    try {
      await waitFor(() => output.includes('MQTT listening') || child.exitCode !== null, { timeout: 20_000, message: 'the packed broker to listen' })
      assert.equal(child.exitCode, null, output)
      client = await mqtt.connectAsync(`mqtt://${host}:1883`, { clientId: `pack-${process.pid}`, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5 })
      const got: string[] = []
      client.on('message', (topic, payload) => { got.push(`${topic}=${payload.toString()}`) })
      await client.subscribeAsync('pack/#', { qos: 1 })
      await client.publishAsync('pack/hello', 'world', { qos: 1 })
      await waitFor(() => got.length > 0, { timeout: 5000, message: 'the message back' })
      assert.deepEqual(got, ['pack/hello=world'])
      const ready = await fetch(`http://${host}:8080/ready`)
      assert.equal(ready.status, 200)
    } finally {
      await client?.endAsync()
      if (child.exitCode === null) child.kill('SIGTERM')
      const [code] = await exited
      assert.equal(code, 0, `exit status after SIGTERM\n${output}`)
    }
  })
}
