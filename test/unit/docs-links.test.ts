// The README and docs/ link to each other: every relative link must reach a
// file that exists, and a #fragment a heading of that file (GitHub's anchor
// rules), so moving a section cannot leave a dead link behind.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { ROOT } from '../helpers/node.js'

/** The text of a markdown file outside its fenced code blocks. */
function prose (text: string): string {
  return text.split(/^```.*$/m).filter((_, i) => i % 2 === 0).join('\n')
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes; repeats get -1, -2. */
export function anchors (text: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const m of prose(text).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))]

test('every relative link in README.md and docs/ reaches a file and a heading that exist', () => {
  const broken: string[] = []
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    for (const m of prose(text).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!
      if (/^[a-z]+:/i.test(target)) continue
      const [path, fragment] = target.split('#') as [string, string | undefined]
      const resolved = path === '' ? join(ROOT, file) : join(ROOT, dirname(file), path)
      if (!existsSync(resolved)) { broken.push(`${file}: ${target} (no ${relative(ROOT, resolved)})`); continue }
      if (fragment !== undefined && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(fragment)) {
        broken.push(`${file}: ${target} (no heading #${fragment} in ${relative(ROOT, resolved)})`)
      }
    }
  }
  assert.deepEqual(broken, [])
})

test('the README links every document in docs/', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  for (const file of files.filter((f) => f.startsWith('docs'))) assert.ok(readme.includes(`](${file})`), `README.md links ${file}`)
})

test('anchors follow GitHub: code and punctuation dropped, repeats numbered', () => {
  assert.deepEqual([...anchors('# GET /ready and GET /healthz\n## Operating a cluster: `broker-ha admin`\n## Logs\n### Logs\n```\n# not a heading\n```')],
    ['get-ready-and-get-healthz', 'operating-a-cluster-broker-ha-admin', 'logs', 'logs-1'])
})
