import { test } from 'node:test'
import assert from 'node:assert/strict'
import { filterProblem, isValidFilter, parseShared, stripSharePrefix, topicMatches } from '../../src/topic-filter.js'

test('topic filters match per MQTT 5 section 4.7', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/b', 'a/b', true], ['a/b', 'a/c', false], ['a/b', 'a/bc', false], ['a/b', 'a/b/c', false], ['a/b/c', 'a/b', false],
    ['a/+', 'a/b', true], ['a/+', 'a/b/c', false], ['a/+', 'a', false], ['a/+/c', 'a//c', true], ['a/+/c', 'a/x/c', true],
    ['+', '', true], ['+', '/x', false], ['+/x', '/x', true], ['+/+', 'a/b', true],
    ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['#', 'a/b', true],
    // [MQTT-4.7.2-1] wildcards at the first level never match $ topics
    ['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['+/x', '$a/x', false], ['$SYS/#', '$SYS/x', true]
  ]
  for (const [f, t, want] of cases) assert.equal(topicMatches(f, t), want, `${f} vs ${t}`)
})

test('filter syntax per section 4.7.1, with the reason', () => {
  assert.equal(isValidFilter('a/+/#'), true)
  assert.equal(filterProblem('a/#/b'), '# must be a whole level and the last one')
  assert.equal(filterProblem('a#'), '# must be a whole level and the last one')
  assert.equal(filterProblem('a+/b'), '+ must be a whole level')
  assert.equal(filterProblem(''), 'a filter is at least one character long')
})

test('shared subscription names are parsed per section 4.8.2', () => {
  assert.deepEqual(parseShared('$share/g/a/+'), { group: 'g', filter: 'a/+' })
  assert.equal(parseShared('a/b'), undefined)
  assert.equal(parseShared('$share/g'), undefined)
  assert.equal(parseShared('$share/g/'), undefined)
  assert.equal(parseShared('$share//a'), undefined)
  assert.equal(parseShared('$share/g+/a'), undefined)
  assert.equal(stripSharePrefix('$share/g/a/b'), 'a/b')
  assert.equal(stripSharePrefix('$share/g/#'), '#')
  assert.equal(stripSharePrefix('a/b'), 'a/b')
  assert.equal(stripSharePrefix('$share/g'), '$share/g', 'a malformed share is an ordinary (odd) filter')
})
