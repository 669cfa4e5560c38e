// The load generator's plan: who publishes where, who subscribes to what, and
// which URL and worker each client gets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { planClients, parseDuration, validateOptions, type BenchOptions } from '../../../src/bench/plan.js'
import { expectedDeliveries } from '../../../src/bench/accounting.js'
import { BrokerHaError } from '../../../src/errors.js'

const base: BenchOptions = {
  urls: ['mqtt://a:1883', 'mqtt://b:1883'], publishers: 2, subscribers: 4, qos: 0, size: 64, rate: 0, pattern: 'one-to-one', wildcard: false,
  protocolVersion: 4, count: 10, workers: 2, inflight: 100, drainMs: 100, prefix: 'bench/x', connectConcurrency: 10
}

const owed = (o: BenchOptions): number => {
  const clients = planClients(o)
  return expectedDeliveries(clients.filter((c) => c.role === 'pub').map((c) => ({ topic: c.topic, sent: 10 })), clients.filter((c) => c.role === 'sub').map((c) => c.topic))
}

test('each pattern owes the deliveries it promises, with and without wildcards', () => {
  for (const wildcard of [false, true]) {
    // one-to-one: every subscriber follows one publisher.
    assert.equal(owed({ ...base, wildcard }), 4 * 10)
    // fan-out: every subscriber gets every publisher's messages.
    assert.equal(owed({ ...base, wildcard, pattern: 'fan-out' }), 2 * 4 * 10)
  }
  assert.equal(owed({ ...base, pattern: 'fan-in', subscribers: 1, publishers: 100 }), 100 * 10)
})

test('connections spread round-robin over the URLs; --pub-url/--sub-url give each role its own', () => {
  const spread = planClients(base)
  assert.deepEqual(spread.map((c) => c.url.slice(7, 8)), ['a', 'b', 'a', 'b', 'a', 'b'])
  assert.deepEqual(spread.map((c) => c.worker), [0, 1, 0, 1, 0, 1])
  assert.equal(new Set(spread.map((c) => c.clientId)).size, 6)
  const split = planClients({ ...base, urls: [], publisherUrls: ['mqtt://p:1'], subscriberUrls: ['mqtt://s1:1', 'mqtt://s2:1'] })
  assert.deepEqual(split.filter((c) => c.role === 'pub').map((c) => c.url), ['mqtt://p:1', 'mqtt://p:1'])
  assert.deepEqual(split.filter((c) => c.role === 'sub').map((c) => c.url), ['mqtt://s1:1', 'mqtt://s2:1', 'mqtt://s1:1', 'mqtt://s2:1'])
})

test('durations and bad options are usage errors', () => {
  assert.equal(parseDuration('30s'), 30_000)
  assert.equal(parseDuration('250ms'), 250)
  assert.equal(parseDuration('2m'), 120_000)
  assert.equal(parseDuration('1.5'), 1500)
  for (const bad of ['soon', '-1s', '0s']) assert.throws(() => parseDuration(bad), (e: unknown) => e instanceof BrokerHaError && e.code === 'USAGE')
  for (const o of [{ size: 8 }, { count: undefined }, { durationMs: 1000 }, { urls: ['http://x'] }, { publishers: 0 }] as Array<Partial<BenchOptions>>) {
    assert.throws(() => validateOptions({ ...base, ...o }), (e: unknown) => e instanceof BrokerHaError && e.code === 'USAGE', JSON.stringify(o))
  }
})
