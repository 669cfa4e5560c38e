// Command-line values: good ones parse, bad ones are USAGE errors (exit 2).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseDuration, parseFaults, parseNodes, parseSeed, parseNetwork, parseMergeTiming, checkFaultsForNodes } from '../../../src/chaos/options.js'
import { nodeConfig, type NodeEndpoint } from '../../../src/chaos/cluster-config.js'
import { loadConfig } from '../../../src/config/index.js'
import { BrokerHaError, exitStatusFor } from '../../../src/errors.js'
import { FAULT_KINDS } from '../../../src/chaos/schedule.js'

const usage = (fn: () => unknown): void => {
  assert.throws(fn, (err: unknown) => err instanceof BrokerHaError && err.code === 'USAGE' && exitStatusFor(err) === 2)
}

test('durations', () => {
  assert.equal(parseDuration('60s'), 60_000)
  assert.equal(parseDuration('10m'), 600_000)
  assert.equal(parseDuration('7500ms'), 7500)
  assert.equal(parseDuration('90'), 90_000)
  assert.equal(parseDuration('1.5m'), 90_000)
  for (const bad of ['', 'soon', '10x', '-5s', '1s']) usage(() => parseDuration(bad))
})

test('fault lists', () => {
  assert.deepEqual(parseFaults('kill,pause,partition,restart'), ['kill', 'pause', 'partition', 'restart'])
  assert.deepEqual(parseFaults('all'), [...FAULT_KINDS])
  assert.deepEqual(parseFaults('none'), [])
  assert.deepEqual(parseFaults('kill, kill'), ['kill'])
  usage(() => parseFaults('kill,explode'))
  usage(() => checkFaultsForNodes(['partition'], 1))
  checkFaultsForNodes(['kill'], 1)
})

test('nodes and seeds', () => {
  assert.equal(parseNodes('5'), 5)
  for (const bad of ['0', '21', '2.5', 'x']) usage(() => parseNodes(bad))
  assert.equal(parseSeed('42'), 42)
  for (const bad of ['-1', '1.5', 'abc', '99999999999']) usage(() => parseSeed(bad))
})

test('network modes', () => {
  assert.equal(parseNetwork('loopback'), 'loopback')
  assert.equal(parseNetwork('netns'), 'netns')
  assert.equal(parseNetwork('auto'), 'auto')
  assert.equal(parseNetwork(' netns '), 'netns')
  for (const bad of ['', 'NETNS', 'docker', 'loopback,netns']) usage(() => parseNetwork(bad))
})

test('merge timings', () => {
  assert.equal(parseMergeTiming('fast'), 'fast')
  assert.equal(parseMergeTiming(' default '), 'default')
  for (const bad of ['', 'slow', 'Default', 'fast,default']) usage(() => parseMergeTiming(bad))
})

test('merge timing default gives the nodes the serve defaults of re-resolution and push/pull; fast gives them seconds', () => {
  const nodes: NodeEndpoint[] = [1, 2].map((i) => ({ name: `chaos-${i}`, host: `127.0.0.${i + 1}`, mqttPort: 1883, apiPort: 8080, clusterPort: 7946 }))
  const defaults = loadConfig({ object: {} }).config
  const load = (mergeTiming?: 'fast' | 'default'): typeof defaults => loadConfig({ object: nodeConfig(nodes[0]!, nodes, mergeTiming === undefined ? {} : { mergeTiming }) }).config
  for (const config of [load(), load('fast')]) {
    assert.equal(config.discovery.resolve_interval, 1000)
    assert.equal(config.cluster.config.push_pull_interval, 2000)
  }
  const production = load('default')
  assert.equal(production.discovery.resolve_interval, defaults.discovery.resolve_interval)
  assert.equal(production.cluster.config.push_pull_interval, defaults.cluster.config.push_pull_interval)
  assert.ok(defaults.discovery.resolve_interval >= 30_000, 'the serve default is not the fast one')
  assert.equal(production.cluster.config.probe_interval, load('fast').cluster.config.probe_interval, 'failure detection stays fast')
})
