import { test } from 'node:test'
import assert from 'node:assert/strict'
import { filterMatches } from '../../../src/server/mqtt/topic-filter.js'

test('topic filters match per MQTT 5 §4.7', () => {
  const yes: Array<[string, string]> = [['a/b', 'a/b'], ['a/+', 'a/b'], ['a/#', 'a'], ['a/#', 'a/b/c'], ['#', 'a/b'], ['+/+', 'a/b'], ['a/+/c', 'a//c'], ['+', '']]
  const no: Array<[string, string]> = [['a/b', 'a/c'], ['a/+', 'a/b/c'], ['a/+', 'a'], ['#', '$SYS/x'], ['+/x', '$a/x'], ['a/b/c', 'a/b']]
  for (const [f, t] of yes) assert.equal(filterMatches(f, t), true, `${f} ~ ${t}`)
  for (const [f, t] of no) assert.equal(filterMatches(f, t), false, `${f} !~ ${t}`)
})
