// What one more idle connection costs in JS heap, by object kind: two heap
// snapshots of the same broker with N1 and N2 connections open (written by
// `node dist/bench/idle.js --connections N --heap DIR`), the difference of
// each (type, constructor) total over N2 - N1. Fixed costs (code, modules,
// caches) drop out; a snapshot collects garbage before it is written.
//
//   node dist/bench/heap-marginal.js DIR/broker-ha-2000.heapsnapshot 2000 DIR/broker-ha-6000.heapsnapshot 6000 [--top 30]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[]] } }
  nodes: number[]
  strings: string[]
}

/** Bytes and count per `type:name` (strings and numbers by type only). */
function totals (file: string): Map<string, [number, number]> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const ti = fields.indexOf('type')
  const ni = fields.indexOf('name')
  const si = fields.indexOf('self_size')
  const out = new Map<string, [number, number]>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + ti]!]!
    const name = /string|number/.test(type) ? '' : snap.strings[snap.nodes[i + ni]!]!.slice(0, 60)
    const key = `${type}:${name}`
    const t = out.get(key) ?? [0, 0]
    t[0] += snap.nodes[i + si]!
    t[1]++
    out.set(key, t)
  }
  return out
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } })
if (positionals.length !== 4) {
  process.stderr.write('usage: heap-marginal.js SNAPSHOT1 N1 SNAPSHOT2 N2 [--top 30]\n')
  process.exit(2)
}
const [f1, n1, f2, n2] = positionals as [string, string, string, string]
const a = totals(f1)
const b = totals(f2)
const dn = Number(n2) - Number(n1)
const rows: Array<[string, number, number]> = []
let sum = 0
for (const key of new Set([...a.keys(), ...b.keys()])) {
  const [s1, c1] = a.get(key) ?? [0, 0]
  const [s2, c2] = b.get(key) ?? [0, 0]
  sum += s2 - s1
  rows.push([key, (s2 - s1) / dn, (c2 - c1) / dn])
}
process.stdout.write(`marginal JS heap: ${(sum / dn).toFixed(0)} B per connection\n`)
rows.sort((x, y) => y[1] - x[1])
for (const [key, bytes, count] of rows.slice(0, Number(values.top))) {
  process.stdout.write(`${bytes.toFixed(0).padStart(7)} B ${count.toFixed(2).padStart(6)} per connection  ${key}\n`)
}
