// Start real broker nodes for tests: in this process (fast, internals
// reachable) or as a child process running the real executable (signals,
// exit statuses, logs). Both listen on their own loopback address.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { stringify } from 'yaml'
import { pino } from 'pino'
import { loadConfig, type Config } from '../../src/config/index.js'
import { BrokerNode } from '../../src/server/node.js'
import { freeLoopbackAddress } from './loopback.js'
import { waitFor } from './wait.js'

/** The repository root (tests run from dist/test/...). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const BIN = join(ROOT, 'bin', 'broker-ha.js')

type DeepPartial<T> = { [K in keyof T]?: T[K] extends Array<infer U> ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] }
export type ConfigOverrides = DeepPartial<Config>

function merge (base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = out[k]
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof b === 'object' && b !== null && !Array.isArray(b)
      ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
      : v
  }
  return out
}

/** A config object for a node on `host`, quiet logs, with overrides merged in. */
export function nodeConfigObject (host: string, overrides: ConfigOverrides = {}): Record<string, unknown> {
  const base = {
    api: { bind: host },
    mqtt: { bind: host },
    cluster: { bind: host, name: `node-${host}` },
    log: { level: 'warn', format: 'json' }
  }
  return merge(base, overrides as Record<string, unknown>)
}

export interface TestNode {
  host: string
  config: Config
  node: BrokerNode
  mqttUrl: string
  apiUrl: string
  stop: () => Promise<void>
}

/** Starts a node inside the test process. */
export async function startNode (overrides: ConfigOverrides = {}, host?: string): Promise<TestNode> {
  const address = host ?? await freeLoopbackAddress()
  const { config } = loadConfig({ object: nodeConfigObject(address, overrides) })
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })
  const node = new BrokerNode(config, log)
  await node.start()
  return {
    host: address,
    config,
    node,
    mqttUrl: `mqtt://${address}:${config.mqtt.port}`,
    apiUrl: `http://${address}:${config.api.port}`,
    stop: () => node.stop()
  }
}

export interface ProcessNode {
  host: string
  mqttUrl: string
  apiUrl: string
  child: ChildProcess
  /** The config file it was started with (tests rewrite it to reload). */
  configPath: string
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string
  /** Sends a signal and waits for the exit; resolves with the exit code (or signal). */
  stop: (signal?: NodeJS.Signals) => Promise<number | string>
}

/** Runs `broker-ha serve` as a child process and waits until MQTT accepts connections. */
/**
 * `prefix`: a command the node is started under, which must exec it (the
 * child's pid is then the node's), e.g. one that enters a cgroup first.
 */
export async function startProcessNode (overrides: ConfigOverrides = {}, options: { host?: string, env?: Record<string, string>, waitUntilListening?: boolean, args?: string[], prefix?: string[] } = {}): Promise<ProcessNode> {
  const host = options.host ?? await freeLoopbackAddress()
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-test-'))
  const configPath = join(dir, 'config.yaml')
  // Info level: the helper waits for the "MQTT listening" line.
  const object = nodeConfigObject(host, merge({ log: { level: 'info' } }, overrides as Record<string, unknown>))
  writeFileSync(configPath, stringify(object))
  const command = [...(options.prefix ?? []), process.execPath, BIN, 'serve', '--config', configPath, ...(options.args ?? [])]
  const child = spawn(command[0]!, command.slice(1), {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { output += d.toString() })
  const exited = once(child, 'exit').then(([code, signal]) => {
    rmSync(dir, { recursive: true, force: true })
    return (code ?? signal) as number | string
  })
  const mqtt = (object.mqtt as { port?: number }).port ?? 1883
  const api = (object.api as { port?: number }).port ?? 8080
  const node: ProcessNode = {
    host,
    mqttUrl: `mqtt://${host}:${mqtt}`,
    apiUrl: `http://${host}:${api}`,
    child,
    configPath,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return await exited
    }
  }
  if (options.waitUntilListening !== false) {
    await waitFor(() => output.includes('MQTT listening') || child.exitCode !== null, { timeout: 20_000, message: `node on ${host} to listen` })
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}:\n${output}`)
  }
  return node
}

/** A line of a node's JSON log. */
export interface LogLine { msg: string, client?: string, [key: string]: unknown }

/** An in-process node whose info-level log lines are collected as JSON objects (for tests about what it logs). */
export async function startLoggedNode (overrides: ConfigOverrides = {}): Promise<{ node: BrokerNode, host: string, config: Config, lines: LogLine[] }> {
  const host = await freeLoopbackAddress()
  const lines: LogLine[] = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine)
      done()
    }
  })
  const { config } = loadConfig({ object: nodeConfigObject(host, overrides) })
  const node = new BrokerNode(config, pino({ level: 'info' }, sink))
  await node.start()
  return { node, host, config, lines }
}
