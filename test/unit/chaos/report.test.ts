// The closing table and the live view render what they are given.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { render } from 'ink-testing-library'
import { createElement } from 'react'
import { verdictTable, formatTable } from '../../../src/chaos/report.js'
import { ChaosView, progressBar } from '../../../src/chaos/live-view.js'
import type { Verdict } from '../../../src/chaos/checker.js'
import type { ChaosProgress } from '../../../src/chaos/runner.js'

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
