import { Command, Option } from 'commander'
import { isIP } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { BrokerHaError } from '../errors.js'
import { effectiveConfigText, loadConfig, type FlagValue } from '../config/index.js'
import { createLogger } from '../log.js'
import { quietPacketDebug } from '../server/mqtt/quiet-debug.js'

interface ServeFlags {
  config?: string
  checkConfig?: boolean
  chaosControl?: boolean
  port?: string
  bind?: string
  verbose?: boolean
  resetStorage?: boolean
}

/**
 * The few flags people try first, as config keys: they go through the config
 * loader (flag > env > file > default), so --check-config and errors name them.
 */
function flagValues (flags: ServeFlags): FlagValue[] {
  const out: FlagValue[] = []
  // A number when it looks like one; anything else is left for the schema to refuse, naming the flag.
  if (flags.port !== undefined) out.push({ key: 'mqtt.port', flag: '--port', value: /^\d+$/.test(flags.port) ? Number(flags.port) : flags.port })
  if (flags.bind !== undefined) for (const key of ['mqtt.bind', 'api.bind', 'cluster.bind']) out.push({ key, flag: '--bind', value: flags.bind })
  if (flags.verbose === true) out.push({ key: 'log.level', flag: '--verbose', value: 'debug' })
  return out
}

export function serveCommand (): Command {
  return new Command('serve')
    .description('run a broker node (config: --config, else /config/config.yaml, else ./config.yaml, else built-in defaults)')
    .option('-c, --config <path>', 'YAML config file')
    .option('-p, --port <port>', 'MQTT port (mqtt.port)')
    .option('--bind <address>', 'listen address of MQTT, the HTTP API and the cluster port (mqtt.bind, api.bind, cluster.bind); 127.0.0.1 keeps the node local')
    .option('-v, --verbose', 'debug logging (log.level debug)')
    .option('--reset-storage', 'move the store in storage.dir aside (kept as broker-ha.mdb.broken-<time>) and start empty; the peers refill retained messages')
    .option('--check-config', 'validate the config, print the effective config with the source of every key (secrets masked) and exit')
    // For `broker-ha chaos` only (issue 6): fault hook in the cluster transport,
    // /chaos/faults on the API, exit when the runner's stdin pipe closes.
    .addOption(new Option('--chaos-control').hideHelp())
    .addHelpText('after', '\nEvery config key can also be set by a BROKER_* environment variable (mqtt.port: BROKER_MQTT_PORT).\nPrecedence: flag > environment > file > default. Keys: docs/configuration.md.\n')
    .action(async (opts: ServeFlags) => {
      const loaded = loadConfig({ path: opts.config, env: process.env, flags: flagValues(opts) })
      if (opts.checkConfig === true) {
        for (const w of loaded.warnings) process.stderr.write(`warning: ${w}\n`)
        process.stdout.write(effectiveConfigText(loaded))
        return
      }
      const log = createLogger(loaded.config.log)
      for (const w of loaded.warnings) log.warn(w)
      log.info({ source: loaded.source }, 'config loaded')
      const chaosControl = opts.chaosControl === true
      if (chaosControl) {
        const c = loaded.config
        const open = [['api.bind', c.api.bind], ['mqtt.bind', c.mqtt.bind], ['cluster.bind', c.cluster.bind]].filter(([, v]) => !isLoopbackHost(v!))
        if (open.length > 0) throw new BrokerHaError('USAGE', `--chaos-control needs loopback binds, not ${open.map(([k, v]) => `${k}=${v}`).join(', ')}`, { key: open[0]![0] })
        // If the chaos runner dies without cleaning up (kill -9), its pipe closes and we go with it.
        // Unreferenced, so the open pipe does not keep the process alive after a stop.
        process.stdin.once('end', () => process.kill(process.pid, 'SIGTERM'))
        process.stdin.resume()
        ;(process.stdin as { unref?: () => void }).unref?.()
        log.warn('started with --chaos-control: fault injection is enabled (loopback only)')
      }
      tuneHeap()
      // Before aedes loads mqtt-packet (quiet-debug.ts).
      if (!quietPacketDebug()) log.debug('mqtt-packet debug calls left as they are (loaded already, or debug not found)')
      // Loaded here rather than at the top: the broker's dependency tree (aedes,
      // fastify, ...) would otherwise slow down every other subcommand's start.
      const { BrokerNode } = await import('../server/node.js')
      const path = loaded.source === 'defaults' || loaded.source === 'object' ? undefined : loaded.source
      const node = new BrokerNode(loaded.config, log, {
        chaosControl,
        resetStorage: opts.resetStorage === true,
        // A reload reads the same file with the same environment and flags (reload.ts).
        reload: { load: () => loadConfig({ path, env: process.env, flags: flagValues(opts) }), path }
      })
      await node.start()
      // SIGHUP reloads certificates, mqtt.auth, mqtt.acl and api.user, as mosquitto does.
      const onHangup = (): void => { void node.reload('SIGHUP') }
      process.on('SIGHUP', onHangup)
      await waitForSignal(log)
      process.off('SIGHUP', onHangup)
      await node.stop()
      log.info('stopped')
    })
}

/**
 * No allocation-site pretenuring in a broker. V8 allocates straight into the
 * old generation from any allocation site whose objects mostly survived a
 * scavenge. In a burst of connects (a reconnect storm), stream, parser and
 * socket state from the same sites lives on with each connection, so those
 * sites get pretenured; but the same sites also make each connect's
 * short-lived garbage, which then waits in the old generation for a full
 * collection: about twice the RSS per idle connection right after the
 * connects, and slower connects (docs/benchmarks.md, fifth memory round).
 * Set before the broker's modules load; V8 reads it at each scavenge.
 */
function tuneHeap (): void {
  setFlagsFromString('--no-allocation-site-pretenuring')
}

/** Resolves on the first SIGTERM/SIGINT; a second one exits at once. */
function waitForSignal (log: ReturnType<typeof createLogger>): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'shutting down')
      process.once('SIGTERM', () => process.exit(1))
      process.once('SIGINT', () => process.exit(1))
      resolve()
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  })
}

function isLoopbackHost (host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}
