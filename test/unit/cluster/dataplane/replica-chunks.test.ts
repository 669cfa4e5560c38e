// A turn's replica operations for one holder leave in messages of about 4 MiB
// (session-replication.ts): a promotion's snapshots of queues of 64 KiB
// messages once went out as one 28 MB message, past the link's limit, and
// the RangeError ended the node.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { replicaChunks, CHUNK_BYTES } from '../../../../src/server/cluster/dataplane/session-replication.js'
import { encodeMessage } from '../../../../src/server/cluster/dataplane/messages.js'
import type { ClientReplicaOp } from '../../../../src/server/cluster/dataplane/replica-store.js'
import type { TransferredPacket } from '../../../../src/server/cluster/dataplane/session-transfer.js'

const packet = (i: number, bytes: number): TransferredPacket => ({ cmd: 'publish', topic: `storm/${i % 7}`, payload: Buffer.alloc(bytes, i % 251), qos: 1, brokerId: 'node-a@1', brokerCounter: i + 1 })

test('64 KiB messages queued in one turn leave in messages of about 4 MiB, in order, none lost', () => {
  const ops: ClientReplicaOp[] = Array.from({ length: 450 }, (_, i) => ({ clientId: `c${i % 7}`, op: 'enqueue', packet: packet(i, 64 * 1024) }))
  const chunks = replicaChunks(ops)
  assert.ok(chunks.length >= 7, `${chunks.length} messages for ~29 MiB`)
  for (const c of chunks) assert.ok(encodeMessage({ kind: 'replica', ops: c }).length <= CHUNK_BYTES + 128 * 1024, 'each message stays near the chunk size')
  assert.deepEqual(chunks.flat(), ops, 'every operation once, in order')
})

test('a snapshot larger than a chunk goes alone; small operations share a message', () => {
  const snapshot: ClientReplicaOp = {
    clientId: 'big',
    op: 'snapshot',
    snapshot: { stamp: '0000000000000001-0000-node-a' as never, subscriptions: [{ topic: 'storm/#', qos: 1 }], queue: Array.from({ length: 80 }, (_, i) => packet(i, 64 * 1024)), ledger: [], incoming: [], will: null, connected: false, disconnectedAt: 0, expiry: 3600 } as never
  }
  const small: ClientReplicaOp[] = Array.from({ length: 50 }, (_, i) => ({ clientId: `s${i}`, op: 'clear', messageId: i + 1 }))
  const chunks = replicaChunks([...small.slice(0, 25), snapshot, ...small.slice(25)])
  assert.deepEqual(chunks.map((c) => c.length), [25, 1, 25])
})
