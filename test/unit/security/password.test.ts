import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hashPassword, verifyPassword, parsePasswordHash, constantTimeEqual } from '../../../src/security/password.js'

test('a scrypt hash verifies its password and nothing else', async () => {
  const hash = hashPassword('correct horse', 10)
  assert.match(hash, /^scrypt\$10\$8\$1\$/)
  assert.equal(await verifyPassword('correct horse', hash), true)
  assert.equal(await verifyPassword('correct horsf', hash), false)
  assert.equal(await verifyPassword('', hash), false)
  assert.notEqual(hashPassword('correct horse', 10), hash, 'salted: two hashes differ')
})

test('plain stored passwords compare exactly', async () => {
  assert.equal(await verifyPassword('s3cret', 's3cret'), true)
  assert.equal(await verifyPassword(Buffer.from('s3cret'), 's3cret'), true)
  assert.equal(await verifyPassword('s3cre', 's3cret'), false)
  assert.equal(await verifyPassword('s3cret ', 's3cret'), false)
})

test('malformed hashes are rejected with a reason and never verify', async () => {
  assert.equal(typeof parsePasswordHash('scrypt$99$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA=='), 'string')
  assert.equal(typeof parsePasswordHash('scrypt$15$8$1$c2FsdA==$AAAA'), 'string')
  assert.equal(await verifyPassword('x', 'scrypt$broken'), false)
})

test('constantTimeEqual handles different lengths', () => {
  assert.equal(constantTimeEqual('a', 'a'), true)
  assert.equal(constantTimeEqual('a', 'ab'), false)
})
