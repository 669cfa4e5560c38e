// The credential members present to each other's API, derived from the cluster key.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemberCredential, MAX_SKEW_MS } from '../../../src/security/member-credential.js'

const KEY = '0123456789abcdef0123456789abcdef'

test('a credential signed with the key is accepted for that method and path, recently', () => {
  const c = new MemberCredential([KEY])
  const h = c.sign('POST', '/api/mqtt/client/stop', 1000)!
  assert.equal(c.verify(h, 'POST', '/api/mqtt/client/stop', 1000), true)
  assert.equal(c.verify(h, 'GET', '/api/mqtt/client/stop', 1000), false, 'other method')
  assert.equal(c.verify(h, 'POST', '/api/mqtt/clients', 1000), false, 'other path')
  assert.equal(c.verify(h, 'POST', '/api/mqtt/client/stop', 1000 + MAX_SKEW_MS + 1), false, 'too old')
  assert.equal(c.verify(undefined, 'POST', '/x', 1000), false)
  assert.equal(c.verify('v1 1000 ' + 'A'.repeat(43), 'POST', '/api/mqtt/client/stop', 1000), false)
})

test('another key, or no key, accepts nothing; a secondary key is accepted (rotation)', () => {
  const h = new MemberCredential([KEY]).sign('GET', '/x', 5)!
  assert.equal(new MemberCredential(['fedcba9876543210fedcba9876543210']).verify(h, 'GET', '/x', 5), false)
  assert.equal(new MemberCredential([]).verify(h, 'GET', '/x', 5), false)
  assert.equal(new MemberCredential([]).sign('GET', '/x'), undefined)
  assert.equal(new MemberCredential(['fedcba9876543210fedcba9876543210', KEY]).verify(h, 'GET', '/x', 5), true)
})

test('the credential does not contain the key', () => {
  const h = new MemberCredential([KEY]).sign('GET', '/x', 5)!
  assert.equal(h.includes(KEY), false)
  assert.equal(h.includes(Buffer.from(KEY).toString('base64url')), false)
})

test('the cluster label is bound in: another cluster with the same key is not accepted', () => {
  const h = new MemberCredential([KEY], 'blue').sign('GET', '/x', 5)!
  assert.equal(new MemberCredential([KEY], 'blue').verify(h, 'GET', '/x', 5), true)
  assert.equal(new MemberCredential([KEY], 'green').verify(h, 'GET', '/x', 5), false)
})
