// Running the app full screen: the alternate screen buffer while it runs,
// the operator's screen and cursor restored on every way out (q, Ctrl-C,
// SIGTERM, a crash).
import { render } from 'ink'
import { App } from './app.js'
import type { ViewName } from './view-names.js'
import type { ClusterSource } from './cluster-source.js'

const ENTER_ALT_SCREEN = '\x1b[?1049h\x1b[H\x1b[2J'
const LEAVE_ALT_SCREEN = '\x1b[?25h\x1b[?1049l'

export interface RunOptions {
  source: ClusterSource
  refreshMs?: number
  expectMembers?: number | undefined
  initialView?: ViewName
  stdout?: NodeJS.WriteStream
  stdin?: NodeJS.ReadStream
}

/** Resolves when the operator quits. */
export async function runAdminApp (options: RunOptions): Promise<void> {
  const stdout = options.stdout ?? process.stdout
  const stdin = options.stdin ?? process.stdin
  let restored = false
  const restore = (): void => {
    if (restored) return
    restored = true
    stdout.write(LEAVE_ALT_SCREEN)
  }
  stdout.write(ENTER_ALT_SCREEN)
  // A crash must not leave the operator in the alternate screen with no cursor.
  process.once('exit', restore)
  const instance = render(<App source={options.source} refreshMs={options.refreshMs} expectMembers={options.expectMembers} initialView={options.initialView} />, {
    stdout, stdin, exitOnCtrlC: true, patchConsole: true
  })
  const onSignal = (): void => instance.unmount()
  process.once('SIGTERM', onSignal)
  process.once('SIGHUP', onSignal)
  try {
    await instance.waitUntilExit()
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGHUP', onSignal)
    instance.cleanup()
    restore()
    process.off('exit', restore)
  }
}
