import { test } from 'node:test'
import assert from 'node:assert/strict'
import { metricSum, parsePrometheusText } from '../../../src/tui/prometheus-text.js'
import { latest, rates, recordFailure, recordSnapshot, snapshotFromMetrics, type MetricsHistory } from '../../../src/tui/node-metrics.js'
import { sparkline } from '../../../src/tui/sparkline.js'

const TEXT = `# HELP broker_clients_connected Number of connected clients
# TYPE broker_clients_connected gauge
broker_clients_connected 3
broker_messages_recv 100
broker_bus_dropped_total{channel="cluster:message_to"} 2
broker_bus_dropped_total{channel="a \\"quoted\\" one",x="y"} 3 1700000000000
process_resident_memory_bytes 1.5e+8
broker_config_info{version="3f2a9c0d11be",source="/config/config.yaml"} 1
broker_config_loaded_timestamp_seconds 1796300000
weird line without value
nan_metric NaN
`

test('Prometheus text: samples with labels, sums across label sets, junk skipped', () => {
  const samples = parsePrometheusText(TEXT)
  assert.equal(metricSum(samples, 'broker_clients_connected'), 3)
  assert.equal(metricSum(samples, 'broker_bus_dropped_total'), 5)
  assert.equal(metricSum(samples, 'missing'), undefined)
  assert.equal(samples.find((s) => s.labels.x === 'y')?.labels.channel, 'a "quoted" one')
  assert.ok(Number.isNaN(metricSum(samples, 'nan_metric')!))
  const snap = snapshotFromMetrics(TEXT, 1000)
  assert.equal(snap.clients, 3)
  assert.equal(snap.rss, 150_000_000)
  assert.equal(snap.sent, undefined)
  assert.equal(snap.configVersion, '3f2a9c0d11be')
  assert.equal(snap.configLoadedAt, 1796300000)
})

test('Metrics view: the config version and its load time follow the figures', async () => {
  const { MetricsView } = await import('../../../src/tui/views/metrics-view.js')
  const { render } = await import('ink-testing-library')
  const { createElement } = await import('react')
  const history: MetricsHistory = { a: { snapshots: [{ at: 1, uptime: 5, configVersion: '3f2a9c0d11be', configLoadedAt: 1796300000 }] } }
  const members = [{ name: 'a', state: 'alive', addr: '127.0.0.1', port: 7946, version: '0.1.0' }]
  const { lastFrame, unmount } = render(createElement(MetricsView, { members: members as never, history, width: 120, height: 10 }))
  assert.match(lastFrame() ?? '', /config 3f2a9c0d11be since \d\d:\d\d:\d\d/)
  unmount()
})

test('rates per second from successive snapshots; a counter reset gives no rate', () => {
  let h: MetricsHistory = {}
  h = recordSnapshot(h, 'a', { at: 0, recv: 0 })
  h = recordSnapshot(h, 'a', { at: 2000, recv: 10 })
  h = recordSnapshot(h, 'a', { at: 3000, recv: 4 }) // restarted
  h = recordSnapshot(h, 'a', { at: 4000, recv: 9 })
  assert.deepEqual(rates(h.a!.snapshots, 'recv'), [5, 5])
  h = recordFailure(h, 'a', 'refused')
  assert.equal(h.a!.error, 'refused')
  assert.equal(latest(h.a)?.recv, 9, 'history survives a failure')
  let bounded: MetricsHistory = {}
  for (let i = 0; i < 10; i++) bounded = recordSnapshot(bounded, 'x', { at: i }, 4)
  assert.deepEqual(bounded.x!.snapshots.map((s) => s.at), [6, 7, 8, 9])
})

test('sparklines scale to the maximum and pad to the width', () => {
  assert.equal(sparkline([0, 1, 2, 4], 4), '▁▃▅█')
  assert.equal(sparkline([1, 1], 4), '  ██')
  assert.equal(sparkline([], 3), '   ')
  assert.equal(sparkline([0, 0], 2), '▁▁')
  assert.equal(sparkline([1, 2, 3, 4, 5, 6], 3).length, 3)
})
