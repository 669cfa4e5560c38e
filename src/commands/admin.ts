// `broker-ha admin`: the operator's view of a cluster through any one node's
// API. Without a subcommand it opens the full-screen UI; with one it prints
// the same data for scripts (table, or JSON with --json).
//
// Exit statuses: 0 done; 1 failed (unreachable, credentials refused, client
// not found, no member answered); 2 bad usage, a bad clusters file, or a
// request the members refused as malformed (HTTP 400); 3 partial answer
// (data printed, but some members did not answer).
//
// This is the only admin code that reads process.env and the clusters file.
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Command, Option } from 'commander'
import { stringify } from 'yaml'
import { BrokerHaError } from '../errors.js'
import { didYouMean } from '../did-you-mean.js'
import { letInkDrawOnThisTerminal } from './interactive-terminal.js'
import {
  ApiClusterSource, VIEWS, clientRows, clientsJson, clientsTable, describeError, kickClient, kickJson, kickText,
  memberRows, membersJson, membersTable, refusalOf, resolveTarget, retainedJson, retainedRows, retainedTable, runAdminApp,
  subscriberRows, subscribersJson, subscribersTable, type Answered, type ClusterSource, type ViewName
} from '../tui/index.js'

export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_PARTIAL = 3

interface ConnectionFlags { url?: string, user?: string, cluster?: string, clusters?: string, timeout?: number, ca?: string, insecure?: boolean }

/** How a subcommand prints: a table (the default), a wider one, or data for machines. */
export const OUTPUT_FORMATS = ['json', 'yaml', 'wide'] as const
export type OutputFormat = typeof OUTPUT_FORMATS[number] | 'table'

function clustersFilePath (flags: ConnectionFlags): string | undefined {
  if (flags.clusters !== undefined) return flags.clusters
  const base = process.env.XDG_CONFIG_HOME !== undefined && process.env.XDG_CONFIG_HOME !== '' ? process.env.XDG_CONFIG_HOME : join(homedir(), '.config')
  return join(base, 'broker-ha', 'admin.yaml')
}

function readClustersFile (flags: ConnectionFlags): { path: string, text: string } | undefined {
  const path = clustersFilePath(flags)
  if (path === undefined) return undefined
  if (!existsSync(path)) {
    if (flags.clusters !== undefined) throw new BrokerHaError('CONFIG_UNREADABLE', `--clusters: ${path} does not exist`)
    return undefined
  }
  try {
    return { path, text: readFileSync(path, 'utf8') }
  } catch (err) {
    throw new BrokerHaError('CONFIG_UNREADABLE', `${path}: ${(err as Error).message}`, { cause: err })
  }
}

/** A positive whole-number option; its default shows in --help as the number it is. */
const positiveInt = (flag: string) => (value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new BrokerHaError('USAGE', `${flag} must be a positive whole number, got "${value}"`, { key: flag })
  return n
}

function parseOutput (value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat
  throw new BrokerHaError('USAGE', `-o: ${OUTPUT_FORMATS.join(', ')}; got ${value}${didYouMean(value, OUTPUT_FORMATS)}`, { key: '--output' })
}

function openSource (flags: ConnectionFlags): ClusterSource {
  const target = resolveTarget({
    flags,
    env: {
      BROKER_ADMIN_URL: process.env.BROKER_ADMIN_URL,
      BROKER_ADMIN_USER: process.env.BROKER_ADMIN_USER,
      BROKER_ADMIN_PASSWORD: process.env.BROKER_ADMIN_PASSWORD,
      BROKER_ADMIN_CLUSTER: process.env.BROKER_ADMIN_CLUSTER
    },
    file: readClustersFile(flags)
  })
  return new ApiClusterSource(target, { timeoutMs: flags.timeout ?? DEFAULT_TIMEOUT_MS, tls: { ca: flags.ca === undefined ? undefined : readCa(flags.ca), insecure: flags.insecure } })
}

