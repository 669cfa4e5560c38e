// A node dies under mosquitto_sub, as a Kubernetes user runs it: one address
// (here a TCP forwarder standing in for the Service, connecting each new
// connection to the first node that accepts it), `mosquitto_sub -c` with a
// fixed client id at QoS 1, MQTT 3.1.1 and 5. Its node is SIGKILLed while
// QoS 1 messages are published on another node; mosquitto_sub reconnects by
// itself to the same address, lands on a surviving node, and prints every
// acknowledged message. Three `broker-ha serve` processes.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { startProcessCluster, FAST } from '../helpers/cluster.js'
import type { ProcessNode } from '../helpers/node.js'
import { freeLoopbackAddress } from '../helpers/loopback.js'
import { connect, uniqueId } from '../helpers/mqtt-clients.js'
import { waitFor } from '../helpers/wait.js'

const HAVE_MOSQUITTO = spawnSync('mosquitto_sub', ['--help'], { stdio: 'ignore' }).error === undefined
const COUNT = 400
const KILL_AT = 150

const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => { for (const c of cleanups.reverse()) await c() })

/** A stand-in for a Service address: each connection goes to the first of `upstreams` that accepts it. */
async function forwarder (upstreams: ProcessNode[]): Promise<{ host: string, server: Server }> {
  const host = await freeLoopbackAddress()
  const open = new Set<Socket>()
  const server = createServer((downstream) => {
    open.add(downstream)
    downstream.pause()
    downstream.on('error', () => {})
    downstream.on('close', () => open.delete(downstream))
    const attempt = (i: number): void => {
      if (i >= upstreams.length) { downstream.destroy(); return }
      const u = new URL(upstreams[i]!.mqttUrl)
      const up = tcpConnect({ host: u.hostname, port: Number(u.port) })
      up.once('error', () => attempt(i + 1))
      up.once('connect', () => {
        up.removeAllListeners('error')
        up.on('error', () => downstream.destroy())
        up.on('close', () => downstream.destroy())
        downstream.on('close', () => up.destroy())
        downstream.pipe(up)
        up.pipe(downstream)
        downstream.resume()
      })
    }
    attempt(0)
  })
  server.listen(1883, host)
  await once(server, 'listening')
  cleanups.push(() => { for (const s of open) s.destroy(); server.close() })
  return { host, server }
}

test('mosquitto_sub -c through one address keeps its session and every acknowledged QoS 1 message when its node is killed', { skip: HAVE_MOSQUITTO ? false : 'mosquitto-clients is not installed' }, async () => {
  const nodes = await startProcessCluster(3, { cluster: { config: FAST } } as never)
  cleanups.push(async () => await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL'))))
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]
  // A first, then C: what a Service does once A's endpoint is gone.
  const service = await forwarder([a, c])
  const topic = uniqueId('mosq-fo')
  const subs = [['-V', 'mqttv311'], ['-V', 'mqttv5', '-x', '300']].map((version) => {
    const lines: string[] = []
    const child: ChildProcess = spawn('mosquitto_sub', ['-h', service.host, '-p', '1883', '-i', uniqueId('mosq-sub'), '-c', '-q', '1', '-k', '5', ...version, '-t', `${topic}/#`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let rest = ''
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (rest + d.toString()).split('\n')
      rest = parts.pop()!
      lines.push(...parts)
    })
    let err = ''
    child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    cleanups.push(() => child.kill('SIGKILL'))
    return { version: version[1]!, lines, err: () => err }
  })

  const pub = await connect(b.mqttUrl, { clientId: uniqueId('mosq-pub'), reconnectPeriod: 0 })
  cleanups.push(async () => await pub.endAsync(true))
  // Routed once a probe published on B reaches both.
  await waitFor(async () => {
    await pub.publishAsync(`${topic}/probe`, '-1', { qos: 0 })
    return subs.every((s) => s.lines.includes('-1'))
  }, { timeout: 20_000, interval: 100, message: 'the mosquitto_sub subscriptions on A to reach B' })

  const acked: number[] = []
  const inFlight = new Set<Promise<void>>()
  for (let i = 0; i < COUNT; i++) {
    const p = pub.publishAsync(`${topic}/m`, String(i), { qos: 1 }).then(() => { acked.push(i) }, () => {})
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
    if (i === KILL_AT) a.child.kill('SIGKILL')
    if (inFlight.size >= 20) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  assert.ok(acked.length > COUNT - 20, `acknowledged ${acked.length} of ${COUNT}`)

  for (const s of subs) {
    const missing = (): number[] => { const got = new Set(s.lines); return acked.filter((n) => !got.has(String(n))) }
    await waitFor(() => missing().length === 0, { timeout: 30_000, message: `mosquitto_sub ${s.version} to print every acknowledged message` }).catch(() => {})
    assert.deepEqual(missing(), [], `mosquitto_sub ${s.version}: acknowledged messages never printed; stderr: ${s.err()}`)
  }
})
