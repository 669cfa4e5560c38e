// Who counts as a caller on this host, and which routes need one when api.user is not set.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isLocalCaller, needsTrustedCaller } from '../../../src/server/api/caller-trust.js'

test('on this host: the loopback source addresses, or the address the connection arrived on', () => {
  assert.equal(isLocalCaller({ remoteAddress: '127.0.0.1', localAddress: '127.0.0.2' }), true)
  assert.equal(isLocalCaller({ remoteAddress: '::1', localAddress: '::1' }), true)
  assert.equal(isLocalCaller({ remoteAddress: '::ffff:127.0.0.1', localAddress: '::ffff:10.0.0.5' }), true)
  assert.equal(isLocalCaller({ remoteAddress: '10.0.0.5', localAddress: '10.0.0.5' }), true, 'the host calling itself on its pod address')
  assert.equal(isLocalCaller({ remoteAddress: '::ffff:10.0.0.5', localAddress: '10.0.0.5' }), true)
  assert.equal(isLocalCaller({ remoteAddress: '10.0.0.6', localAddress: '10.0.0.5' }), false)
  assert.equal(isLocalCaller({ remoteAddress: '127.0.0.3', localAddress: '127.0.0.2' }), false, 'another 127/8 source is bound on purpose: treated as elsewhere')
  assert.equal(isLocalCaller({ remoteAddress: undefined, localAddress: '127.0.0.1' }), false)
})

test('debug, chaos and the mutating endpoints need a trusted caller; reads do not', () => {
  for (const [method, path] of [['GET', '/debug'], ['GET', '/debug/pprof/heap'], ['POST', '/chaos/faults'], ['GET', '/chaos/faults'], ['POST', '/api/mqtt/client/stop']]) {
    assert.equal(needsTrustedCaller(method!, path!), true, `${method} ${path}`)
  }
  for (const [method, path] of [['GET', '/api/mqtt/clients'], ['POST', '/api/mqtt/client/inflight'], ['GET', '/proxy/api/mqtt/clients'], ['GET', '/metrics'], ['GET', '/debugger']]) {
    assert.equal(needsTrustedCaller(method!, path!), false, `${method} ${path}`)
  }
})
