// The effective list of MQTT listeners: mqtt.port/mqtt.bind as the first
// plain one (the seed's keys keep working), then mqtt.listeners with their
// defaults filled in; and the rules between their fields that the schema
// cannot say. The server starts exactly this list (src/server/mqtt/listeners).
import { isIP } from 'node:net'
import type { Config, ListenerConfig } from './schema.js'

/** EMQX's convention; 8080 is the API. */
export const DEFAULT_LISTENER_PORTS = { mqtt: 1883, mqtts: 8883, ws: 8083, wss: 8084 } as const

export interface Listener extends ListenerConfig {
  bind: string
  port: number
  /** The config key of this listener, for messages: `mqtt.port` or `mqtt.listeners[2]`. */
  configKey: string
}

export function listenersOf (config: Pick<Config, 'mqtt'>): Listener[] {
  const m = config.mqtt
  const out: Listener[] = []
  if (m.port !== 0) {
    out.push({ configKey: 'mqtt.port', type: 'mqtt', bind: m.bind, port: m.port, path: '/mqtt', client_auth: 'none', identity: 'cn', username_must_match: false, proxy_protocol: false, max_connections: 0, origins: [] })
  }
  for (const [i, l] of m.listeners.entries()) {
    out.push({ ...l, configKey: `mqtt.listeners[${i}]`, bind: l.bind ?? m.bind, port: l.port ?? DEFAULT_LISTENER_PORTS[l.type] })
  }
  return out
}

export const isTls = (type: ListenerConfig['type']): boolean => type === 'mqtts' || type === 'wss'
export const isWebSocket = (type: ListenerConfig['type']): boolean => type === 'ws' || type === 'wss'

/** Problems as [key, message]; load.ts adds where each key came from. */
export function listenerProblems (config: Config): Array<[string, string]> {
  const problems: Array<[string, string]> = []
  const listeners = listenersOf(config)
  if (listeners.length === 0) problems.push(['mqtt.port', '0 (no plain listener) needs at least one entry in mqtt.listeners'])
  for (const l of listeners) {
    if (l.configKey === 'mqtt.port') continue
    if (isTls(l.type)) {
      if (l.cert === undefined) problems.push([`${l.configKey}.cert`, `is required for type ${l.type}`])
      if (l.key === undefined) problems.push([`${l.configKey}.key`, `is required for type ${l.type}`])
      if (l.client_auth !== 'none' && l.ca === undefined) problems.push([`${l.configKey}.ca`, `is required with client_auth ${l.client_auth} (the CAs client certificates must chain to)`])
    } else {
      for (const field of ['cert', 'key', 'ca'] as const) {
        if (l[field] !== undefined) problems.push([`${l.configKey}.${field}`, `applies to mqtts and wss listeners, not ${l.type}`])
      }
      if (l.client_auth !== 'none') problems.push([`${l.configKey}.client_auth`, `applies to mqtts and wss listeners, not ${l.type}`])
    }
    if (isWebSocket(l.type) && !l.path.startsWith('/')) problems.push([`${l.configKey}.path`, `"${l.path}" must start with /`])
    if (l.bind !== 'localhost' && isIP(l.bind) === 0) problems.push([`${l.configKey}.bind`, `"${l.bind}" is not an IP address`])
  }
  const taken: Array<{ key: string, bind: string, port: number }> = [
    ...listeners.map((l) => ({ key: l.configKey === 'mqtt.port' ? 'mqtt.port' : `${l.configKey}.port`, bind: l.bind, port: l.port })),
    { key: 'api.port', bind: config.api.bind, port: config.api.port },
    { key: 'cluster.port', bind: config.cluster.bind, port: config.cluster.port }
  ]
  const wildcard = (bind: string): boolean => bind === '0.0.0.0' || bind === '::'
  for (let i = 0; i < taken.length; i++) {
    for (let j = i + 1; j < taken.length; j++) {
      const a = taken[i]!
      const b = taken[j]!
      if (a.port === b.port && (a.bind === b.bind || wildcard(a.bind) || wildcard(b.bind))) {
        // The usual case: a plain listener in mqtt.listeners on 1883 beside mqtt.port's default.
        const hint = a.key === 'mqtt.port' ? ' (mqtt.port is the first plain listener: change this port, or set mqtt.port: 0 to list every listener here)' : ''
        problems.push([b.key, `port ${b.port} is already used by ${a.key}${hint}`])
      }
    }
  }
  return problems
}
