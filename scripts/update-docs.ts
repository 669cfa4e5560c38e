// Regenerates the parts of README.md that are derived from code (the config
// reference table), between <!-- name:start --> and <!-- name:end --> markers.
// `npm run docs`; a unit test fails when the README is out of date.
import { readFileSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { referenceTable } from '../src/config/index.js'

export const README = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md')

export function generatedSections (): Record<string, string> {
  return { 'config-reference': referenceTable() }
}

export function renderReadme (text: string): string {
  let out = text
  for (const [name, body] of Object.entries(generatedSections())) {
    const start = `<!-- ${name}:start -->`
    const end = `<!-- ${name}:end -->`
    const from = out.indexOf(start)
    const to = out.indexOf(end)
    if (from < 0 || to < from) throw new Error(`README.md lacks the ${start} ... ${end} markers`)
    out = `${out.slice(0, from + start.length)}\n${body}\n${out.slice(to)}`
  }
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(README, renderReadme(readFileSync(README, 'utf8')))
  console.log('README.md updated')
}
