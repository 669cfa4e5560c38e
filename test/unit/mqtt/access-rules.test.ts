// The rules in force and each admitted client's view of them, across a
// closed connection and a reload, without a broker.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import type { Client } from 'aedes'
import { AccessRules } from '../../../src/server/mqtt/access-rules.js'
import type { ClientIdentity } from '../../../src/server/mqtt/access.js'

interface FakeClient { id: string, conn: EventEmitter, disconnects: number, disconnect: () => void }

function fakeClient (id: string): FakeClient {
  const c: FakeClient = { id, conn: new EventEmitter(), disconnects: 0, disconnect: () => { c.disconnects++ } }
  return c
}

const who = (username: string): ClientIdentity => ({ clientId: `${username}-1`, username, remote: { address: '127.0.0.1', port: 40000 } })

describe('AccessRules', () => {
  test('a closed connection keeps its view, so a delayed will is authorized when it fires', async () => {
    const rules = new AccessRules({ auth: [], acl: [{ username: 'dev', filters: { 'wills/#': 2 } }] })
    const fake = fakeClient('dev-1')
    const client = fake as unknown as Client
    rules.admit(client, who('dev'), new Set())
    fake.conn.emit('close')
    assert.equal(rules.viewOf(client)?.canPublish('wills/dev-1').allowed, true)
    // The will is checked against the rules in force when it fires.
    await rules.replace({ auth: [], acl: [{ username: 'dev', filters: { 'wills/#': 0 } }] }, false)
    assert.equal(rules.viewOf(client)?.canPublish('wills/dev-1').allowed, false)
  })

  test('a reload disconnects connected clients it no longer admits, never closed ones', async () => {
    const auth = [{ username: 'dev', allow: true }, { username: 'old', allow: true }]
    const rules = new AccessRules({ auth, acl: [] })
    const dev = fakeClient('dev-1')
    const old = fakeClient('old-1')
    const gone = fakeClient('gone-1')
    rules.admit(dev as unknown as Client, who('dev'), new Set())
    rules.admit(old as unknown as Client, who('old'), new Set())
    rules.admit(gone as unknown as Client, who('old'), new Set())
    gone.conn.emit('close')
    const removed = await rules.replace({ auth: [{ username: 'dev', allow: true }], acl: [] }, true)
    assert.deepEqual(removed, ['old-1'])
    assert.deepEqual([dev.disconnects, old.disconnects, gone.disconnects], [0, 1, 0])
    // Removed credentials take the view with them: its will is not published.
    assert.equal(rules.viewOf(old as unknown as Client), undefined)
  })
})
