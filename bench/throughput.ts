// Throughput benchmark: broker-ha's MqttServer against bare aedes
// 2.0.0-beta.1 (default memory persistence, plain net server) and, when
// installed, mosquitto - all on loopback, in the same run.
//
// Each broker runs in its own child process (as in production, and so the
// clients below do not share its event loop); this process runs one
// publisher and one subscriber per run. By default they are lean raw-socket
// MQTT 3.1.1 clients (pre-encoded PUBLISHes, a framing-only reader that
// acknowledges QoS 1), so the broker rather than the client is what saturates;
// `--client mqttjs` uses mqtt.js instead. A run publishes N messages of
// --size bytes at one QoS, keeping at most --window messages between
// publisher and subscriber so no queue grows without bound, and measures
// msgs/s from the first publish to the last message received. Rounds
// alternate the order of the brokers to cancel drift; the median per broker
// and QoS is reported, with the ratio broker-ha / aedes.
//
//   npm run bench -- [--messages 50000] [--rounds 7] [--size 64] [--window 5000] [--client raw|mqttjs] [--no-mosquitto]
import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { createServer, createConnection, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { once } from 'node:events'
import mqtt, { type MqttClient } from 'mqtt'

type Target = 'broker-ha' | 'aedes' | 'mosquitto'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate: (packet: object, opts?: { protocolVersion: number }) => Buffer }

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '7' },
    size: { type: 'string', default: '64' },
    window: { type: 'string', default: '5000' },
    'run-timeout': { type: 'string', default: '60000' },
    'no-mosquitto': { type: 'boolean', default: false },
    client: { type: 'string', default: 'raw' },
    // measure one already running broker only (e.g. under a profiler)
    url: { type: 'string' },
    qos: { type: 'string' },
    // internal: run a broker in this (child) process
    serve: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' }
  }
})

async function portFree (host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, host, () => s.close(() => resolve(true)))
  })
}

async function freeAddress (): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const host = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 256)}.${2 + Math.floor(Math.random() * 250)}`
    if (await portFree(host, 1883)) return host
  }
  throw new Error('no free loopback address')
}

// --- child side -------------------------------------------------------------

async function serve (target: string, host: string, port: number): Promise<void> {
  if (target === 'aedes') {
    const { Aedes } = await import('aedes')
    const aedes = await Aedes.createBroker()
    const server = createServer(aedes.handle)
    server.listen(port, host)
    await once(server, 'listening')
  } else {
    const { pino } = await import('pino')
    const { Registry } = await import('prom-client')
    const { loadConfig } = await import('../src/config/index.js')
    const { Bus } = await import('../src/server/bus.js')
    const { MqttServer } = await import('../src/server/mqtt/index.js')
    const { config } = loadConfig({ object: { mqtt: { bind: host, port }, cluster: { name: 'bench' }, log: { level: 'silent' } } })
    const server = new MqttServer({ config, log: pino({ level: 'silent' }), bus: new Bus(), registry: new Registry() })
    await server.start()
  }
  process.send!('ready')
}

// --- parent side ------------------------------------------------------------

interface Broker { target: Target, url: string, stop: () => void }

async function startNodeBroker (target: 'broker-ha' | 'aedes'): Promise<Broker> {
  const host = await freeAddress()
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', target, '--host', host, '--port', '1883'], { stdio: 'inherit' })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`${target} exited with ${code}`)))
  })
  return { target, url: `mqtt://${host}:1883`, stop: () => child.kill('SIGKILL') }
}

function mosquittoPath (): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) {
    try {
      execFileSync(p, ['-h'], { stdio: 'ignore' })
      return p
    } catch (err) {
      // mosquitto -h exits with 3 after printing help: it exists.
      if ((err as { status?: number }).status !== undefined && (err as { code?: string }).code !== 'ENOENT') return p
    }
  }
  return undefined
}

async function startMosquitto (bin: string): Promise<Broker> {
  const host = await freeAddress()
  const dir = mkdtempSync(join(tmpdir(), 'bench-mosquitto-'))
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, `listener 1883 ${host}\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n`)
  const child = spawn(bin, ['-c', conf], { stdio: 'ignore' })
  const url = `mqtt://${host}:1883`
  for (let i = 0; i < 100; i++) {
    try {
      const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 500 })
      await c.endAsync()
      return { target: 'mosquitto', url, stop: () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) } }
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  child.kill('SIGKILL')
  throw new Error('mosquitto did not start')
}

