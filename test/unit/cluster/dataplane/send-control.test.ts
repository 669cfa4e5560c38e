// A control message the link refuses (past maxMessageBytes) is logged, not
// thrown: thrown from a setImmediate it ended the process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { sendOrReport, sendControl } from '../../../../src/server/cluster/dataplane/context.js'
import type { PeerLink } from '../../../../src/server/cluster/dataplane/peer-link.js'
import type { DataPlaneContext } from '../../../../src/server/cluster/dataplane/context.js'

test('a control message the link refuses is logged as an error with its kind and size, and reported as not sent', () => {
  const errors: Array<Record<string, unknown>> = []
  const log = { error: (obj: Record<string, unknown>) => { errors.push(obj) } }
  const link = { peerName: 'node-b', state: 'up', send: () => { throw new RangeError('message of 28120760 bytes exceeds maxMessageBytes') } }
  const ctx = { log, links: { get: () => link } } as unknown as DataPlaneContext
  assert.equal(sendOrReport(ctx, link as unknown as PeerLink, { kind: 'rescue-done', requestId: 'r1' }), false)
  assert.doesNotThrow(() => sendControl(ctx, 'node-b', { kind: 'rescue-done', requestId: 'r2' }))
  assert.equal(errors.length, 2)
  assert.equal(errors[0]!.peer, 'node-b')
  assert.equal(errors[0]!.kind, 'rescue-done')
  assert.match(String(errors[0]!.err), /exceeds maxMessageBytes/)
})
