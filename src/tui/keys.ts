// Key presses as the admin UI handles them: one at a time. Ink hands a
// handler whatever the terminal delivered in one read, so keys that arrive
// together (typing fast over SSH, key repeat, a paste, tmux `send-keys j j`)
// come as one string ("jj", "/sub", "abc\r"). Ink already cuts escape
// sequences (arrows, Home, Esc) out of such a chunk; what is left is text and
// single-byte control keys, which `splitKeys` turns into one press each. Pure.
import type { Key } from 'ink'

export interface KeyPress { input: string, key: Key }
export type KeyHandler = (input: string, key: Key) => void

const PLAIN: Key = {
  upArrow: false,
  downArrow: false,
  leftArrow: false,
  rightArrow: false,
  pageDown: false,
  pageUp: false,
  home: false,
  end: false,
  return: false,
  escape: false,
  ctrl: false,
  shift: false,
  tab: false,
  backspace: false,
  delete: false,
  meta: false,
  super: false,
  hyper: false,
  capsLock: false,
  numLock: false
}

/** One character of a chunk as Ink would report it had it arrived alone. */
function pressOf (char: string): KeyPress {
  // Enter is \r from a terminal; a pasted line ends in \n.
  if (char === '\r' || char === '\n') return { input: '', key: { ...PLAIN, return: true } }
  if (char === '\t') return { input: '', key: { ...PLAIN, tab: true } }
  if (char === '\x7f') return { input: '', key: { ...PLAIN, delete: true } }
  if (char === '\b') return { input: '', key: { ...PLAIN, backspace: true } }
  const code = char.codePointAt(0)!
  if (code >= 1 && code <= 26) return { input: String.fromCharCode(code + 96), key: { ...PLAIN, ctrl: true } }
  return { input: char, key: { ...PLAIN, shift: /^[A-Z]$/.test(char) } }
}

/** The presses in one input event: itself when it is one key, else one per character. */
export function splitKeys (input: string, key: Key): KeyPress[] {
  const chars = [...input]
  if (chars.length <= 1) return [{ input, key }]
  return chars.map(pressOf)
}

/**
 * Where a list selection goes for a key, or undefined when the key does not
 * move it: ↑/↓ (k/j) one row, PgUp/PgDn a page, g/Home the first row, G/End
 * the last, as in less and vim.
 */
export function listMove (input: string, key: Key, at: number, count: number, page = 10): number | undefined {
  const last = Math.max(0, count - 1)
  if (key.downArrow || input === 'j') return Math.min(at + 1, last)
  if (key.upArrow || input === 'k') return Math.max(0, at - 1)
  if (key.pageDown) return Math.min(at + page, last)
  if (key.pageUp) return Math.max(0, at - page)
  if (key.home || input === 'g') return 0
  if (key.end || input === 'G') return last
  return undefined
}
