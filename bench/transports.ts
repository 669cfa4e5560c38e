// TLS and WebSocket throughput beside plain TCP on the same broker-ha node
// (`npm run bench` runs it; alone: `node dist/bench/transports.js [--rounds N]
// [--count N]`): one-to-one QoS 1, the same load over mqtt://, mqtts://, ws://
// and wss:// of one node, rounds rotated, medians; mosquitto over TCP and TLS
// beside them when it is installed. Goal: TLS and WebSocket >= 0.7x plain TCP.
// Prints a markdown section, then its figures as one JSON line.
import { spawn } from 'node:child_process'
import { writeFileSync, chmodSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { runBench, type BenchOptions } from '../src/bench/index.js'
import { rawConnect } from '../src/bench/raw-client.js'
import { startProcessNode } from '../test/helpers/node.js'
import { freeLoopbackAddress } from '../test/helpers/loopback.js'
import { TestCertificates } from '../test/helpers/certificates.js'

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, count: { type: 'string', default: '50000' }, mosquitto: { type: 'string', default: '/usr/sbin/mosquitto' } } })
const ROUNDS = Number(args.rounds)
const COUNT = Number(args.count)
const log = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) }
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }

// The single-node suite's QoS 1 load (bench/suite.ts): 1 -> 1, 64 bytes, 5,000 in flight.
const load = (url: string, ca: string): Omit<BenchOptions, 'prefix'> => ({
  urls: [url], publishers: 1, subscribers: 1, qos: 1, size: 64, rate: 0, pattern: 'one-to-one', wildcard: false, protocolVersion: 4,
  count: COUNT, workers: Math.min(2, availableParallelism()), inflight: 5000, drainMs: 2000, connectConcurrency: 256, ca
})

async function startMosquitto (bin: string, certs: TestCertificates): Promise<{ urls: Record<string, string>, stop: () => void } | undefined> {
  const host = await freeLoopbackAddress()
  const server = certs.server(host)
  // mosquitto started as root drops to its own user, which must read the (test-only) key.
  chmodSync(certs.dir, 0o755)
  for (const f of [server.cert, server.key]) chmodSync(f, 0o644)
  const conf = join(certs.dir, 'mosquitto.conf')
  writeFileSync(conf, [
    `listener 1883 ${host}`, `listener 8883 ${host}`, `certfile ${server.cert}`, `keyfile ${server.key}`,
    'allow_anonymous true', 'persistence false', 'max_queued_messages 0', 'max_inflight_messages 0', ''
  ].join('\n'))
  const child = spawn(bin, ['-c', conf], { stdio: 'ignore' })
  child.on('error', () => {})
  for (let i = 0; i < 100; i++) {
    try {
      const c = await rawConnect(`mqtt://${host}:1883`, 'probe', 4, () => {}, 500)
      c.socket.destroy()
      return { urls: { 'mosquitto mqtt': `mqtt://${host}:1883`, 'mosquitto mqtts': `mqtts://${host}:8883` }, stop: () => child.kill('SIGKILL') }
    } catch {
      await sleep(50)
    }
  }
  child.kill('SIGKILL')
  return undefined
}

async function main (): Promise<void> {
  const certs = new TestCertificates()
  const host = await freeLoopbackAddress()
  const server = certs.server(host)
  const tls = { cert: server.cert, key: server.key }
  const node = await startProcessNode({ mqtt: { max_connections: 0, listeners: [{ type: 'mqtts', ...tls }, { type: 'ws' }, { type: 'wss', ...tls }] as never } }, { host })
  const mosquitto = await startMosquitto(args.mosquitto, certs)
  const urls: Record<string, string> = {
    mqtt: `mqtt://${host}:1883`, mqtts: `mqtts://${host}:8883`, ws: `ws://${host}:8083/mqtt`, wss: `wss://${host}:8084/mqtt`, ...mosquitto?.urls
  }
  const ca = (await import('node:fs')).readFileSync(certs.ca.cert, 'utf8')
  const rates: Record<string, number[]> = {}
  try {
    const names = Object.keys(urls)
    for (const name of names) await runBench({ ...load(urls[name]!, ca), count: 5000 })
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of names.map((_, i) => names[(i + r) % names.length]!)) {
        const res = await runBench(load(urls[name]!, ca))
        ;(rates[name] ??= []).push(res.receiveRate)
        log(`QoS 1 over ${name}: ${Math.round(res.receiveRate)} msg/s, lost ${res.lost}`)
      }
    }
  } finally {
    mosquitto?.stop()
    await node.stop('SIGKILL')
    certs.cleanup()
  }
  const m = Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, median(v)]))
  const lines = ['## TLS and WebSocket on one node', '',
    `One-to-one QoS 1, 64-byte payloads, ${COUNT.toLocaleString('en-US')} messages, 5,000 in flight, the same broker-ha node over each listener; median of ${ROUNDS} rounds, order rotated. Goal: TLS and WebSocket >= 0.7x plain TCP.`, '',
    '| transport | broker-ha | / plain TCP | goal |', '| --- | --- | --- | --- |']
  for (const t of ['mqtt', 'mqtts', 'ws', 'wss']) {
    const ratio = m[t]! / m.mqtt!
    lines.push(`| ${t} | ${Math.round(m[t]!).toLocaleString('en-US')} msg/s | ${ratio.toFixed(2)}x | ${t === 'mqtt' ? '-' : `>= 0.7x: ${ratio >= 0.7 ? 'met' : '**not met**'}`} |`)
  }
  if (mosquitto !== undefined) {
    lines.push(`| mosquitto mqtt | ${Math.round(m['mosquitto mqtt']!).toLocaleString('en-US')} msg/s | - | - |`)
    lines.push(`| mosquitto mqtts | ${Math.round(m['mosquitto mqtts']!).toLocaleString('en-US')} msg/s | ${(m['mosquitto mqtts']! / m['mosquitto mqtt']!).toFixed(2)}x of mosquitto TCP | - |`)
  }
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify({ medians: m, runs: rates })}\n`)
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
