// The MQTT side of a node: aedes, its TCP listener, authentication and ACL,
// limits. Everything else in the node talks to MQTT through this class.
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { Aedes } from 'aedes'
import type { Registry } from 'prom-client'
import type { Config } from '../../config/index.js'
import type { Logger } from '../../log.js'
import type { Bus } from '../bus.js'
import { BrokerHaError } from '../../errors.js'

export interface MqttServerOptions {
  config: Config
  log: Logger
  bus: Bus
  registry: Registry
}

export class MqttServer {
  readonly aedes: Aedes
  private readonly server: Server
  private readonly options: MqttServerOptions
  private readonly sockets = new Set<Socket>()

  constructor (options: MqttServerOptions) {
    this.options = options
    this.aedes = new Aedes({ id: options.config.cluster.name })
    this.server = createServer((socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
      this.aedes.handle(socket)
    })
  }

  async start (): Promise<void> {
    const { bind, port } = this.options.config.mqtt
    this.server.listen(port, bind)
    try {
      await once(this.server, 'listening')
    } catch (err) {
      throw new BrokerHaError('LISTEN_FAILED', `cannot listen for MQTT on ${bind}:${port}: ${(err as Error).message}`, { key: 'mqtt.port', cause: err })
    }
    this.options.log.info({ bind, port }, 'MQTT listening')
  }

  address (): { address: string, port: number } {
    const a = this.server.address()
    if (a === null || typeof a === 'string') throw new Error('MQTT server is not listening')
    return { address: a.address, port: a.port }
  }

  async stop (): Promise<void> {
    this.server.close()
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()))
  }
}
