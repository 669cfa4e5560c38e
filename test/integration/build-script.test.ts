// scripts/build.mjs, which `npm start` runs with --if-stale: a second start
// with unchanged sources compiles nothing; a changed source, and a build that
// failed, compile again. Run on a small project of its own in a temporary
// folder (the real tsc through a link to our node_modules), so it never
// rewrites the dist/ the other tests run from.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync, symlinkSync, utimesSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from '../helpers/node.js'
import { runCommand } from '../helpers/run.js'

let project: string
const SCRIPT = join(ROOT, 'scripts', 'build.mjs')
const build = (...args: string[]) => runCommand(process.execPath, [SCRIPT, ...args], { cwd: project, env: { PATH: process.env.PATH ?? '' } })

before(() => {
  project = mkdtempSync(join(tmpdir(), 'broker-ha-build-'))
  mkdirSync(join(project, 'src'))
  writeFileSync(join(project, 'package.json'), '{"name":"build-test","private":true,"type":"module"}\n')
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2023', outDir: 'dist', rootDir: '.', strict: true, skipLibCheck: true, types: [] },
    include: ['src/**/*']
  }))
  writeFileSync(join(project, 'src', 'a.ts'), 'export const a: number = 1\n')
  symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'), 'dir')
})
after(() => { if (project !== undefined) rmSync(project, { recursive: true, force: true }) })

test('npm start builds through scripts/build.mjs --if-stale before serving', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  assert.match(pkg.scripts.start ?? '', /^node scripts\/build\.mjs --if-stale && node bin\/broker-ha\.js serve$/)
  assert.equal(pkg.scripts.build, 'node scripts/build.mjs')
})

test('--if-stale compiles the first time, then not again until a source changes', async () => {
  const first = await build('--if-stale')
  assert.equal(first.code, 0, first.stderr)
  assert.match(first.stderr, /compiling \(no previous build\)/)
  const js = join(project, 'dist', 'src', 'a.js')
  assert.ok(existsSync(js))

  // Remove the output: a run that compiled would write it back.
  rmSync(js)
  const second = await build('--if-stale')
  assert.equal(second.code, 0, second.stderr)
  assert.match(second.stderr, /up to date/)
  assert.ok(!existsSync(js), 'nothing was compiled')

  const later = new Date(Date.now() + 5000)
  utimesSync(join(project, 'src', 'a.ts'), later, later)
  const third = await build('--if-stale')
  assert.equal(third.code, 0, third.stderr)
  assert.match(third.stderr, /compiling \(src changed\)/)
  assert.ok(existsSync(js), 'a changed source is compiled')
})

test('a failed build is not taken for up to date', async () => {
  writeFileSync(join(project, 'src', 'a.ts'), 'export const a: number = "one"\n')
  const later = new Date(Date.now() + 10_000)
  utimesSync(join(project, 'src', 'a.ts'), later, later)
  const failed = await build('--if-stale')
  assert.notEqual(failed.code, 0)
  assert.match(failed.stdout + failed.stderr, /TS2322/)
  const again = await build('--if-stale')
  assert.notEqual(again.code, 0, 'still failing: compiled again, not skipped')
  assert.doesNotMatch(again.stderr, /up to date/)
  writeFileSync(join(project, 'src', 'a.ts'), 'export const a: number = 2\n')
  utimesSync(join(project, 'src', 'a.ts'), new Date(Date.now() + 15_000), new Date(Date.now() + 15_000))
  const fixed = await build('--if-stale')
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr)
})
