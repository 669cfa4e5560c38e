import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FilterTrie, isValidFilter, parseShared, topicMatches } from '../../../src/server/cluster/dataplane/topic-filter.js'

const cases: Array<[string, string, boolean]> = [
  ['a/b', 'a/b', true],
  ['a/+', 'a/b', true],
  ['a/+', 'a/b/c', false],
  ['a/#', 'a', true],
  ['a/#', 'a/b/c', true],
  ['#', 'a/b', true],
  ['+/+', 'a/b', true],
  ['+', '/x', false],
  ['+/x', '/x', true],
  ['a/+/c', 'a//c', true],
  ['#', '$SYS/x', false],
  ['+/x', '$SYS/x', false],
  ['$SYS/#', '$SYS/x', true],
  ['a/b', 'a/b/c', false],
  ['a/b/c', 'a/b', false]
]

test('topicMatches follows MQTT 5 section 4.7', () => {
  for (const [f, t, want] of cases) assert.equal(topicMatches(f, t), want, `${f} vs ${t}`)
})

test('the trie matches exactly what topicMatches matches', () => {
  const trie = new FilterTrie<string>()
  const filters = [...new Set(cases.map((c) => c[0]))]
  for (const f of filters) trie.add(f, f)
  const topics = [...new Set(cases.map((c) => c[1])), 'a', 'x/y/z', '$SYS', '']
  for (const t of topics) {
    const got = new Set<string>()
    trie.match(t, (v) => got.add(v))
    const want = new Set(filters.filter((f) => topicMatches(f, t)))
    assert.deepEqual(got, want, `topic ${t}`)
  }
  for (const f of filters) assert.equal(trie.remove(f, f), true)
  assert.equal(trie.size, 0)
  let any = false
  trie.match('a/b', () => { any = true })
  assert.equal(any, false)
  assert.equal(trie.remove('a/b', 'a/b'), false)
})

test('shared subscription names are parsed per section 4.8.2', () => {
  assert.deepEqual(parseShared('$share/g/a/+'), { group: 'g', filter: 'a/+' })
  assert.equal(parseShared('a/b'), undefined)
  assert.equal(parseShared('$share/g'), undefined)
  assert.equal(parseShared('$share//a'), undefined)
  assert.equal(parseShared('$share/g+/a'), undefined)
  assert.equal(isValidFilter('a/#/b'), false)
  assert.equal(isValidFilter('a+/b'), false)
  assert.equal(isValidFilter('a/+/#'), true)
})
