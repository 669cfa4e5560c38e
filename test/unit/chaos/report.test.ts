// The closing table and the live view render what they are given.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { render } from 'ink-testing-library'
import { createElement } from 'react'
import { verdictTable, formatTable, formatReport, jsonReport } from '../../../src/chaos/report.js'
import { checkHistory, DEFAULT_CHECK_OPTIONS } from '../../../src/chaos/checker.js'
import { defaultScope } from '../../../src/chaos/invariants.js'
import type { HistoryEvent } from '../../../src/chaos/history.js'
import { ChaosView, progressBar } from '../../../src/chaos/live-view.js'
import type { Verdict } from '../../../src/chaos/checker.js'
import type { ChaosProgress, ChaosResult } from '../../../src/chaos/runner.js'

test('the verdict table aligns its columns and says PASS, FAIL, skip', () => {
  const verdicts: Verdict[] = [
    { id: 'lost-acked', title: 'acknowledged QoS 1/2 messages lost (surviving sessions)', status: 'fail', value: 2, figure: '2 of 100', details: [] },
    { id: 'order', title: 'out-of-order QoS 1/2 deliveries per publisher and topic', status: 'pass', value: 0, figure: '0', details: [] },
    { id: 'retained-divergence', title: 'retained topics that differ between nodes after heal', status: 'skip', value: 3, figure: '3 of 9 on 3 nodes', details: [] }
  ]
  const lines = verdictTable(verdicts).split('\n')
  assert.equal(lines.length, 4)
  assert.match(lines[1]!, /^2 +acknowledged .* +2 of 100 +FAIL$/)
  assert.match(lines[2]!, /^4 .* PASS$/)
  assert.match(lines[3]!, /^5 .* skip$/)
  const resultColumn = lines[0]!.indexOf('result')
  for (const l of lines.slice(1)) assert.equal(l.length - 4, resultColumn, 'results line up under their heading')
  assert.equal(formatTable([['a', 'bb'], ['ccc', 'd']]), 'a    bb\nccc  d')
})

test('the live view shows nodes, the current fault, counters and progress', () => {
  const progress: ChaosProgress = {
    phase: 'running',
    startedAt: 1000,
    durationMs: 60_000,
    nodes: [{ name: 'chaos-1', host: '127.0.0.2', state: 'up', mqttPort: 1883 }, { name: 'chaos-2', host: '127.0.0.3', state: 'paused', mqttPort: 1883 }],
    fault: 'pause chaos-2 for 2000 ms',
    faultsDone: 2,
    faultsTotal: 7,
    counters: { published: 120, acked: 118, failed: 2, delivered: 300, retained: 10, connects: 12 }
  }
  const { lastFrame, unmount } = render(createElement(ChaosView, { progress, now: 31_000, lines: ['fault #3: pause chaos-2'] }))
  const frame = lastFrame() ?? ''
  unmount()
  assert.match(frame, /running {2}30\/60 s/)
  assert.match(frame, /faults 2\/7/)
  assert.match(frame, /chaos-2 +127\.0\.0\.3 +paused/)
  assert.match(frame, /fault: pause chaos-2 for 2000 ms/)
  assert.match(frame, /published 120 {2}acknowledged 118 {2}unacknowledged 2 {2}delivered 300/)
  assert.equal(progressBar(0.5, 10), '█████░░░░░')
})

test('the report and --json say where the nodes ran, how partitions were made, and the flags that rerun it', () => {
  const events: HistoryEvent[] = [
    { type: 'run-start', t: 0, seed: 1, nodes: ['chaos-1', 'chaos-2'], faults: ['partition'], durationMs: 5000 },
    { type: 'run-end', t: 5000 }
  ]
  const base: Omit<ChaosResult, 'network' | 'partitions'> = {
    check: checkHistory(events, { ...DEFAULT_CHECK_OPTIONS, scope: defaultScope(true), convergenceBoundMs: 4600 }), ok: true, interrupted: false, plan: [], planText: [], crashes: [], runDir: '/tmp/x', kept: false, convergenceBoundMs: 4600, events, pids: []
  }
  const netns: ChaosResult = { ...base, network: 'netns', partitions: 'netns-routes' }
  const loopback: ChaosResult = { ...base, network: 'loopback', partitions: 'fault-hook' }
  assert.match(formatReport(netns), /^network: netns; partitions: blackhole routes between network namespaces$/m)
  assert.match(formatReport(loopback), /^network: loopback; partitions: in-process fault hook/m)
  const ctx = { seed: 1, nodes: 2, durationMs: 5000, faults: ['partition'], scope: 'full', storage: false, mergeTiming: 'default' }
  assert.equal(jsonReport(netns, ctx).network, 'netns')
  // What reruns it besides the seed.
  assert.equal(jsonReport(netns, ctx).merge_timing, 'default')
  assert.equal(jsonReport(netns, ctx).scope, 'full')
  assert.equal(jsonReport(netns, ctx).storage, false)
  assert.equal(jsonReport(netns, ctx).partitions, 'netns-routes')
  assert.equal(jsonReport(loopback, ctx).partitions, 'fault-hook')
})
