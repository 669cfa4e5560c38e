import { test } from 'node:test'
import assert from 'node:assert/strict'
import { previewPayload, hexDump } from '../../../src/tui/payload-preview.js'
import { fit, formatCells, layoutColumns, plural, windowStart, formatBytes, formatDuration } from '../../../src/tui/text-layout.js'
import { clusterAlerts, udpBlockedAlerts } from '../../../src/tui/alerts.js'
import { snapshotFromMetrics } from '../../../src/tui/node-metrics.js'
import { nextDelay, MAX_BACKOFF_MS } from '../../../src/tui/hooks/use-poll.js'
import type { MemberRow } from '../../../src/tui/cluster-model.js'

test('payload preview: JSON indented, text as is, binary as hex; forced modes', () => {
  assert.deepEqual(previewPayload(Buffer.from('{"a":[1]}'), 'auto').lines, ['{', '  "a": [', '    1', '  ]', '}'])
  assert.deepEqual(previewPayload(Buffer.from('21.5 C\nok'), 'auto'), { mode: 'text', lines: ['21.5 C', 'ok'] })
  const bin = previewPayload(Buffer.from([0, 1, 0xff, 0x41]), 'auto')
  assert.equal(bin.mode, 'hex')
  assert.equal(bin.lines[0], `000000  ${'00 01 ff 41'.padEnd(47)}  ...A`)
  assert.equal(previewPayload(Buffer.from('{"a":1}'), 'text').lines[0], '{"a":1}')
  assert.equal(previewPayload(Buffer.from('not json'), 'json').mode, 'hex')
  // A bare number, string or boolean is valid JSON but reads as text: "as json" only for documents.
  assert.deepEqual(previewPayload(Buffer.from('21.5'), 'auto'), { mode: 'text', lines: ['21.5'] })
  assert.deepEqual(previewPayload(Buffer.from('"on"'), 'auto'), { mode: 'text', lines: ['"on"'] })
  assert.deepEqual(previewPayload(Buffer.from('[1]'), 'auto').mode, 'json')
  assert.deepEqual(previewPayload(Buffer.from('21.5'), 'json'), { mode: 'json', lines: ['21.5'] }, 'v can still force it')
  assert.equal(previewPayload(Buffer.from('\x1b[2Jx'), 'text').lines[0], '.[2Jx', 'escape sequences cannot reach the terminal')
  assert.equal(hexDump(Buffer.alloc(100), 2).length, 2)
})

test('cells are cut or padded to their columns; flexible columns share the rest', () => {
  assert.equal(fit('abcdef', 4), 'abc…')
  assert.equal(fit('ab', 4), 'ab  ')
  assert.equal(fit('a\nb', 3), 'a b')
  const cols = layoutColumns([{ title: 'A', width: 0 }, { title: 'B', width: 3, align: 'right' }, { title: 'C', width: 0 }], 20)
  assert.deepEqual(cols.map((c) => c.width), [7, 3, 8], 'the last flexible column gets the odd one')
  assert.equal(formatCells(['x', '7', 'long text here'], cols), 'x         7 long te…')
  // A column no wider than its content gives the rest to the others, narrowest first.
  assert.deepEqual(layoutColumns([{ title: 'ID', width: 0, content: 12 }, { title: 'N', width: 5 }, { title: 'T', width: 0, content: 200 }], 120).map((c) => c.width), [12, 5, 101])
  assert.deepEqual(layoutColumns([{ title: 'ID', width: 0, content: 12 }, { title: 'N', width: 5 }], 120).map((c) => c.width), [12, 5], 'the rest stays empty')
  assert.equal(plural(1, 'topic'), '1 topic')
  assert.equal(plural(0, 'topic'), '0 topics')
  assert.equal(plural(2, 'entry', 'entries'), '2 entries')
  assert.equal(windowStart(100, 0, 10), 0)
  assert.equal(windowStart(100, 50, 10), 45)
  assert.equal(windowStart(100, 99, 10), 90)
  assert.equal(windowStart(5, 4, 10), 0)
  assert.equal(formatBytes(1536), '1.5 KiB')
  assert.equal(formatDuration(3725), '1h02m')
})

const row = (name: string, state: MemberRow['state']): MemberRow => ({ name, addr: '127.0.0.1', port: 7946, state, version: '', apiUrl: undefined, mqttPort: undefined })

test('alerts: suspect and dead members, and a cluster smaller than expected or than seen', () => {
  assert.deepEqual(clusterAlerts([row('a', 'alive'), row('b', 'alive')], undefined, 2), [])
  const alerts = clusterAlerts([row('a', 'alive'), row('b', 'suspect'), row('c', 'dead')], undefined, 3)
  assert.deepEqual(alerts.map((a) => a.text), ['b is suspect (probes failing)', 'c is dead', 'cluster has 1 alive member, had 3'])
  assert.deepEqual(clusterAlerts([row('a', 'alive')], 3, 1).map((a) => a.text), ['cluster has 1 alive member, expected 3'])
  assert.deepEqual(clusterAlerts([row('a', 'alive'), row('b', 'alive'), row('c', 'dead')], 2, 2, { b: 'network: connection refused', c: 'timeout' }).map((a) => a.text), ['b does not answer: network: connection refused', 'c is dead'])
})

test('alerts: a node whose probes got through over TCP only several times over its last scrapes (UDP blocked)', () => {
  const metrics = (tcpAck: number): string => `broker_cluster_probes_total{result="ack"} 50\nbroker_cluster_probes_total{result="tcp-ack"} ${tcpAck}\nbroker_cluster_probes_total{result="failed"} 0\n`
  assert.equal(snapshotFromMetrics(metrics(7), 0).tcpAcks, 7, 'only the tcp-ack label')
  const series = (...counts: number[]) => ({ snapshots: counts.map((n, i) => snapshotFromMetrics(metrics(n), i * 2000)) })
  const history = {
    'broker-0': series(3, 5, 7, 9),
    'broker-1': series(3, 3, 3),
    // One TCP-only answer (a stall) is not an alert.
    'broker-2': series(3, 4, 4),
    'broker-3': series(3),
    // Three, but before the last 15 scrapes.
    'broker-4': series(0, 3, ...Array(14).fill(3) as number[])
  }
  assert.deepEqual(udpBlockedAlerts(history), [{ level: 'warn', text: 'broker-0: probes answered over TCP only (UDP on the cluster port blocked; open it)' }])
  // A node of an earlier release has no such label: no alert.
  assert.deepEqual(udpBlockedAlerts({ old: { snapshots: [snapshotFromMetrics('', 0), snapshotFromMetrics('', 1)] } }), [])
})

test('polling backs off while failures repeat, up to a ceiling', () => {
  assert.equal(nextDelay(2000, 0), 2000)
  assert.equal(nextDelay(2000, 1), 2000)
  assert.equal(nextDelay(2000, 2), 4000)
  assert.equal(nextDelay(2000, 3), 8000)
  assert.equal(nextDelay(2000, 50), MAX_BACKOFF_MS)
  assert.equal(nextDelay(100, 1), 1000, 'a failing URL is not retried faster than once a second')
})
