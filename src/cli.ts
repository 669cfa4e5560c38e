// The commander program: one executable, several jobs sharing one core.
import { Command, CommanderError } from 'commander'
import { VERSION } from './version.js'
import { serveCommand } from './commands/serve.js'
import { hashPasswordCommand } from './commands/hash-password.js'
import { adminCommand } from './commands/admin.js'
import { chaosCommand } from './commands/chaos.js'
import { benchCommand } from './commands/bench.js'
import { BrokerHaError, exitStatusFor } from './errors.js'

export function buildProgram (): Command {
  const program = new Command('broker-ha')
    .description('Highly available, clustered MQTT 3.1/3.1.1/5.0 broker')
    .version(VERSION, '-v, --version')
    // Program options only before the subcommand: `broker-ha -v` is the
    // version, `broker-ha serve -v` is serve's verbose flag.
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
  program.addCommand(serveCommand())
  program.addCommand(adminCommand())
  program.addCommand(chaosCommand())
  program.addCommand(benchCommand())
  program.addCommand(hashPasswordCommand())
  for (const command of program.commands) command.exitOverride()
  return program
}

let pipesWatched = false

/**
 * A reader that goes away (`broker-ha chaos --dry-run | head`) closes our
 * stdout: the next write fails with EPIPE, an 'error' event nobody handled,
 * and Node ended the command with a stack trace. Now what would have been
 * written goes nowhere, as with any Unix tool, and the command carries on
 * to its own exit status (a broker keeps serving).
 */
function ignoreClosedPipes (): void {
  if (pipesWatched) return
  pipesWatched = true
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return
      throw err
    })
  }
}

/** Runs the CLI; resolves with the exit status instead of calling process.exit. */
export async function main (argv: string[]): Promise<number> {
  ignoreClosedPipes()
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end in a "graceful" CommanderError with code 0.
      return err.exitCode === 0 ? 0 : 2
    }
    if (err instanceof BrokerHaError) {
      process.stderr.write(`broker-ha: ${err.message}\n`)
      return exitStatusFor(err)
    }
    process.stderr.write(`broker-ha: ${(err as Error).stack ?? String(err)}\n`)
    return 1
  }
}
