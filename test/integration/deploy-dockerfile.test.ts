// deploy/Dockerfile, checked without a Docker engine (none here): its shape
// (multi-stage, non-root numeric user matching the Kubernetes securityContext,
// ports, volume, stop signal, entrypoint), that every file it copies from the
// context exists and passes .dockerignore, and that its install steps are the
// ones package.test.ts runs for real ("image" layout: npm pack, then the
// unpacked tarball with package-lock.json and `npm ci --omit=dev`).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { ROOT } from '../helpers/node.js'

interface Instruction { op: string, args: string }

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions (text: string): Instruction[] {
  const joined = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ')
  return joined.split('\n').map((l) => l.trim()).filter((l) => l !== '').map((l) => {
    const [op, ...rest] = l.split(/\s+/)
    return { op: op!.toUpperCase(), args: rest.join(' ') }
  })
}

const dockerfile = instructions(readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8'))
const stages: Instruction[][] = []
for (const i of dockerfile) {
  if (i.op === 'FROM') stages.push([])
  stages.at(-1)?.push(i)
}
const runtime = stages.at(-1) ?? []
const argDefaults = new Map(dockerfile.filter((i) => i.op === 'ARG' && i.args.includes('=')).map((i) => i.args.split('=') as [string, string]))

test('two stages: a build stage and a runtime stage', () => {
  assert.ok(stages.length >= 2, 'multi-stage')
  assert.match(stages[0]![0]!.args, / AS build$/i)
  assert.ok(runtime.some((i) => i.op === 'COPY' && i.args.startsWith('--from=build')), 'the runtime stage takes the build output')
  assert.ok(!runtime.some((i) => i.op === 'COPY' && !i.args.startsWith('--from=')), 'the runtime stage copies nothing from the context: no sources, no dev files')
})

test('the base image is a Node.js that package.json engines allow', () => {
  const { engines } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }
  const image = stages[0]![0]!.args.split(/\s+/)[0]!.replace(/\$\{(\w+)\}/g, (_, name: string) => argDefaults.get(name) ?? '')
  const major = /^node:(\d+)/.exec(image)
  assert.ok(major !== null, `base image ${image} is an official node image`)
  const minMajor = Number(/>=\s*(\d+)/.exec(engines.node)![1])
  assert.ok(Number(major[1]) >= minMajor, `node ${major[1]} satisfies ${engines.node}`)
})

test('runs as the non-root numeric user the Kubernetes securityContext expects', () => {
  const user = runtime.filter((i) => i.op === 'USER').at(-1)
  assert.ok(user !== undefined, 'USER in the runtime stage')
  const [uid, gid] = user.args.split(':').map(Number)
  assert.ok(uid !== undefined && uid > 0 && gid !== undefined && gid > 0, `numeric non-root user, got ${user.args}`)
  const sts = parse(readFileSync(join(ROOT, 'deploy', 'k8s', 'base', 'statefulset.yaml'), 'utf8')) as { spec: { template: { spec: { securityContext: { runAsUser: number, runAsGroup: number } } } } }
  assert.equal(sts.spec.template.spec.securityContext.runAsUser, uid)
  assert.equal(sts.spec.template.spec.securityContext.runAsGroup, gid)
})

test('ports, /config and /data volumes, storage.dir /data, SIGTERM, entrypoint broker-ha serve', () => {
  const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))
  assert.deepEqual(exposed.sort(), ['1883/tcp', '7946/tcp', '7946/udp', '8080/tcp'])
  assert.ok(runtime.some((i) => i.op === 'VOLUME' && i.args.includes('/config')))
  // The store lives on a volume by default (docs/storage.md).
  assert.ok(runtime.some((i) => i.op === 'VOLUME' && i.args.includes('/data')))
  assert.ok(runtime.some((i) => i.op === 'ENV' && /BROKER_STORAGE_DIR=\/data\b/.test(i.args)))
  assert.deepEqual(runtime.filter((i) => i.op === 'STOPSIGNAL').map((i) => i.args), ['SIGTERM'])
  const entrypoint = runtime.find((i) => i.op === 'ENTRYPOINT')
  assert.deepEqual(JSON.parse(entrypoint!.args), ['broker-ha', 'serve'])
})

test('the install steps are the ones package.test.ts runs', () => {
  const runs = (stage: Instruction[]): string => stage.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n')
  assert.match(runs(stages[0]!), /npm ci\b/)
  assert.match(runs(stages[0]!), /npm pack\b/)
  assert.match(runs(stages[0]!), /tar -xzf .*--strip-components=1/)
  assert.match(runs(stages[0]!), /cp package-lock\.json/)
  assert.match(runs(runtime), /npm ci --omit=dev\b/)
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  assert.equal(pkg.scripts.prepack, 'npm run build', 'npm pack compiles the TypeScript')
})

test('every file the build copies from the context exists and passes .dockerignore', () => {
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  // The file is "exclude everything, then admit": check that shape and the admitted names.
  assert.equal(ignore[0], '*')
  const admitted = new Set(ignore.slice(1).map((l) => { assert.ok(l.startsWith('!'), l); return l.slice(1).replace(/\/$/, '') }))
  const sources = stages[0]!.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from=')).flatMap((i) => i.args.split(/\s+/).slice(0, -1))
  assert.ok(sources.length > 0)
  for (const source of sources) {
    assert.ok(existsSync(join(ROOT, source)), `${source} exists`)
    assert.ok(admitted.has(source.replace(/\/$/, '')), `${source} is admitted by .dockerignore`)
  }
})
