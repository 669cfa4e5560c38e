#!/usr/bin/env node
// `npm run build` and `npm start`'s build step. Plain JavaScript because it
// runs before anything is compiled.
//
//   node scripts/build.mjs             compile (tsc), then stamp dist/
//   node scripts/build.mjs --if-stale  compile only when an input changed since the last good build
//
// The stamp (dist/.build-stamp) is written only after tsc succeeded, so a
// build with type errors is retried on the next start instead of being taken
// for up to date. Inputs are compared by modification time, directories
// included, so a deleted or renamed source also counts as a change; git sets
// the time of every file it writes, so a checkout or pull rebuilds.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const root = process.cwd()
const STAMP = join(root, 'dist', '.build-stamp')
// What tsc reads (tsconfig.json "include") and what changes the types it sees.
const INPUTS = ['src', 'test', 'bench', 'scripts', 'tsconfig.json', 'package.json', 'package-lock.json']

/** The newest modification time under `path` (ms), files and directories alike. */
function newest (path) {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let latest = stat.mtimeMs
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)))
  return latest
}

function isStale () {
  if (!existsSync(STAMP)) return 'no previous build'
  const built = statSync(STAMP).mtimeMs
  for (const input of INPUTS) {
    const path = join(root, input)
    if (existsSync(path) && newest(path) > built) return `${input} changed`
  }
  return undefined
}

if (process.argv.includes('--if-stale')) {
  const reason = isStale()
  if (reason === undefined) {
    process.stderr.write('build: dist/ is up to date with the sources\n')
    process.exit(0)
  }
  process.stderr.write(`build: compiling (${reason})\n`)
}

const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' })
if (result.status !== 0) process.exit(result.status ?? 1)
mkdirSync(join(root, 'dist'), { recursive: true })
writeFileSync(STAMP, `${new Date().toISOString()}\n`)
