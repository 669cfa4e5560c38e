import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolveTarget, DEFAULT_ADMIN_URL } from '../../../src/tui/admin-target.js'
import { BrokerHaError } from '../../../src/errors.js'

const FILE = { path: '/home/op/.config/broker-ha/admin.yaml', text: 'default: lab\nclusters:\n  prod:\n    url: http://10.0.0.5:8080/\n    user: "admin:s3cret:with:colons"\n  lab:\n    url: http://127.0.0.1:9090\n' }

const usage = (fn: () => unknown, code: string, pattern: RegExp): void => {
  assert.throws(fn, (err: unknown) => err instanceof BrokerHaError && err.code === code && pattern.test(err.message))
}

test('flags win over environment, environment over the clusters file, the file over the default', () => {
  assert.deepEqual(resolveTarget({ flags: {}, env: {} }), { url: DEFAULT_ADMIN_URL })
  assert.deepEqual(resolveTarget({ flags: {}, env: {}, file: FILE }), { url: 'http://127.0.0.1:9090', cluster: 'lab' })
  assert.deepEqual(resolveTarget({ flags: {}, env: { BROKER_ADMIN_URL: 'http://e:1', BROKER_ADMIN_USER: 'u:p' }, file: FILE }), { url: 'http://e:1', username: 'u', password: 'p' })
  assert.deepEqual(resolveTarget({ flags: { cluster: 'prod' }, env: { BROKER_ADMIN_URL: 'http://e:1' }, file: FILE }), { url: 'http://10.0.0.5:8080', username: 'admin', password: 's3cret:with:colons', cluster: 'prod' })
  assert.deepEqual(resolveTarget({ flags: {}, env: { BROKER_ADMIN_CLUSTER: 'prod', BROKER_ADMIN_USER: 'other:pw' }, file: FILE }), { url: 'http://10.0.0.5:8080', username: 'other', password: 'pw', cluster: 'prod' })
  assert.deepEqual(resolveTarget({ flags: { url: 'https://x:8443/', user: 'ops' }, env: { BROKER_ADMIN_PASSWORD: 'pw', BROKER_ADMIN_CLUSTER: 'prod' }, file: FILE }), { url: 'https://x:8443', username: 'ops', password: 'pw' })
})

test('bad input is a usage or config error naming where it came from', () => {
  usage(() => resolveTarget({ flags: { url: 'localhost:8080' }, env: {} }), 'USAGE', /--url: "localhost:8080" must be an http/)
  usage(() => resolveTarget({ flags: { url: 'nope' }, env: {} }), 'USAGE', /--url: "nope" is not a URL/)
  usage(() => resolveTarget({ flags: {}, env: { BROKER_ADMIN_URL: 'ftp://x' } }), 'USAGE', /BROKER_ADMIN_URL/)
  usage(() => resolveTarget({ flags: { user: ':pw' }, env: {} }), 'USAGE', /--user: the user name is empty/)
  usage(() => resolveTarget({ flags: { cluster: 'qa' }, env: {}, file: FILE }), 'USAGE', /cluster "qa" is not in .*admin.yaml; known: prod, lab/)
  usage(() => resolveTarget({ flags: { cluster: 'qa' }, env: {} }), 'USAGE', /none found/)
  usage(() => resolveTarget({ flags: {}, env: {}, file: { path: 'f', text: 'clusters:\n  a: {url: 1}\n' } }), 'CONFIG_INVALID', /f: clusters\.a\.url must be a URL string/)
  usage(() => resolveTarget({ flags: {}, env: {}, file: { path: 'f', text: 'clusters: {}\nextra: 1\n' } }), 'CONFIG_INVALID', /extra is not a known key/)
  usage(() => resolveTarget({ flags: {}, env: {}, file: { path: 'f', text: 'default: x\nclusters: {}\n' } }), 'CONFIG_INVALID', /default names cluster "x"/)
  usage(() => resolveTarget({ flags: {}, env: {}, file: { path: 'f', text: 'clusters: [\n' } }), 'CONFIG_UNREADABLE', /f: not valid YAML/)
  assert.deepEqual(resolveTarget({ flags: {}, env: {}, file: { path: 'f', text: '' } }), { url: DEFAULT_ADMIN_URL })
})
