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
  for (let i = 0; i < 300; i++) users[`u${i}`] = hashPassword(`pw${i}`, 10)
  const auth = new BasicAuth(users)
  for (let i = 0; i < 300; i++) assert.equal(await auth.check(header(`u${i}`, `pw${i}`)), true)
  assert.equal((auth as unknown as { verify: { size: number } }).verify.size, 256)
  assert.equal(await auth.check(header('u299', 'other')), false)
  assert.equal(await auth.check(header('u0', 'pw0')), true, 'evicted entries are checked again')
})

test('an unknown user costs a check of the same kind as a wrong password (a decoy hash with the same parameters)', async () => {
  const stored: string[] = []
  const auth = new BasicAuth({ ops: hashPassword('secret', 10) })
  const inner = auth as unknown as { verify: (p: Buffer, s: string) => Promise<boolean> }
  const verify = inner.verify
  inner.verify = async (p, s) => { stored.push(s); return await verify(p, s) }
  assert.equal(await auth.check(header('ops', 'wrong')), false)
  assert.equal(await auth.check(header('nobody', 'wrong')), false)
  assert.equal(stored.length, 2, 'both were checked')
  assert.match(stored[1]!, /^scrypt\$10\$8\$1\$/, 'the unknown user was checked against a scrypt hash of the same cost')
  assert.notEqual(stored[0], stored[1])
})

test('plain passwords are not kept as given', () => {
  const auth = new BasicAuth({ ops: 'plain-secret-password' })
  const kept = [...(auth as unknown as { users: Map<string, string> }).users.values()]
  assert.equal(kept.some((v) => v.includes('plain-secret-password')), false)
})

test('which paths are behind auth', () => {
  for (const path of ['/api/mqtt/clients', '/api/sse', '/proxy/api/mqtt/clients', '/debug', '/debug/pprof/heap', '/chaos/faults']) assert.equal(isProtected(path), true, path)
  for (const path of ['/metrics', '/ready', '/healthz', '/openapi.json', '/debugger', '/apix']) assert.equal(isProtected(path), false, path)
})