function readCa (path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw new BrokerHaError('USAGE', `--ca: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { key: '--ca' })
  }
}

function addConnectionOptions (command: Command): Command {
  return command
    .option('--url <url>', 'API of any cluster member (env BROKER_ADMIN_URL; default http://127.0.0.1:8080)')
    .option('--user <name:password>', 'API basic auth; without ":password", BROKER_ADMIN_PASSWORD is used (env BROKER_ADMIN_USER)')
    .option('--cluster <name>', 'a named cluster from the clusters file (env BROKER_ADMIN_CLUSTER)')
    .option('--clusters <file>', 'clusters file (default ~/.config/broker-ha/admin.yaml)')
    .option('--timeout <ms>', 'deadline of each API request', positiveInt('--timeout'), DEFAULT_TIMEOUT_MS)
    .option('--ca <file>', 'https:// API (behind an ingress or proxy that terminates TLS): PEM file of the CAs to trust')
    .option('--insecure', 'https:// API: do not verify its certificate')
}

const DEFAULT_TIMEOUT_MS = 5000

/** Options given before or after the subcommand name; the subcommand's win. */
function connectionFlags (command: Command): ConnectionFlags {
  const parent = command.parent?.opts<ConnectionFlags>() ?? {}
  const own = command.opts<ConnectionFlags>()
  const pick = <K extends keyof ConnectionFlags>(key: K): ConnectionFlags[K] => (command.getOptionValueSource(key) === 'cli' ? own[key] : undefined) ?? parent[key] ?? own[key]
  return { url: pick('url'), user: pick('user'), cluster: pick('cluster'), clusters: pick('clusters'), timeout: pick('timeout'), ca: pick('ca'), insecure: pick('insecure') }
}

/** -o, or --json (the same as -o json). */
function outputFormat (command: Command): OutputFormat {
  const { output, json } = command.opts<{ output?: OutputFormat, json?: boolean }>()
  if (json === true && output !== undefined && output !== 'json') throw new BrokerHaError('USAGE', `--json and -o ${output} ask for two formats: give one`, { key: '--output' })
  return json === true ? 'json' : output ?? 'table'
}

/** Tables for people; JSON and YAML carry the same data for machines. */
interface Printable { data: unknown, table: (wide: boolean) => string }

function print (format: OutputFormat, out: Printable): void {
  switch (format) {
    case 'json': process.stdout.write(`${JSON.stringify(out.data, null, 2)}\n`); break
    case 'yaml': process.stdout.write(stringify(out.data)); break
    default: process.stdout.write(out.table(format === 'wide'))
  }
}

/** Members that failed go to stderr; some failing is a partial answer, all failing a failure. */
function warnUnreachable (unreachable: Record<string, string>, asked: number): void {
  for (const [node, why] of Object.entries(unreachable)) process.stderr.write(`broker-ha admin: no answer from ${node}: ${why}\n`)
  const failed = Object.keys(unreachable).length
  if (failed > 0) process.exitCode = failed >= asked ? EXIT_FAILED : EXIT_PARTIAL
}

/** A request the cluster refused as malformed: the caller's mistake, said once, like bad usage. */
function refuse (reason: string): void {
  process.stderr.write(`broker-ha admin: ${reason}\n`)
  process.exitCode = EXIT_USAGE
}

/** Prints a /proxy answer, unless the request was refused; members that failed go to stderr. */
function report<R> (format: OutputFormat, answered: Answered<R>, asked: number, asData: (rows: R[], failures: Record<string, string>) => unknown, asTable: (rows: R[], wide: boolean) => string): void {
  if (answered.refused !== undefined) return refuse(answered.refused)
  print(format, { data: asData(answered.rows, answered.failures), table: (wide) => asTable(answered.rows, wide) })
  warnUnreachable(answered.failures, asked)
}

/** Runs a subcommand body; API failures become a message and exit status 1 (2 for a refused request). */
async function withSource (command: Command, body: (source: ClusterSource) => Promise<void>): Promise<void> {
  const source = openSource(connectionFlags(command))
  try {
    await body(source)
  } catch (err) {
    if (err instanceof BrokerHaError) throw err
    const refused = refusalOf(err)
    if (refused !== undefined) return refuse(refused)
    process.stderr.write(`broker-ha admin: ${describeError(err, source.currentUrl)}\n`)
    process.exitCode = EXIT_FAILED
  } finally {
    await source.close()
  }
}

function subcommand (name: string, description: string): Command {
  return addConnectionOptions(new Command(name).description(description))
    .addOption(new Option('-o, --output <format>', 'json or yaml for machines, wide for more columns (default: a table)').argParser(parseOutput))
    .option('--json', 'the same as -o json')
}

const SUBCOMMANDS = ['members', 'clients', 'retained', 'subscribers', 'kick']

export function adminCommand (): Command {
  const admin = addConnectionOptions(new Command('admin'))
    .description('interactive cluster-aware terminal UI for operators, and scriptable subcommands')
    .addOption(new Option('--view <name>', 'view to open').choices([...VIEWS]).default('overview'))
    .option('--refresh <ms>', 'poll interval', positiveInt('--refresh'), 2000)
    .option('--expect <members>', 'alert when fewer members are alive (default: the most seen alive)', positiveInt('--expect'))
    // A word that is no subcommand reaches the action, which suggests the nearest one.
    .allowExcessArguments()
    .addHelpText('after', '\nExit status: 0 done, 1 failed (unreachable, credentials refused, not found), 2 bad usage or a refused request (HTTP 400), 3 partial answer.')
    .action(async function (this: Command) {
      const opts = this.opts<{ view: ViewName, refresh: number, expect?: number }>()
      if (this.args.length > 0) {
        this.error(`error: unknown command '${this.args[0]}' for 'admin'${didYouMean(this.args[0]!, SUBCOMMANDS)}`, { exitCode: EXIT_USAGE, code: 'commander.unknownCommand' })
      }
      if (process.stdin.isTTY !== true || process.stdout.isTTY !== true) {
        throw new BrokerHaError('USAGE', 'admin: the interactive UI needs a terminal; in scripts use a subcommand (members, clients, retained, subscribers, kick), see --help')
      }
      const refreshMs = opts.refresh
      const expectMembers = opts.expect
      const source = openSource(connectionFlags(this))
      try {
        letInkDrawOnThisTerminal()
        await runAdminApp({ source, refreshMs, expectMembers, initialView: opts.view })
      } finally {
        await source.close()
      }
    })

  admin.addCommand(subcommand('members', 'cluster members as the entry node sees them').action(async function (this: Command) {
    const format = outputFormat(this)
    await withSource(this, async (source) => {
      const rows = memberRows(await source.members())
      print(format, { data: membersJson(rows), table: (wide) => membersTable(rows, wide) })
    })
  }))

  admin.addCommand(subcommand('clients', 'connected clients of every member').action(async function (this: Command) {
    const format = outputFormat(this)
    await withSource(this, async (source) => {
      const answer = await source.clients()
      report(format, clientRows(answer), Object.keys(answer).length, clientsJson, clientsTable)
    })
  }))

  admin.addCommand(subcommand('retained', 'retained messages matching an MQTT filter, on every member')
    .argument('[filter]', 'topic filter, wildcards allowed', '#')
    .action(async function (this: Command, filter: string) {
      const format = outputFormat(this)
      await withSource(this, async (source) => {
        const answer = await source.retained(filter)
        report(format, retainedRows(answer), Object.keys(answer).length, retainedJson, retainedTable)
      })
    }))

  admin.addCommand(subcommand('subscribers', 'who would receive a message published to a topic, on every member')
    .argument('<topic>', 'topic name (no wildcards)')
    .action(async function (this: Command, topic: string) {
      const format = outputFormat(this)
      await withSource(this, async (source) => {
        const answer = await source.subscribers(topic)
        report(format, subscriberRows(answer), Object.keys(answer).length, subscribersJson, subscribersTable)
      })
    }))

  admin.addCommand(subcommand('kick', 'disconnect a client from whichever member it is connected to')
    .argument('<client-id>', 'MQTT client id')
    .action(async function (this: Command, clientId: string) {
      const format = outputFormat(this)
      await withSource(this, async (source) => {
        const outcome = await kickClient(source, clientId)
        print(format, { data: kickJson(outcome), table: () => kickText(outcome) })
        if (outcome.stopped.length === 0) {
          for (const [node, why] of Object.entries(outcome.unreachable)) process.stderr.write(`broker-ha admin: no answer from ${node} (the client may be there): ${why}\n`)
          process.exitCode = EXIT_FAILED
        } else if (Object.keys(outcome.failed).length > 0) {
          process.exitCode = EXIT_FAILED
        }
      })
    }))

  // Bad usage of a subcommand must end in exit status 2 like the rest of the CLI.
  for (const command of admin.commands) command.exitOverride()
  return admin
}
