// Failure-detection benchmark for the membership (issue 4). For clusters of
// 3, 5 and 10 members with the default config it prints:
//  - detection time: from SIGKILL of a member to "dead" on every survivor
//    (median and max over repeated kills; the killed member is restarted and
//    rejoins between kills);
//  - steady-state membership traffic per member (bytes/s sent and received);
//  - false suspicions during the steady window (optionally with every CPU
//    core kept busy by burner processes: --busy).
// Each member is a child process running only the membership (no MQTT), on
// its own loopback address, reporting events and byte counts over IPC.
//
//   node dist/bench/detection.js [--sizes 3,5,10] [--kills 5] [--steady 20] [--busy]
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { loadConfig } from '../src/config/index.js'
import { SwimMembership } from '../src/server/cluster/membership/swim-membership.js'
import { detectionBound } from '../src/server/cluster/membership/detection-bound.js'
import { LAN_PROFILE } from '../src/server/cluster/membership/config-profile.js'
import type { Member } from '../src/server/cluster/membership/membership.js'
import { freeLoopbackAddress } from '../test/helpers/loopback.js'

type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'event', time: number, member: string, state: Member['state'] }
  | { kind: 'stats', sent: number, received: number }

// ---- worker: one member ------------------------------------------------------

async function worker (host: string, seeds: string[]): Promise<void> {
  const { config } = loadConfig({
    object: {
      cluster: { bind: host, name: `m-${host}` },
      discovery: { seeds, formation_wait_min: 200, formation_wait_max: 1000 },
      log: { level: 'silent' }
    }
  })
  const registry = new Registry()
  const membership = new SwimMembership({ config, log: pino({ level: 'silent' }), registry, meta: { api: 8080, mqtt: 1883, version: 'bench' } })
  const send = (m: WorkerMessage): void => { process.send?.(m) }
  for (const type of ['join', 'update', 'leave'] as const) {
    membership.on(type, (m) => send({ kind: 'event', time: Date.now(), member: m.name, state: m.state }))
  }
  await membership.start()
  send({ kind: 'ready' })
  process.on('message', (m: { kind: string }) => {
    if (m.kind !== 'stats') return
    void (async () => {
      const value = async (name: string): Promise<number> => (await registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0
      send({ kind: 'stats', sent: await value('broker_cluster_bytes_sent_total'), received: await value('broker_cluster_bytes_received_total') })
    })()
  })
  process.on('SIGTERM', () => { void membership.stop().then(() => process.exit(0)) })
}

// ---- coordinator ---------------------------------------------------------------

interface Member_ {
  host: string
  name: string
  child: ChildProcess
  events: Array<{ time: number, member: string, state: Member['state'] }>
  stats: ((s: { sent: number, received: number }) => void) | undefined
}

const self = fileURLToPath(import.meta.url)

async function spawnMember (host: string, seeds: string[]): Promise<Member_> {
  const child = fork(self, ['--worker', host, JSON.stringify(seeds)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const m: Member_ = { host, name: `m-${host}`, child, events: [], stats: undefined }
  await new Promise<void>((resolve, reject) => {
    child.on('message', (msg: WorkerMessage) => {
      if (msg.kind === 'ready') resolve()
      else if (msg.kind === 'event') m.events.push(msg)
      else if (msg.kind === 'stats') m.stats?.(msg)
    })
    child.once('exit', (code) => reject(new Error(`member ${host} exited with ${code}`)))
  })
  return m
}

function view (m: Member_): Map<string, Member['state']> {
  const v = new Map<string, Member['state']>()
  for (const e of m.events) v.set(e.member, e.state)
  return v
}

async function until (cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

function stats (m: Member_): Promise<{ sent: number, received: number }> {
  return new Promise((resolve) => { m.stats = resolve; m.child.send({ kind: 'stats' }) })
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

async function runSize (n: number, kills: number, steadySeconds: number): Promise<Record<string, unknown>> {
  const hosts: string[] = []
  for (let i = 0; i < n; i++) hosts.push(await freeLoopbackAddress())
  const seeds = hosts.map((h) => `${h}:7946`)
  const members = await Promise.all(hosts.map((h) => spawnMember(h, seeds)))
  const allAlive = (): boolean => members.every((o) => members.every((t) => t === o || view(o).get(t.name) === 'alive'))
  try {
    await until(allAlive, 30_000, `${n} members to converge`)
    // Steady state: let joins settle, then measure traffic and false suspicions.
    await sleep(2000)
    const suspicionsBefore = members.reduce((s, m) => s + m.events.filter((e) => e.state === 'suspect').length, 0)
    const before = await Promise.all(members.map(stats))
    const t0 = Date.now()
    await sleep(steadySeconds * 1000)
    const after = await Promise.all(members.map(stats))
    const secs = (Date.now() - t0) / 1000
    const sent = after.map((a, i) => (a.sent - before[i]!.sent) / secs)
    const received = after.map((a, i) => (a.received - before[i]!.received) / secs)
    const falseSuspicions = members.reduce((s, m) => s + m.events.filter((e) => e.state === 'suspect').length, 0) - suspicionsBefore

    const detections: number[] = []
    for (let k = 0; k < kills; k++) {
      const victimIndex = 1 + (k % (n - 1))
      const victim = members[victimIndex]!
      const survivors = members.filter((m) => m !== victim)
      const marks = survivors.map((s) => s.events.length)
      const killedAt = Date.now()
      victim.child.kill('SIGKILL')
      const deadOn = (s: Member_, i: number): number | undefined => s.events.slice(marks[i]).find((e) => e.member === victim.name && e.state === 'dead')?.time
      await until(() => survivors.every((s, i) => deadOn(s, i) !== undefined), 60_000, `${victim.name} dead everywhere`)
      detections.push(Math.max(...survivors.map((s, i) => deadOn(s, i)! - killedAt)))
      // Restart it and wait for the cluster to be whole again.
      const again = await spawnMember(victim.host, seeds)
      members[victimIndex] = again
      await until(allAlive, 30_000, `${victim.name} to rejoin`)
      await sleep(500)
    }
    return {
      members: n,
      detection_median_ms: Math.round(median(detections)),
      detection_max_ms: Math.max(...detections),
      detection_bound_ms: detectionBound(LAN_PROFILE, n),
      detections_ms: detections,
      bytes_sent_per_s_per_member: Math.round(sent.reduce((a, b) => a + b, 0) / n),
      bytes_received_per_s_per_member: Math.round(received.reduce((a, b) => a + b, 0) / n),
      steady_window_s: Math.round(secs),
      false_suspicions: falseSuspicions
    }
  } finally {
    for (const m of members) m.child.kill('SIGKILL')
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '3,5,10' },
      kills: { type: 'string', default: '5' },
      steady: { type: 'string', default: '20' },
      busy: { type: 'boolean', default: false }
    }
  })
  const burners: ChildProcess[] = []
  if (values.busy) {
    // One spinning process per core, at normal priority: members compete for CPU.
    for (let i = 0; i < cpus().length; i++) burners.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }))
  }
  try {
    for (const n of values.sizes.split(',').map(Number)) {
      const result = await runSize(n, Number(values.kills), Number(values.steady))
      console.log(JSON.stringify({ ...result, busy_cores: burners.length }))
    }
  } finally {
    for (const b of burners) b.kill('SIGKILL')
  }
}

if (process.argv[2] === '--worker') {
  await worker(process.argv[3]!, JSON.parse(process.argv[4]!) as string[])
} else {
  await main()
}