async function runMqttjs (url: string, qos: 0 | 1, n: number, size: number, window: number, timeoutMs: number): Promise<number> {
  const options = { reconnectPeriod: 0, protocolVersion: 4 as const }
  const sub: MqttClient = await mqtt.connectAsync(url, { ...options, clientId: `bench-sub-${process.pid}` })
  const pub: MqttClient = await mqtt.connectAsync(url, { ...options, clientId: `bench-pub-${process.pid}` })
  const topic = `bench/${Math.random().toString(36).slice(2)}`
  await sub.subscribeAsync(topic, { qos })
  const payload = Buffer.alloc(size, 120)
  let received = 0
  let sent = 0
  const started = performance.now()
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`run timed out with ${received}/${n} received`)), timeoutMs)
      const pump = (): void => {
        while (sent < n && sent - received < window) {
          sent++
          pub.publish(topic, payload, { qos })
        }
      }
      sub.on('message', () => {
        received++
        if (received === n) {
          clearTimeout(timer)
          resolve()
        } else if (sent - received <= window / 2) {
          pump()
        }
      })
      pump()
    })
    return n / ((performance.now() - started) / 1000)
  } finally {
    await Promise.all([sub.endAsync(true), pub.endAsync(true)])
  }
}

// --- lean raw clients -------------------------------------------------------

/** Calls onPacket(type byte, body) for each MQTT packet in the byte stream. */
function framer (onPacket: (header: number, body: Buffer) => void, onChunkEnd: () => void = () => {}): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0)
  return (chunk) => {
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let pos = 0
    for (;;) {
      if (buf.length - pos < 2) break
      let len = 0
      let mult = 1
      let i = pos + 1
      let complete = false
      for (; i < buf.length && i < pos + 5; i++) {
        len += (buf[i]! & 0x7F) * mult
        mult *= 128
        if ((buf[i]! & 0x80) === 0) { complete = true; i++; break }
      }
      if (!complete || buf.length - i < len) break
      onPacket(buf[pos]!, buf.subarray(i, i + len))
      pos = i + len
    }
    pending = pos === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos))
    onChunkEnd()
  }
}

async function rawConnect (url: string, clientId: string, onPacket: (header: number, body: Buffer) => void, onChunkEnd?: () => void): Promise<Socket> {
  const { hostname, port } = new URL(url)
  const socket = createConnection({ host: hostname, port: Number(port) })
  await once(socket, 'connect')
  let connacked: () => void
  const connack = new Promise<void>((resolve) => { connacked = resolve })
  socket.on('data', framer((header, body) => {
    if ((header & 0xF0) === 0x20) connacked()
    else onPacket(header, body)
  }, onChunkEnd))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 60 }))
  await connack
  return socket
}

