import { Command } from 'commander'

/** A subcommand whose issue has not landed yet: says so and exits 1. */
export function notYetCommand (name: string, description: string): Command {
  return new Command(name)
    .description(`${description} (not yet available)`)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      process.stderr.write(`broker-ha ${name}: not yet available in this version\n`)
      process.exitCode = 1
    })
}
