import { test } from 'node:test'
import assert from 'node:assert/strict'
import { closest, didYouMean, editDistance } from '../../src/did-you-mean.js'

test('edit distance counts inserts, deletes, substitutions and swapped neighbours', () => {
  assert.equal(editDistance('members', 'members'), 0)
  assert.equal(editDistance('memebrs', 'members'), 1, 'one swap')
  assert.equal(editDistance('kik', 'kick'), 1)
  assert.equal(editDistance('abc', 'xyz'), 3)
})

test('suggests the nearest candidates, or a word the typed one starts, and nothing far away', () => {
  const words = ['members', 'clients', 'retained', 'subscribers', 'kick']
  assert.deepEqual(closest('memebrs', words), ['members'])
  assert.deepEqual(closest('sub', words), ['subscribers'])
  assert.deepEqual(closest('zzz', words), [])
  assert.equal(didYouMean('clinets', words), '\n(Did you mean clients?)')
  assert.equal(didYouMean('json', ['jsn', 'jso']), '\n(Did you mean one of jsn, jso?)')
  assert.equal(didYouMean('qqqq', words), '')
})