async function runRaw (url: string, qos: 0 | 1, n: number, size: number, window: number, timeoutMs: number): Promise<number> {
  const topic = `bench/${Math.random().toString(36).slice(2)}`
  let received = 0
  let sent = 0
  let finish: () => void = () => {}
  let subscribed: () => void = () => {}
  let pump: () => void = () => {}
  const suback = new Promise<void>((resolve) => { subscribed = resolve })
  // PUBACKs of one read go out in one write, as a real client's would.
  let acks: Buffer[] = []
  const sub = await rawConnect(url, `bench-sub-${process.pid}`, (header, body) => {
    const type = header & 0xF0
    if (type === 0x90) return subscribed()
    if (type !== 0x30) return
    received++
    if ((header & 0x06) !== 0) {
      // QoS 1: the packet id follows the topic.
      const at = 2 + body.readUInt16BE(0)
      acks.push(Buffer.from([0x40, 0x02, body[at]!, body[at + 1]!]))
    }
  }, () => {
    if (acks.length > 0) {
      sub.write(Buffer.concat(acks))
      acks = []
    }
    if (received >= n) finish()
    else if (sent - received <= window / 2) pump()
  })
  const pub = await rawConnect(url, `bench-pub-${process.pid}`, () => {})
  sub.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }))
  await suback
  const payload = Buffer.alloc(size, 120)
  const template = mqttPacket.generate({ cmd: 'publish', topic, payload, qos, messageId: qos > 0 ? 1 : undefined })
  // For QoS 1 the packet id sits right after the topic, before the payload.
  const idAt = template.length - size - 2
  let nextId = 1
  pump = () => {
    const count = Math.min(n - sent, window - (sent - received))
    if (count <= 0) return
    const batch = Buffer.allocUnsafe(template.length * count)
    for (let k = 0; k < count; k++) {
      template.copy(batch, k * template.length)
      if (qos > 0) {
        batch.writeUInt16BE(nextId, k * template.length + idAt)
        nextId = nextId === 65535 ? 1 : nextId + 1
      }
    }
    sent += count
    pub.write(batch)
  }
  const started = performance.now()
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`run timed out with ${received}/${n} received`)), timeoutMs)
      finish = () => { clearTimeout(timer); resolve() }
      pump()
    })
    return n / ((performance.now() - started) / 1000)
  } finally {
    sub.destroy()
    pub.destroy()
  }
}

async function run (url: string, qos: 0 | 1, n: number, size: number, window: number, timeoutMs: number): Promise<number> {
  return args.client === 'mqttjs'
    ? await runMqttjs(url, qos, n, size, window, timeoutMs)
    : await runRaw(url, qos, n, size, window, timeoutMs)
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function main (): Promise<void> {
  const n = Number(args.messages)
  const rounds = Number(args.rounds)
  const size = Number(args.size)
  const window = Number(args.window)
  const timeoutMs = Number(args['run-timeout'])
  if (args.url !== undefined) {
    for (let r = 0; r < rounds; r++) {
      for (const qos of (args.qos !== undefined ? [Number(args.qos)] : [0, 1]) as Array<0 | 1>) {
        console.log(`round ${r + 1} qos ${qos} ${Math.round(await run(args.url, qos, n, size, window, timeoutMs))} msgs/s`)
      }
    }
    return
  }
  const brokers: Broker[] = []
  try {
    brokers.push(await startNodeBroker('broker-ha'), await startNodeBroker('aedes'))
    const mosq = args['no-mosquitto'] === true ? undefined : mosquittoPath()
    if (mosq !== undefined) brokers.push(await startMosquitto(mosq))
    else console.log('mosquitto not installed (or --no-mosquitto): two columns only')
    console.log(`${n} messages of ${size} bytes per run, window ${window}, ${rounds} rounds, ${args.client} clients, brokers: ${brokers.map((b) => b.target).join(', ')}`)
    // Warm-up: JIT and connection paths, not measured.
    for (const b of brokers) await run(b.url, 0, Math.min(n, 5000), size, window, timeoutMs)
    const results = new Map<string, number[]>()
    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round so no broker always runs first or last.
      const order = brokers.map((_, i) => brokers[(i + r) % brokers.length]!)
      for (const qos of [0, 1] as const) {
        for (const b of order) {
          const rate = await run(b.url, qos, n, size, window, timeoutMs)
          const key = `${b.target}/${qos}`
          results.set(key, [...(results.get(key) ?? []), rate])
          console.log(`round ${r + 1} qos ${qos} ${b.target.padEnd(9)} ${Math.round(rate)} msgs/s`)
        }
      }
    }
    console.log('\nmedian msgs/s')
    console.log(['qos', ...brokers.map((b) => b.target), 'broker-ha/aedes'].map((s) => s.padStart(16)).join(''))
    for (const qos of [0, 1]) {
      const med = brokers.map((b) => median(results.get(`${b.target}/${qos}`)!))
      const ratio = med[0]! / med[1]!
      console.log([String(qos), ...med.map((m) => String(Math.round(m))), ratio.toFixed(2) + 'x'].map((s) => s.padStart(16)).join(''))
    }
  } finally {
    for (const b of brokers) b.stop()
  }
}

if (args.serve !== undefined) {
  await serve(args.serve, args.host!, Number(args.port))
} else {
  await main()
}
