// Running a command, or the broker-ha executable, to completion and
// capturing what it printed: how tests use the CLI as a user would.
import { spawn, spawnSync } from 'node:child_process'
import { BIN } from './node.js'

export interface Run { code: number | null, stdout: string, stderr: string }

export interface RunOptions {
  cwd?: string
  /** The whole environment of the child (default: only PATH, so nothing of ours leaks in). */
  env?: NodeJS.ProcessEnv
  /** Written to standard input, which is then closed (default: closed at once). */
  input?: string
  /** Killed with SIGKILL after this long (default 120 s). */
  timeoutMs?: number
}

export function runCommand (command: string, args: string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? { PATH: process.env.PATH ?? '' } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
    child.stdin.end(options.input ?? '')
  })
}

/** `broker-ha <args>` from this checkout. */
export function runCli (args: string[], options: RunOptions = {}): Promise<Run> {
  return runCommand(process.execPath, [BIN, ...args], options)
}

/** A python3 with Debian's paho-mqtt (python3-paho-mqtt), if this machine has one: the second client stack's tests skip without it. */
export const PAHO_PYTHON = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import paho.mqtt.client'], { stdio: 'ignore' }).status === 0)
