// `broker-ha chaos` leaves nothing behind: Ctrl-C (SIGINT) stops every node
// and removes the run folder; even a runner killed with -9 takes its nodes
// with it (they exit when their stdin pipe closes).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { alive, childrenOf, randomBaseAddress } from '../helpers/chaos.js'

const linux = process.platform === 'linux'

async function startRunner (cwd: string) {
  const child = spawn(process.execPath, [BIN, 'chaos', '--nodes', '2', '--duration', '60s', '--faults', 'none', '--ci', '--seed', '1', '--base-address', randomBaseAddress()], {
    cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' }
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const exited = once(child, 'exit')
  await waitFor(() => output.includes('workloads running') || child.exitCode !== null, { timeout: 30_000, message: 'chaos nodes up' })
  assert.equal(child.exitCode, null, output)
  const nodes = childrenOf(child.pid!)
  assert.equal(nodes.length, 2, `two node processes under the runner\n${output}`)
  return { child, nodes, exited, output: () => output }
}

test('SIGINT to the runner stops every node and removes the run folder', { skip: !linux, timeout: 60_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'chaos-sigint-'))
  try {
    const runner = await startRunner(cwd)
    assert.equal(readdirSync(join(cwd, '.chaos-runs')).length, 1, 'the run folder exists while it runs')
    runner.child.kill('SIGINT')
    const [code] = await runner.exited
    assert.equal(code, 130, runner.output())
    assert.match(runner.output(), /interrupted/)
    await waitFor(() => runner.nodes.every((p) => !alive(p)), { timeout: 5000, message: 'node processes gone' })
    assert.deepEqual(readdirSync(join(cwd, '.chaos-runs')), [])
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
})

test('nodes of a runner killed with -9 exit on their own', { skip: !linux, timeout: 60_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'chaos-kill9-'))
  try {
    const runner = await startRunner(cwd)
    runner.child.kill('SIGKILL')
    await runner.exited
    await waitFor(() => runner.nodes.every((p) => !alive(p)), { timeout: 10_000, message: 'orphaned nodes to exit' })
    assert.ok(existsSync(join(cwd, '.chaos-runs')), 'a runner killed with -9 cannot remove its folder; only the processes are guaranteed')
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
})
