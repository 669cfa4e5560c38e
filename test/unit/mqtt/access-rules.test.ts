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

  test('after a reload, rules naming a client id or an address see the connection\'s, closed or not', async () => {
    const rules = new AccessRules({ auth: [], acl: [] })
    const here = Object.assign(fakeClient('dev-1'), { conn: Object.assign(new EventEmitter(), { remoteAddress: '127.0.0.1', remotePort: 40000 }) })
    const there = Object.assign(fakeClient('dev-2'), { conn: Object.assign(new EventEmitter(), { remoteAddress: '10.1.1.1', remotePort: 40000 }) })
    rules.admit(here as unknown as Client, { ...who('dev'), clientId: 'dev-1' }, new Set())
    rules.admit(there as unknown as Client, { ...who('dev'), clientId: 'dev-2', remote: { address: '10.1.1.1', port: 40000 } }, new Set())
    there.conn.emit('close')
    await rules.replace({
      auth: [{ remote: '127.0.0.1', allow: true }],
      acl: [{ remote: '10.1.1.1', filters: { 'far/#': 0, '#': 2 } }, { client: 'dev-1', filters: { 'near/#': 0, '#': 2 } }]
    } as never, false)
    const may = (c: FakeClient, topic: string): boolean | undefined => rules.viewOf(c as unknown as Client)?.canPublish(topic).allowed
    assert.deepEqual([may(here, 'near/x'), may(here, 'far/x')], [false, true])
    assert.deepEqual([may(there, 'near/x'), may(there, 'far/x')], [true, false])
    // And a reload that checks credentials again admits by the connection's address.
    const removed = await rules.replace({ auth: [{ remote: '10.1.1.1', allow: true }], acl: [] } as never, true)
    assert.deepEqual(removed, ['dev-1'])
  })
})
