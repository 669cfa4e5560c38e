// Live reload of what an operator changes without a restart: mqtt.auth,
// mqtt.acl and api.user from the config file (on SIGHUP, and when the file
// changes), and the listeners' certificates (tls.ts). The new config is read
// and validated whole first: a bad one is refused with the key named, and the
// one in force stays. Keys that need a restart are named in a warning when
// they differ. Each config in force has a version (a digest of it) and a load
// time: broker_config_info and broker_config_loaded_timestamp_seconds on
// /metrics (the admin UI shows them).
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { createHash } from 'node:crypto'
import { Gauge, type Registry } from 'prom-client'
import type { Config, LoadedConfig } from '../config/index.js'
import { BrokerHaError } from '../errors.js'
import type { Logger } from '../log.js'

/** What a reload may change on a running node. */
export interface ReloadTarget {
  reloadCertificates (why: string): void
  /** Puts new auth, ACL and API users in force; resolves with the ids of clients disconnected. */
  applyAccess (next: Config): Promise<string[]>
}

export interface ReloadResult {
  ok: boolean
  version: string
  /** The refused config's problem (the key is named in it). */
  error?: string
  /** Clients disconnected because the new mqtt.auth no longer admits them. */
  disconnected?: string[]
}

/** The keys a reload puts in force; a change anywhere else needs a restart. */
const RELOADED = ['mqtt.auth', 'mqtt.acl', 'api.user'] as const

export function configVersion (config: Config): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 12)
}

export class ConfigReloader {
  private current: Config
  private loadedAt = Date.now()
  private watcher: FSWatcher | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly info: Gauge<'version' | 'source'>
  private readonly loaded: Gauge
  private running: Promise<ReloadResult> | undefined

  constructor (private readonly options: {
    config: Config
    /** Reads and validates the config again (same file, environment and flags as at start); undefined: nothing to reload from. */
    load: (() => LoadedConfig) | undefined
    /** The config file, watched for changes; undefined: SIGHUP only. */
    path: string | undefined
    target: ReloadTarget
    log: Logger
    registry: Registry
  }) {
    this.current = options.config
    this.info = new Gauge({ name: 'broker_config_info', help: 'the config in force: version (digest) and source; value 1', labelNames: ['version', 'source'] as const, registers: [options.registry] })
    this.loaded = new Gauge({ name: 'broker_config_loaded_timestamp_seconds', help: 'when the config in force was loaded (unix seconds)', registers: [options.registry] })
    this.publish(options.path ?? 'defaults')
  }

  get version (): string { return configVersion(this.current) }
  get loadedAtMs (): number { return this.loadedAt }

  private publish (source: string): void {
    this.info.reset()
    this.info.set({ version: this.version, source }, 1)
    this.loaded.set(Math.floor(this.loadedAt / 1000))
  }

  /** One reload at a time; one asked for while another runs waits for it and runs after. */
  reload (why: string): Promise<ReloadResult> {
    const previous = this.running ?? Promise.resolve(undefined)
    const next = previous.then(() => this.reloadNow(why))
    this.running = next
    return next
  }

  private async reloadNow (why: string): Promise<ReloadResult> {
    const { log, target } = this.options
    target.reloadCertificates(why)
    if (this.options.load === undefined) return { ok: true, version: this.version }
    let next: Config
    try {
      next = this.options.load().config
    } catch (err) {
      const message = err instanceof BrokerHaError ? err.message : (err as Error).message
      log.error({ why, key: (err as BrokerHaError).key, err: message }, 'config reload refused: the config in force stays')
      return { ok: false, version: this.version, error: message }
    }
    const version = configVersion(next)
    if (version === this.version) return { ok: true, version }
    const restartOnly = changedKeys(this.current, next).filter((k) => !RELOADED.some((r) => k === r || k.startsWith(`${r}.`)))
    if (restartOnly.length > 0) log.warn({ keys: restartOnly }, 'config reload: these keys changed and take effect only after a restart')
    const disconnected = await target.applyAccess(next)
    this.current = next
    this.loadedAt = Date.now()
    this.publish(this.options.path ?? 'defaults')
    log.info({ why, version, disconnected: disconnected.length }, 'config reloaded: mqtt.auth, mqtt.acl and api.user in force')
    return { ok: true, version, disconnected }
  }

  /** Watches the config file's directory (a ConfigMap update swaps a symlink there). */
  watch (settleMs = 250): void {
    const path = this.options.path
    if (path === undefined || this.options.load === undefined) return
    try {
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file !== null && file !== basename(path) && !file.startsWith('..')) return
        clearTimeout(this.timer)
        this.timer = setTimeout(() => { void this.reload('config file changed') }, settleMs)
        this.timer.unref()
      })
      this.watcher.on('error', (err) => this.options.log.warn({ path, err: err.message }, 'config file watch failed; SIGHUP still reloads'))
    } catch (err) {
      this.options.log.warn({ path, err: (err as Error).message }, 'cannot watch the config file; SIGHUP still reloads')
    }
  }

  stop (): void {
    clearTimeout(this.timer)
    this.watcher?.close()
    this.options.registry.removeSingleMetric('broker_config_info')
    this.options.registry.removeSingleMetric('broker_config_loaded_timestamp_seconds')
  }
}

/** Dotted paths of the top two levels whose values differ (`mqtt.port`, `cluster.config`). */
function changedKeys (a: Config, b: Config): string[] {
  const out: string[] = []
  for (const section of Object.keys(a) as Array<keyof Config>) {
    const x = a[section] as Record<string, unknown>
    const y = b[section] as Record<string, unknown>
    for (const key of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (JSON.stringify(x[key]) !== JSON.stringify(y[key])) out.push(`${section}.${key}`)
    }
  }
  return out
}
