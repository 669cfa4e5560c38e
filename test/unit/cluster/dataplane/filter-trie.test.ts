import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FilterTrie } from '../../../../src/server/cluster/dataplane/filter-trie.js'
import { topicMatches } from '../../../../src/topic-filter.js'

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
