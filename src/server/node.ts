// One broker node: the composition root. It builds the parts from the config,
// starts them in dependency order and stops them in reverse.
import { Registry, collectDefaultMetrics } from 'prom-client'
import type { Config } from '../config/index.js'
import type { Logger } from '../log.js'
import { Bus } from './bus.js'
import { MqttServer } from './mqtt/index.js'
import { SwimMembership, type Membership } from './cluster/index.js'
import { DataPlane } from './cluster/dataplane/data-plane.js'
import { ApiServer, ClientConnections } from './api/index.js'
import { Storage } from './storage/storage.js'
import { VERSION } from '../version.js'
import { ConfigReloader, type ReloadResult } from './reload.js'
import { listenersOf, type LoadedConfig } from '../config/index.js'

export interface Lifecycle {
  start (): Promise<void>
  stop (): Promise<void>
}

export interface BrokerNodeOptions {
  /**
   * Started by `broker-ha chaos` (hidden `serve --chaos-control`): the cluster
   * transport gets the fault-injection wrapper and the API its /chaos/faults
   * route. Never a config key, so a deployment cannot switch it on by accident.
   */
  chaosControl?: boolean
  /**
   * How to read the config again on a reload (SIGHUP, a change of the file):
   * the same file, environment and flags as at start. Without it a reload
   * only re-reads the certificates.
   */
  reload?: { load: () => LoadedConfig, path: string | undefined, watch?: boolean }
  /** `serve --reset-storage`: the store in storage.dir is moved aside and the node starts empty. */
  resetStorage?: boolean
}

export class BrokerNode {
  readonly config: Config
  readonly log: Logger
  readonly bus = new Bus()
  readonly registry = new Registry()
  readonly mqtt: MqttServer
  readonly membership: Membership
  readonly dataPlane: DataPlane
  readonly api: ApiServer
  readonly storage: Storage
  private readonly connections: ClientConnections
  readonly reloader: ConfigReloader
  private readonly watchConfig: boolean
  readonly startedAt = Date.now()
  private readonly started: Array<{ name: string, part: Lifecycle }> = []
  private stopping: Promise<void> | undefined

  constructor (config: Config, log: Logger, options: BrokerNodeOptions = {}) {
    this.config = config
    this.log = log
    collectDefaultMetrics({ register: this.registry })
    this.mqtt = new MqttServer({ config, log: log.child({ component: 'mqtt' }), bus: this.bus, registry: this.registry })
    // Always the real membership: a node without discovery is a cluster of one
    // that others can still join through their own seeds.
    const swim = new SwimMembership({
      config,
      log: log.child({ component: 'cluster' }),
      registry: this.registry,
      // The first listener's port: mqtt.port, or with mqtt.port 0 the first of mqtt.listeners.
      meta: { api: config.api.port, mqtt: listenersOf(config)[0]?.port ?? config.mqtt.port, version: VERSION },
      faultInjection: options.chaosControl === true
    })
    this.membership = swim
    this.membership.on('join', (member) => this.bus.publish('cluster:new_member', member))
    this.dataPlane = new DataPlane({ config, log: log.child({ component: 'dataplane' }), registry: this.registry, bus: this.bus, membership: swim, mqtt: this.mqtt, faults: swim.faults })
    // After the data plane: its observer of the session store is there, the store's goes next to it.
    this.storage = new Storage({ config, log: log.child({ component: 'storage' }), registry: this.registry, mqtt: this.mqtt, dataPlane: this.dataPlane, reset: options.resetStorage })
    this.connections = new ClientConnections(this.mqtt.aedes)
    this.api = new ApiServer({
      config,
      log: log.child({ component: 'api' }),
      bus: this.bus,
      registry: this.registry,
      mqtt: this.mqtt,
      membership: this.membership,
      startedAt: this.startedAt,
      faults: swim.faults,
      connections: this.connections
    })
    this.watchConfig = options.reload?.watch ?? options.reload !== undefined
    this.reloader = new ConfigReloader({
      config,
      load: options.reload?.load,
      path: options.reload?.path,
      log: log.child({ component: 'reload' }),
      registry: this.registry,
      target: {
        reloadCertificates: (why) => this.mqtt.listeners?.reloadCertificates(why),
        applyAccess: async (next) => {
          this.api.replaceUsers(next.api.user)
          return await this.mqtt.access.replace(next.mqtt, next.mqtt.reload_disconnect)
        }
      }
    })
  }

  /** SIGHUP: certificates, then mqtt.auth, mqtt.acl and api.user from the config file (reload.ts). */
  reload (why = 'SIGHUP'): Promise<ReloadResult> {
    return this.reloader.reload(why)
  }

  /** Starts every part; if one fails, the ones already started are stopped again. */
  async start (): Promise<void> {
    const parts: Array<[string, Lifecycle]> = [
      // First: what the disk holds is back in the broker before any peer or client sees this node; stopped last.
      ['storage', this.storage],
      ['membership', this.membership],
      // Between membership and MQTT: links follow members; stopped after MQTT, so messages in flight still leave.
      ['dataplane', this.dataPlane],
      // Before MQTT, so the clients that connect the moment it listens are recorded too.
      ['client-connections', this.connections],
      ['mqtt', this.mqtt],
      // After MQTT, so it is stopped before it: the API never reports on a broker that is gone.
      ['api', this.api]
    ]
    for (const [name, part] of parts) {
      try {
        await part.start()
      } catch (err) {
        await this.stop()
        throw err
      }
      this.started.push({ name, part })
    }
    if (this.watchConfig) this.reloader.watch()
    this.log.info({ name: this.config.cluster.name, version: VERSION, config: this.reloader.version }, 'broker-ha node started')
  }

  /** Stops in reverse start order; safe to call more than once. */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      for (const { name, part } of this.started.reverse()) {
        try {
          await part.stop()
        } catch (err) {
          this.log.error({ err, part: name }, 'error while stopping')
        }
      }
      this.started.length = 0
      this.reloader.stop()
    })()
    return this.stopping
  }
}
