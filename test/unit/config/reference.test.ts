import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { CONFIGURATION_DOC, generatedSections, renderDoc } from '../../../scripts/update-docs.js'
import { leafKeys } from '../../../src/config/index.js'

test('docs/configuration.md has the config reference generated from the schema, up to date (npm run docs)', () => {
  const text = readFileSync(CONFIGURATION_DOC, 'utf8')
  assert.equal(text, renderDoc(text, generatedSections()[CONFIGURATION_DOC]!), 'docs/configuration.md is stale: run `npm run docs`')
  for (const key of leafKeys()) {
    assert.ok(text.includes(`\`${key.path.join('.')}\``), `${key.path.join('.')} missing from docs/configuration.md`)
    assert.ok(text.includes(`\`${key.env}\``), `${key.env} missing from docs/configuration.md`)
  }
})
