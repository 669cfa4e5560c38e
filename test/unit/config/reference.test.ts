import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { README, renderReadme } from '../../../scripts/update-readme.js'
import { leafKeys } from '../../../src/config/index.js'

test('the README config reference is generated from the schema and up to date (npm run docs)', () => {
  const text = readFileSync(README, 'utf8')
  assert.equal(text, renderReadme(text), 'README.md is stale: run `npm run docs`')
  for (const key of leafKeys()) {
    assert.ok(text.includes(`\`${key.path.join('.')}\``), `${key.path.join('.')} missing from README`)
    assert.ok(text.includes(`\`${key.env}\``), `${key.env} missing from README`)
  }
})
