// splitKeys: a chunk of keys that arrived together becomes one press per key,
// each as Ink reports a key that arrives alone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Key } from 'ink'
import { splitKeys } from '../../../src/tui/keys.js'

const plain = { upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false, return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false, super: false, hyper: false, capsLock: false, numLock: false } satisfies Key
const flags = (key: Key): string[] => Object.entries(key).filter(([, v]) => v === true).map(([k]) => k)

test('one key is passed through unchanged', () => {
  const down = { ...plain, downArrow: true }
  assert.deepEqual(splitKeys('', down), [{ input: '', key: down }])
  assert.deepEqual(splitKeys('j', plain), [{ input: 'j', key: plain }])
})

test('text typed fast or pasted: one press per character, in order', () => {
  const presses = splitKeys('/sub', plain)
  assert.deepEqual(presses.map((p) => p.input), ['/', 's', 'u', 'b'])
  assert.ok(presses.every((p) => flags(p.key).length === 0))
  assert.deepEqual(splitKeys('jj', plain).map((p) => p.input), ['j', 'j'])
  assert.deepEqual(splitKeys('Ké€', plain).map((p) => [p.input, flags(p.key)]), [['K', ['shift']], ['é', []], ['€', []]])
})

test('control characters inside a chunk become the keys they are', () => {
  const presses = splitKeys('ab\r\t\u007f\b\u0003\n', plain)
  assert.deepEqual(presses.map((p) => [p.input, flags(p.key)]), [
    ['a', []], ['b', []], ['', ['return']], ['', ['tab']], ['', ['delete']], ['', ['backspace']], ['c', ['ctrl']], ['', ['return']]
  ])
})
