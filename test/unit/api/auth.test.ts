// Basic auth parsing and checking, plain and scrypt-hashed passwords.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BasicAuth, parseBasicAuth } from '../../../src/server/api/auth.js'
import { isProtected } from '../../../src/server/api/app.js'
import { hashPassword } from '../../../src/security/password.js'

const header = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

test('parseBasicAuth', () => {
  assert.deepEqual(parseBasicAuth(header('u', 'p:with:colons')), { user: 'u', password: 'p:with:colons' })
  assert.deepEqual(parseBasicAuth(`basic ${Buffer.from('u:').toString('base64')}`), { user: 'u', password: '' })
  assert.equal(parseBasicAuth(undefined), undefined)
  assert.equal(parseBasicAuth('Bearer x'), undefined)
  assert.equal(parseBasicAuth('Basic %%%'), undefined)
  assert.equal(parseBasicAuth(`Basic ${Buffer.from('no-colon').toString('base64')}`), undefined)
})

test('no users: open', async () => {
  const auth = new BasicAuth({})
  assert.equal(auth.enabled, false)
  assert.equal(await auth.check(undefined), true)
})

test('plain and hashed passwords; wrong ones and unknown users refused', async () => {
  const auth = new BasicAuth({ plain: 'pw', hashed: hashPassword('secret', 10) })
  assert.equal(auth.enabled, true)
  assert.equal(await auth.check(header('plain', 'pw')), true)
  assert.equal(await auth.check(header('hashed', 'secret')), true)
  assert.equal(await auth.check(header('hashed', 'secret')), true, 'cached success')
  assert.equal(await auth.check(header('hashed', 'Secret')), false)
  assert.equal(await auth.check(header('plain', 'pw ')), false)
  assert.equal(await auth.check(header('nobody', 'pw')), false)
  assert.equal(await auth.check(undefined), false)
})

test('the success cache is bounded and keyed by password: a cached user with a new wrong password is refused', async () => {
  const users: Record<string, string> = {}
  for (let i = 0; i < 300; i++) users[`u${i}`] = 'pw'
  const auth = new BasicAuth(users)
  for (let i = 0; i < 300; i++) assert.equal(await auth.check(header(`u${i}`, 'pw')), true)
  assert.equal((auth as unknown as { verified: Set<string> }).verified.size, 256)
  assert.equal(await auth.check(header('u299', 'other')), false)
  assert.equal(await auth.check(header('u0', 'pw')), true, 'evicted entries are checked again')
})

test('which paths are behind auth', () => {
  for (const path of ['/api/mqtt/clients', '/api/sse', '/proxy/api/mqtt/clients', '/debug', '/debug/pprof/heap']) assert.equal(isProtected(path), true, path)
  for (const path of ['/metrics', '/ready', '/healthz', '/openapi.json', '/debugger', '/apix']) assert.equal(isProtected(path), false, path)
})
