// Driving Ink components in tests: key codes as a terminal sends them, and
// waiting for a frame (renders are asynchronous) with a deadline.
import { waitFor } from '../../helpers/wait.js'

export const KEY = {
  up: '\u001B[A',
  down: '\u001B[B',
  enter: '\r',
  escape: '\u001B',
  backspace: '\u007F',
  tab: '\t',
  ctrlC: '\u0003',
  home: '\u001B[H',
  end: '\u001B[F'
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001B\[[0-9;?]*[A-Za-z]/g

export function plain (frame: string | undefined): string {
  return (frame ?? '').replace(ANSI, '')
}

/** Waits until the last frame (without colours) satisfies `check`; returns it. */
export async function frameWhere (lastFrame: () => string | undefined, check: (frame: string) => boolean, message: string): Promise<string> {
  return await waitFor(() => { const f = plain(lastFrame()); return check(f) ? f : undefined }, { timeout: 3000, interval: 10, message: `${message}; last frame:\n${plain(lastFrame())}` })
}

/** Writes keys one by one, as a person types them slowly (a single write of several keys is one chunk). */
export async function press (stdin: { write: (data: string) => void }, ...keys: string[]): Promise<void> {
  for (const key of keys) {
    stdin.write(key)
    // Let Ink parse the key and React commit before the next one, as between keystrokes.
    await new Promise((resolve) => setImmediate(resolve))
  }
}
