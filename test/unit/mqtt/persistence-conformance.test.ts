// The session store (src/server/mqtt/persistence.ts) against aedes-persistence's
// own conformance suite: every persistence aedes runs on must pass it, and so
// does ours, queues and ledger included.
import { test } from 'node:test'
import { createRequire } from 'node:module'
import { SessionStore } from '../../../src/server/mqtt/persistence.js'

const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: object) => void

abstractPersistence({
  test,
  testAsync: true,
  persistence: () => new SessionStore({ limits: { maxRetainedMessages: 0, maxRetainedBytes: 0, maxQueuedMessages: 0 } })
})
