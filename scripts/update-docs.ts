// Regenerates the parts of the docs that are derived from code (the config
// reference table in docs/configuration.md), between <!-- name:start --> and
// <!-- name:end --> markers. `npm run docs`; a unit test fails when a
// generated part is out of date.
import { readFileSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { referenceTable } from '../src/config/index.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CONFIGURATION_DOC = join(ROOT, 'docs', 'configuration.md')

/** Generated sections by file. */
export function generatedSections (): Record<string, Record<string, string>> {
  return { [CONFIGURATION_DOC]: { 'config-reference': referenceTable() } }
}

export function renderDoc (text: string, sections: Record<string, string>, name = 'the document'): string {
  let out = text
  for (const [section, body] of Object.entries(sections)) {
    const start = `<!-- ${section}:start -->`
    const end = `<!-- ${section}:end -->`
    const from = out.indexOf(start)
    const to = out.indexOf(end)
    if (from < 0 || to < from) throw new Error(`${name} lacks the ${start} ... ${end} markers`)
    out = `${out.slice(0, from + start.length)}\n${body}\n${out.slice(to)}`
  }
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [path, sections] of Object.entries(generatedSections())) {
    writeFileSync(path, renderDoc(readFileSync(path, 'utf8'), sections, path))
    console.log(`${path} updated`)
  }
}
