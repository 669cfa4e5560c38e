// A command in a real pseudo-terminal: a tmux server of its own (its own
// socket, so nothing of the user's is touched), a pane running the command,
// keys sent into it and the screen read back. Tests that need a terminal
// skip, saying so, when tmux is not installed (CI installs it).
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { waitFor } from './wait.js'

const run = promisify(execFile)

export const TMUX_VERSION = ((): string | undefined => {
  try {
    return execFileSync('tmux', ['-V'], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
})()

export const NO_TMUX = TMUX_VERSION === undefined ? 'tmux is not installed (apt-get install tmux): the pseudo-terminal test needs it' : false

export class TmuxPane {
  private static next = 0
  private readonly socket = `broker-ha-test-${process.pid}-${TmuxPane.next++}`

  private async tmux (...args: string[]): Promise<string> {
    return (await run('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' })).stdout
  }

  /** Starts `command` (a shell line) in a pane of `columns` x `rows`. */
  async start (command: string, columns = 80, rows = 24): Promise<void> {
    await this.tmux('new-session', '-d', '-s', 'test', '-x', String(columns), '-y', String(rows), command)
  }

  /** tmux send-keys: key names (Enter, Escape) or, with literal, text as it is. */
  async send (keys: string[], literal = false): Promise<void> {
    await this.tmux('send-keys', '-t', 'test', ...(literal ? ['-l'] : []), ...keys)
  }

  screen (): Promise<string> {
    return this.tmux('capture-pane', '-p', '-t', 'test')
  }

  /** Waits until the screen satisfies `check`; the error shows the last screen. */
  async screenWith (check: (screen: string) => boolean, message: string, timeout = 10_000): Promise<string> {
    let last = ''
    try {
      return await waitFor(async () => { last = await this.screen(); return check(last) ? last : undefined }, { timeout, interval: 50, message })
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${last}`, { cause: err })
    }
  }

  async stop (): Promise<void> {
    await this.tmux('kill-server').catch(() => {})
  }
}
