// Where chaos nodes listen. On Linux all of 127.0.0.0/8 is loopback, so each
// node gets its own address with the standard ports (1883, 8080, 7946), as a
// pod would. Elsewhere (macOS) only 127.0.0.1 exists: nodes share it with
// distinct ports. Every candidate is probed first, so a machine with
// something on 127.0.0.2 (or two runs at once) still works.
import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'
import type { NodeEndpoint } from './cluster-config.js'

async function tcpFree (host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

async function udpFree (host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createSocket('udp4')
    socket.once('error', () => { socket.close(); resolve(false) })
    socket.bind(port, host, () => socket.close(() => resolve(true)))
  })
}

async function endpointFree (e: NodeEndpoint): Promise<boolean> {
  const checks = await Promise.all([tcpFree(e.host, e.mqttPort), tcpFree(e.host, e.apiPort), tcpFree(e.host, e.clusterPort), udpFree(e.host, e.clusterPort)])
  return checks.every(Boolean)
}

/** The address after `ip` (127.a.b.c + 1), skipping .0 and .255 in the last byte. */
export function nextAddress (ip: string): string {
  const parts = ip.split('.').map(Number)
  let value = ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!
  do { value++ } while ((value & 0xff) === 0 || (value & 0xff) === 0xff)
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.')
}

export interface AllocateOptions {
  /** First address tried (Linux); default 127.0.0.2. */
  baseAddress?: string
  /** First MQTT port tried when nodes share 127.0.0.1 (non-Linux); default 11883. */
  basePort?: number
  platform?: NodeJS.Platform
  /** Candidates tried before giving up. */
  attempts?: number
}

export async function allocateEndpoints (count: number, options: AllocateOptions = {}): Promise<NodeEndpoint[]> {
  const out: NodeEndpoint[] = []
  const attempts = options.attempts ?? 200
  const perHost = (options.platform ?? process.platform) === 'linux'
  let host = options.baseAddress ?? '127.0.0.2'
  let port = options.basePort ?? 11883
  for (let tried = 0; out.length < count; tried++) {
    if (tried >= attempts) throw new Error(`found only ${out.length} of ${count} free loopback endpoints after ${attempts} tries`)
    const name = `chaos-${out.length + 1}`
    const candidate: NodeEndpoint = perHost
      ? { name, host, mqttPort: 1883, apiPort: 8080, clusterPort: 7946 }
      : { name, host: '127.0.0.1', mqttPort: port, apiPort: port + 1, clusterPort: port + 2 }
    if (perHost) host = nextAddress(host)
    else port += 10
    if (await endpointFree(candidate)) out.push(candidate)
  }
  return out
}
