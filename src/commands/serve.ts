import { Command } from 'commander'
import { stringify } from 'yaml'
import { loadConfig, maskSecrets } from '../config/index.js'
import { createLogger } from '../log.js'
import { BrokerNode } from '../server/node.js'

export function serveCommand (): Command {
  return new Command('serve')
    .description('run a broker node (config: --config, else /config/config.yaml, else ./config.yaml, else built-in defaults)')
    .option('-c, --config <path>', 'YAML config file')
    .option('--check-config', 'validate the config, print the effective config (secrets masked) and exit')
    .action(async (opts: { config?: string, checkConfig?: boolean }) => {
      const loaded = loadConfig({ path: opts.config, env: process.env })
      if (opts.checkConfig === true) {
        for (const w of loaded.warnings) process.stderr.write(`warning: ${w}\n`)
        process.stdout.write(`# effective config (source: ${loaded.source})\n${stringify(maskSecrets(loaded.config))}`)
        return
      }
      const log = createLogger(loaded.config.log)
      for (const w of loaded.warnings) log.warn(w)
      log.info({ source: loaded.source }, 'config loaded')
      const node = new BrokerNode(loaded.config, log)
      await node.start()
      await waitForSignal(log)
      await node.stop()
      log.info('stopped')
    })
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
