// `broker-ha bench`: a multi-worker MQTT load generator for any broker.
// Exit status: 0 the run completed (losses are reported, not failures),
// 1 the broker could not be reached or the run broke, 2 bad usage.
import { Command, Option } from 'commander'
import { availableParallelism } from 'node:os'
import { readFileSync } from 'node:fs'
import { BrokerHaError } from '../errors.js'
import { didYouMean } from '../did-you-mean.js'
// Light (no workers, no sockets): option parsing needs it before the run is loaded.
import { parseCount } from '../bench/plan.js'

interface BenchFlags {
  url?: string[]
  pubUrl?: string[]
  subUrl?: string[]
  publishers: number
  subscribers: number
  qos: number
  size: number
  rate: number
  pattern: string
  wildcard?: boolean
  protocol: number
  duration?: string
  count?: number
  workers: number
  inflight: number
  drain: string
  settle: string
  username?: string
  password?: string
  ca?: string
  insecure?: boolean
  json?: boolean
  progress?: boolean
}

function readCa (path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw new BrokerHaError('USAGE', `--ca: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { key: '--ca' })
  }
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** An integer option within bounds; the default is shown in --help as the number it is. */
const integer = (flag: string, min: number, max: number) => (text: string): number => parseCount(flag, text, min, max)

export function benchCommand (): Command {
  return new Command('bench')
    .description('load-test an MQTT broker: throughput, loss, duplicates, latency percentiles')
    .option('-u, --url <url>', 'broker to connect to, mqtt://, mqtts://, ws:// or wss://host:port (repeat: connections spread over them)', collect)
    .option('--pub-url <url>', 'put publishers on this broker only (repeatable)', collect)
    .option('--sub-url <url>', 'put subscribers on this broker only (repeatable)', collect)
    .option('-p, --publishers <n>', 'publishing clients', integer('--publishers', 1, 100_000), 1)
    .option('-s, --subscribers <n>', 'subscribing clients', integer('--subscribers', 0, 100_000), 1)
    .option('-q, --qos <n>', 'QoS of publishes and subscriptions: 0, 1 or 2', integer('--qos', 0, 2), 0)
    .option('--size <bytes>', 'payload size (>= 16: publisher, sequence, timestamp)', integer('--size', 16, 256 * 1024 * 1024), 64)
    .option('-r, --rate <n>', 'messages per second per publisher; 0 = as fast as the broker accepts', integer('--rate', 0, 10_000_000), 0)
    .option('--pattern <name>', 'one-to-one (subscriber j <- publisher j mod P), fan-out (all to all), fan-in (wildcard over all publishers)', 'one-to-one')
    .option('--wildcard', 'subscribe with wildcard filters (+ or #) matching the same publishers')
    .option('--protocol <v>', 'MQTT protocol version: 4 (3.1.1) or 5', integer('--protocol', 4, 5), 4)
    .option('--username <name>', 'MQTT user name of every client')
    .addOption(new Option('--password <password>', 'MQTT password of every client (the environment variable keeps it out of ps and shell history)').env('BROKER_BENCH_PASSWORD'))
    .option('--ca <file>', 'mqtts:// and wss://: PEM file of the CAs to trust (a test broker with its own CA)')
    .option('--insecure', 'mqtts:// and wss://: do not verify the broker certificate')
    .option('-d, --duration <time>', 'publish for this long (e.g. 30s)')
    .option('-c, --count <n>', 'or publish this many messages per publisher', integer('--count', 1, 2 ** 32 - 1))
    .option('-w, --workers <n>', 'worker threads running the clients', integer('--workers', 1, 256), Math.max(1, Math.min(4, availableParallelism())))
    .option('--inflight <n>', 'QoS 1 and 2: unacknowledged PUBLISHes per publisher', integer('--inflight', 1, 65_535), 100)
    .option('--drain <time>', 'after publishing, wait this long for stragglers once deliveries stop', '2s')
    .option('--settle <time>', 'wait after subscribing before publishing (a cluster spreads subscriptions to its peers)', '0ms')
    .option('--json', 'print the result as JSON on stdout (progress still goes to stderr)')
    .option('--no-progress', 'no live progress line on stderr')
    .action(async (flags: BenchFlags) => {
      const { runBench, parseDuration, PATTERNS, formatTable, jsonReport, progressLine } = await import('../bench/index.js')
      const pattern = flags.pattern as typeof PATTERNS[number]
      if (!PATTERNS.includes(pattern)) throw new BrokerHaError('USAGE', `--pattern: one of ${PATTERNS.join(', ')}; got ${flags.pattern}${didYouMean(flags.pattern, PATTERNS)}`, { key: '--pattern' })
      if (flags.duration === undefined && flags.count === undefined) throw new BrokerHaError('USAGE', '--duration or --count is required', { key: '--duration' })
      if (flags.duration !== undefined && flags.count !== undefined) throw new BrokerHaError('USAGE', 'give --duration or --count, not both', { key: '--count' })
      if (flags.url === undefined && (flags.pubUrl === undefined || flags.subUrl === undefined)) throw new BrokerHaError('USAGE', '--url is required (or both --pub-url and --sub-url)', { key: '--url' })
      const tty = process.stderr.isTTY === true
      let lastPrinted = 0
      const result = await runBench({
        urls: flags.url ?? [],
        publisherUrls: flags.pubUrl,
        subscriberUrls: flags.subUrl,
        publishers: flags.publishers,
        subscribers: flags.subscribers,
        qos: flags.qos as 0 | 1 | 2,
        ...(flags.username === undefined ? {} : { username: flags.username }),
        ...(flags.password === undefined ? {} : { password: flags.password }),
        ...(flags.ca === undefined ? {} : { ca: readCa(flags.ca) }),
        ...(flags.insecure === true ? { insecure: true } : {}),
        size: flags.size,
        rate: flags.rate,
        pattern,
        wildcard: flags.wildcard === true,
        protocolVersion: flags.protocol as 4 | 5,
        durationMs: flags.duration === undefined ? undefined : parseDuration(flags.duration),
        count: flags.count,
        workers: flags.workers,
        inflight: flags.inflight,
        drainMs: parseDuration(flags.drain),
        connectConcurrency: 256,
        settleMs: flags.settle === '0ms' ? 0 : parseDuration(flags.settle)
      }, (p) => {
        if (flags.progress === false) return
        // A rewritten line on a terminal; a line every 5 s in a log.
        if (tty) process.stderr.write(`\r\x1b[K${progressLine(p)}`)
        else if (p.elapsedMs - lastPrinted >= 5000) { lastPrinted = p.elapsedMs; process.stderr.write(`${progressLine(p)}\n`) }
      })
      if (tty && flags.progress !== false) process.stderr.write('\r\x1b[K')
      process.stdout.write(flags.json === true ? jsonReport(result) : formatTable(result))
      if (result.generator.saturated && flags.json === true) process.stderr.write('broker-ha bench: the load generator was saturated; see generator in the JSON\n')
    })
}
