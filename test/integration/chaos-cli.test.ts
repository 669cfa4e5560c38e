// The command line: same seed, same schedule; bad usage exits 2.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { BIN } from '../helpers/node.js'

const run = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'chaos', ...args], { env: { PATH: process.env.PATH ?? '' } })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

test('--dry-run prints the same schedule for the same seed, another for another seed', async () => {
  const a = await run('--dry-run', '--seed', '42', '--duration', '45s')
  const b = await run('--dry-run', '--seed', '42', '--duration', '45s')
  const c = await run('--dry-run', '--seed', '43', '--duration', '45s')
  assert.equal(a.code, 0, a.stderr)
  assert.equal(a.stdout, b.stdout)
  assert.notEqual(a.stdout, c.stdout)
  for (const kind of ['kill', 'stop', 'pause', 'rolling restart', 'partition', 'cut peer links']) assert.match(a.stdout, new RegExp(kind))
})

test('bad usage exits 2 and names the flag', async () => {
  for (const [args, message] of [
    [['--nodes', '0'], /--nodes/],
    [['--duration', 'soon'], /--duration/],
    [['--faults', 'kill,meteor'], /--faults: unknown meteor/],
    [['--nodes', '1', '--faults', 'partition'], /need at least 2 nodes/],
    [['--scope', 'everything'], /--scope/],
    [['--no-such-flag'], /unknown option/]
  ] as const) {
    const r = await run(...args)
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, message)
  }
})
