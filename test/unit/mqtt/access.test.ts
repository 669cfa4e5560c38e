// Rule evaluation for mqtt.auth and mqtt.acl, without a broker.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import {
  AccessPolicy, remoteMatcher, normaliseAddress,
  filterCovers, filtersOverlap, compareSpecificity,
  type ClientIdentity, type PasswordCheck
} from '../../../src/server/mqtt/access.js'
import type { AuthRuleConfig, AclRuleConfig } from '../../../src/config/index.js'
import { hashPassword, verifyPassword, cachedPasswordVerifier } from '../../../src/security/password.js'

const plainCheck: PasswordCheck = async (presented, stored) => await verifyPassword(presented, stored)

function auth (rules: AuthRuleConfig[]): AccessPolicy {
  return new AccessPolicy({ auth: rules, acl: [] })
}

function acl (rules: AclRuleConfig[]): AccessPolicy {
  return new AccessPolicy({ auth: [], acl: rules })
}

const who = (over: Partial<ClientIdentity> = {}): ClientIdentity => ({
  clientId: 'dev-1',
  username: undefined,
  remote: { address: '192.168.1.20', port: 53211 },
  ...over
})

async function allowed (policy: AccessPolicy, identity: ClientIdentity, password?: string, check = plainCheck): Promise<boolean> {
  return (await policy.authenticate(identity, password === undefined ? undefined : Buffer.from(password), check)).allowed
}

const L = (s: string): string[] => s.split('/')

describe('authentication', () => {
  test('no rules: everyone may connect (anonymous)', async () => {
    const p = auth([])
    assert.equal(p.anonymous, true)
    assert.equal(await allowed(p, who()), true)
  })

  test('no matching rule refuses', async () => {
    const p = auth([{ username: 'alice', password: 'pw', allow: true }])
    assert.equal(p.anonymous, false)
    assert.equal(await allowed(p, who({ username: 'bob' }), 'pw'), false)
    assert.equal(await allowed(p, who()), false)
  })

  test('username + plain password: both must match', async () => {
    const p = auth([{ username: 'alice', password: 'pw', allow: true }])
    assert.equal(await allowed(p, who({ username: 'alice' }), 'pw'), true)
    assert.equal(await allowed(p, who({ username: 'alice' }), 'PW'), false)
    assert.equal(await allowed(p, who({ username: 'alice' }), 'pw '), false)
    assert.equal(await allowed(p, who({ username: 'alice' })), false, 'no password presented')
    assert.equal(await allowed(p, who({ username: 'alic' }), 'pw'), false)
  })

  test('username + scrypt hash', async () => {
    const p = auth([{ username: 'alice', password: hashPassword('s3cret', 10), allow: true }])
    assert.equal(await allowed(p, who({ username: 'alice' }), 's3cret'), true)
    assert.equal(await allowed(p, who({ username: 'alice' }), 's3cre'), false)
  })

  test('password without username matches anyone presenting it', async () => {
    const p = auth([{ password: 'shared', allow: true }])
    assert.equal(await allowed(p, who({ username: 'x' }), 'shared'), true)
    assert.equal(await allowed(p, who(), 'shared'), true)
    assert.equal(await allowed(p, who({ username: 'x' }), 'other'), false)
  })

  test('client id: exact and trailing * prefix', async () => {
    const p = auth([{ client: 'sensor-*', allow: true }, { client: 'exact', allow: true }])
    assert.equal(await allowed(p, who({ clientId: 'sensor-1' })), true)
    assert.equal(await allowed(p, who({ clientId: 'sensor-' })), true, '* also matches an empty suffix')
    assert.equal(await allowed(p, who({ clientId: 'sensor' })), false)
    assert.equal(await allowed(p, who({ clientId: 'exact' })), true)
    assert.equal(await allowed(p, who({ clientId: 'exact2' })), false)
    assert.equal(await allowed(p, who({ clientId: 'xsensor-1' })), false)
  })

  test('username trailing * prefix; * alone matches any (also absent) username', async () => {
    const p = auth([{ username: 'ops-*', allow: true }])
    assert.equal(await allowed(p, who({ username: 'ops-anna' })), true)
    assert.equal(await allowed(p, who({ username: 'dev-anna' })), false)
    const any = auth([{ username: '*', password: 'k', allow: true }])
    assert.equal(await allowed(any, who(), 'k'), true)
    assert.equal(await allowed(any, who({ username: 'z' }), 'k'), true)
  })

  test('remote: IP matches any port, IP:port only that port', async () => {
    const p = auth([{ remote: '127.0.0.1', allow: true }, { remote: '10.1.1.1:1000', allow: true }])
    assert.equal(await allowed(p, who({ remote: { address: '127.0.0.1', port: 53211 } })), true)
    assert.equal(await allowed(p, who({ remote: { address: '127.0.0.2', port: 53211 } })), false)
    assert.equal(await allowed(p, who({ remote: { address: '10.1.1.1', port: 1000 } })), true)
    assert.equal(await allowed(p, who({ remote: { address: '10.1.1.1', port: 1001 } })), false)
    assert.equal(await allowed(p, who({ remote: undefined })), false, 'unknown remote never matches')
  })

  test('remote: every field given must match (AND), first matching rule decides', async () => {
    const p = auth([
      { username: 'alice', remote: '10.0.0.0/8', allow: false },
      { username: 'alice', password: 'pw', allow: true }
    ])
    assert.equal(await allowed(p, who({ username: 'alice', remote: { address: '10.2.3.4', port: 1 } }), 'pw'), false, 'denied by rule 0')
    assert.equal(await allowed(p, who({ username: 'alice', remote: { address: '11.2.3.4', port: 1 } }), 'pw'), true, 'rule 0 not matching: rule 1')
    const d = await p.authenticate(who({ username: 'alice', remote: { address: '11.2.3.4' } }), Buffer.from('pw'), plainCheck)
    assert.deepEqual(d, { allowed: true, rule: 1 })
  })

  test('an unknown user name costs one password check against a decoy of the same kind, as a wrong password does', async () => {
    const hash = hashPassword('pw', 10)
    const p = auth([{ username: 'alice', password: hash, allow: true }])
    const checked: string[] = []
    const counting: PasswordCheck = async (presented, stored) => { checked.push(stored); return await verifyPassword(presented, stored) }
    assert.equal((await p.authenticate(who({ username: 'alice' }), Buffer.from('wrong'), counting)).allowed, false)
    assert.equal((await p.authenticate(who({ username: 'mallory' }), Buffer.from('wrong'), counting)).allowed, false)
    assert.equal(checked.length, 2)
    assert.equal(checked[0], hash)
    assert.match(checked[1]!, /^scrypt\$10\$8\$1\$/)
    assert.notEqual(checked[1], hash)
  })

  test('plain passwords are kept only as protected digests', async () => {
    const p = auth([{ username: 'alice', password: 'plain-pw-123', allow: true }])
    const rules = (p as unknown as { authRules: Array<{ password: string }> }).authRules
    assert.equal(rules[0]!.password.includes('plain-pw-123'), false)
    assert.equal(await allowed(p, who({ username: 'alice' }), 'plain-pw-123'), true)
    assert.equal(await allowed(p, who({ username: 'alice' }), 'plain-pw-12'), false)
  })

  test('a rule whose password does not match falls through to the next rule', async () => {
    const p = auth([{ username: 'alice', password: 'pw', allow: true }, { remote: '192.168.0.0/16', allow: true }])
    assert.equal(await allowed(p, who({ username: 'alice' }), 'wrong'), true)
    assert.equal(await allowed(p, who({ username: 'alice', remote: { address: '8.8.8.8' } }), 'wrong'), false)
  })

  test('allow: false refuses even with correct credentials', async () => {
    const p = auth([{ username: 'banned', allow: false }, { password: 'pw', allow: true }])
    assert.equal(await allowed(p, who({ username: 'banned' }), 'pw'), false)
    assert.equal(await allowed(p, who({ username: 'ok' }), 'pw'), true)
  })

  test('password checks run only for rules whose other fields matched', async () => {
    let calls = 0
    const counting: PasswordCheck = async (a, b) => { calls++; return await plainCheck(a, b) }
    const p = auth([{ username: 'a', password: 'x', allow: true }, { username: 'b', password: 'y', allow: true }])
    assert.equal(await allowed(p, who({ username: 'b' }), 'y', counting), true)
    assert.equal(calls, 1)
  })
})

describe('remote matching', () => {
  const m = (pattern: string, address: string, port?: number): boolean => remoteMatcher(pattern)({ address, port })

  test('IPv4 CIDR', () => {
    assert.equal(m('10.0.0.0/8', '10.255.1.2'), true)
    assert.equal(m('10.0.0.0/8', '11.0.0.1'), false)
    assert.equal(m('192.168.1.0/24', '192.168.1.254', 9), true)
    assert.equal(m('192.168.1.0/24', '192.168.2.1'), false)
    assert.equal(m('0.0.0.0/0', '1.2.3.4'), true)
    assert.equal(m('1.2.3.4/32', '1.2.3.4'), true)
    assert.equal(m('1.2.3.4/32', '1.2.3.5'), false)
  })

  test('IPv6 exact, CIDR, bracketed port forms', () => {
    assert.equal(m('::1', '::1', 5), true)
    assert.equal(m('::1', '0:0:0:0:0:0:0:1'), true, 'compared as addresses, not text')
    assert.equal(m('fd00::/8', 'fd12:3456::1'), true)
    assert.equal(m('fd00::/8', 'fe80::1'), false)
    assert.equal(m('2001:db8::/32', '2001:db8:ffff::1'), true)
    assert.equal(m('[::1]:1883', '::1', 1883), true)
    assert.equal(m('[::1]:1883', '::1', 1884), false)
    assert.equal(m('[::1]', '::1', 1884), true)
  })

  test('IPv4-mapped IPv6 peers match IPv4 rules, and the other way round', () => {
    assert.equal(m('127.0.0.1', '::ffff:127.0.0.1', 53211), true)
    assert.equal(m('127.0.0.1:53211', '::ffff:127.0.0.1', 53211), true)
    assert.equal(m('127.0.0.1:53211', '::ffff:127.0.0.1', 53212), false)
    assert.equal(m('10.0.0.0/8', '::ffff:10.9.8.7'), true)
    assert.equal(m('10.0.0.0/8', '::ffff:11.9.8.7'), false)
    assert.equal(m('::ffff:127.0.0.1', '127.0.0.1'), true)
    assert.equal(m('127.0.0.*', '::ffff:127.0.0.9'), true)
    assert.equal(normaliseAddress('::FFFF:1.2.3.4'), '1.2.3.4')
    assert.equal(normaliseAddress('::1'), '::1')
  })

  test('trailing * prefix against ip and ip:port', () => {
    assert.equal(m('192.168.*', '192.168.7.7', 1), true)
    assert.equal(m('192.168.*', '192.169.7.7', 1), false)
    assert.equal(m('127.0.0.1:5*', '127.0.0.1', 5000), true)
    assert.equal(m('127.0.0.1:5*', '127.0.0.1', 6000), false)
    assert.equal(m('fd00:*', 'fd00::1', 1), true)
  })

  test('unknown remote and host names', () => {
    assert.equal(remoteMatcher('10.0.0.0/8')(undefined), false)
    assert.equal(remoteMatcher('127.0.0.1')(undefined), false)
    assert.equal(remoteMatcher('*')(undefined), false)
    assert.equal(m('broker.local:1883', '10.0.0.1', 1883), false)
  })
})

describe('topic filter algebra', () => {
  test('filter covers subscription', () => {
    assert.equal(filterCovers(L('a/#'), L('a/b/#')), true)
    assert.equal(filterCovers(L('a/b/#'), L('a/#')), false)
    assert.equal(filterCovers(L('a/+'), L('a/b')), true)
    assert.equal(filterCovers(L('a/+'), L('a/+')), true)
    assert.equal(filterCovers(L('a/b'), L('a/+')), false)
    assert.equal(filterCovers(L('a/+'), L('a/#')), false)
    assert.equal(filterCovers(L('a/#'), L('a')), true)
    assert.equal(filterCovers(L('#'), L('#')), true)
    assert.equal(filterCovers(L('#'), L('$SYS/#')), false)
    assert.equal(filterCovers(L('a/+/c'), L('a/+/c')), true)
    assert.equal(filterCovers(L('a/+/c'), L('a/+/#')), false)
  })

  test('filters overlap', () => {
    assert.equal(filtersOverlap(L('a/b/#'), L('a/#')), true)
    assert.equal(filtersOverlap(L('a/b/#'), L('c/#')), false)
    assert.equal(filtersOverlap(L('a/+'), L('+/b')), true)
    assert.equal(filtersOverlap(L('a/+'), L('a/b/c')), false)
    assert.equal(filtersOverlap(L('a/#'), L('a')), true)
    assert.equal(filtersOverlap(L('#'), L('$SYS/#')), false)
    assert.equal(filtersOverlap(L('$SYS/#'), L('+/x')), false)
  })

  test('specificity: literal > + > end > #, left to right', () => {
    const sorted = ['#', 'a/#', 'a/+', 'a/+/#', 'a/b', 'a/b/#', '+/b'].map(L).sort(compareSpecificity).map((l) => l.join('/'))
    assert.deepEqual(sorted, ['a/b', 'a/b/#', 'a/+', 'a/+/#', 'a/#', '+/b', '#'])
  })

})

describe('ACL', () => {
  const alice = who({ username: 'alice' })

  test('no rules: everything allowed', () => {
    const p = acl([])
    assert.equal(p.unrestricted, true)
    const v = p.aclFor(alice)
    assert.equal(v.canPublish('x/y').allowed, true)
    assert.equal(v.canSubscribe('#').allowed, true)
    assert.equal(v.canRead('x/y'), true)
  })

  test('permission values: 0 deny, 1 read, 2 write, 3 read-write', () => {
    const v = acl([{ filters: { 'd/#': 0, 'r/#': 1, 'w/#': 2, 'rw/#': 3 } }]).aclFor(alice)
    const row = (t: string): [boolean, boolean, boolean] => [v.canPublish(`${t}/x`).allowed, v.canSubscribe(`${t}/x`).allowed, v.canRead(`${t}/x`)]
    assert.deepEqual(row('d'), [false, false, false])
    assert.deepEqual(row('r'), [false, true, true])
    assert.deepEqual(row('w'), [true, false, false])
    assert.deepEqual(row('rw'), [true, true, true])
  })

  test('seed example: a/# denied, b/# write only, other topics fall through to allowed', () => {
    const v = acl([{ username: 'test', filters: { 'a/#': 0, 'b/#': 2 } }]).aclFor(who({ username: 'test' }))
    assert.equal(v.canPublish('a/1').allowed, false)
    assert.equal(v.canPublish('b/1').allowed, true)
    assert.equal(v.canSubscribe('b/1').allowed, false)
    assert.equal(v.canPublish('c/1').allowed, true)
    assert.equal(v.canSubscribe('c/#').allowed, true)
    assert.equal(v.canSubscribe('#').allowed, false, '# overlaps the rule but is not inside a readable filter')
  })

  test('rule applies by username, client (prefix), remote; a rule naming none applies to all', () => {
    const p = acl([
      { username: 'alice', filters: { 'alice/#': 3 } },
      { client: 'cam-*', filters: { 'cams/#': 2 } },
      { remote: '10.0.0.0/8', filters: { 'internal/#': 3 } },
      { filters: { 'public/#': 1 } }
    ])
    assert.equal(p.aclFor(alice).canPublish('alice/x').allowed, true)
    const cam = p.aclFor(who({ clientId: 'cam-7' }))
    assert.equal(cam.canPublish('cams/7').allowed, true)
    assert.equal(cam.canPublish('public/x').allowed, false, 'falls through to the catch-all rule: read only')
    const internal = p.aclFor(who({ remote: { address: '10.1.2.3', port: 4 } }))
    assert.equal(internal.canPublish('internal/a').allowed, true)
    assert.equal(p.aclFor(who()).canPublish('internal/a').allowed, true, 'no filter matches anywhere: allowed')
    assert.equal(p.aclFor(who()).canSubscribe('public/#').allowed, true)
    assert.equal(p.aclFor(who()).canPublish('public/x').allowed, false)
  })

  test('first applicable rule with a matching filter decides; otherwise the next is tried', () => {
    const p = acl([
      { username: 'alice', filters: { 'x/#': 2 } },
      { username: 'alice', filters: { 'x/#': 1, 'y/#': 0 } },
      { filters: { 'z/#': 0 } }
    ])
    const v = p.aclFor(alice)
    assert.deepEqual(v.canPublish('x/1'), { allowed: true, rule: 0 })
    assert.deepEqual(v.canSubscribe('x/1'), { allowed: false, rule: 0 }, 'rule 0 covers x/1 without read')
    assert.deepEqual(v.canPublish('y/1'), { allowed: false, rule: 1 })
    assert.deepEqual(v.canPublish('z/1'), { allowed: false, rule: 2 })
    assert.deepEqual(v.canPublish('q/1'), { allowed: true, rule: undefined })
  })

  test('a rule without filters (or with an empty map) allows everything and stops the search', () => {
    const p = acl([{ username: 'admin' }, { username: 'ops', filters: {} }, { filters: { '#': 0 } }])
    assert.equal(p.unrestricted, false)
    assert.equal(p.aclFor(who({ username: 'admin' })).canPublish('any/thing').allowed, true)
    assert.equal(p.aclFor(who({ username: 'ops' })).canSubscribe('#').allowed, true)
    assert.equal(p.aclFor(who({ username: 'guest' })).canPublish('any/thing').allowed, false)
    assert.equal(acl([{ username: 'admin' }]).unrestricted, true)
  })

  test('most specific filter wins, independent of map order', () => {
    for (const filters of [{ 'a/#': 3, 'a/secret/#': 0 }, { 'a/secret/#': 0, 'a/#': 3 }]) {
      const v = acl([{ filters }]).aclFor(alice)
      assert.equal(v.canPublish('a/x').allowed, true)
      assert.equal(v.canPublish('a/secret/x').allowed, false)
      assert.equal(v.canRead('a/secret/x'), false)
      assert.equal(v.canRead('a/secret'), false, 'a/secret/# also covers a/secret')
      assert.equal(v.canRead('a/public'), true)
      assert.equal(v.canSubscribe('a/secret/#').allowed, false)
      assert.equal(v.canSubscribe('a/secret/x').allowed, false)
      assert.equal(v.canSubscribe('a/#').allowed, true, 'allowed; the carve-out is enforced per message (canRead)')
    }
    const v = acl([{ filters: { 'a/+/c': 0, 'a/b/#': 3, '+/b/c': 3 } }]).aclFor(alice)
    assert.equal(v.canPublish('a/b/c').allowed, true, 'a/b/# pins level 1 literally, beating a/+/c')
    assert.equal(v.canPublish('a/x/c').allowed, false)
    const w = acl([{ filters: { 'a/+': 1, 'a/+/#': 3 } }]).aclFor(alice)
    assert.equal(w.canPublish('a/x').allowed, false, 'a/+ is more specific than a/+/# for a/x')
    assert.equal(w.canPublish('a/x/y').allowed, true)
  })

  test('subscription must lie inside a readable filter of the deciding rule', () => {
    const v = acl([{ filters: { 'a/b/#': 1 } }]).aclFor(alice)
    assert.equal(v.canSubscribe('a/b/#').allowed, true)
    assert.equal(v.canSubscribe('a/b').allowed, true)
    assert.equal(v.canSubscribe('a/b/+/d').allowed, true)
    assert.equal(v.canSubscribe('a/#').allowed, false, 'wider than the grant')
    assert.equal(v.canSubscribe('a/+/c').allowed, false)
    assert.equal(v.canSubscribe('#').allowed, false)
    assert.equal(v.canSubscribe('c/d').allowed, true, 'no overlap with the rule: no applicable rule, allowed')
  })

  test('+ filters', () => {
    const v = acl([{ filters: { 'home/+/temp': 3, 'home/#': 1 } }]).aclFor(alice)
    assert.equal(v.canPublish('home/kitchen/temp').allowed, true)
    assert.equal(v.canPublish('home/kitchen/light').allowed, false)
    assert.equal(v.canSubscribe('home/+/temp').allowed, true)
    assert.equal(v.canSubscribe('home/#').allowed, true)
  })

  test('$share/group/filter is checked as filter', () => {
    const v = acl([{ filters: { 'jobs/#': 1, 'secret/#': 0 } }]).aclFor(alice)
    assert.equal(v.canSubscribe('$share/workers/jobs/a').allowed, true)
    assert.equal(v.canSubscribe('$share/workers/secret/a').allowed, false)
    assert.equal(v.canSubscribe('$share/workers/#').allowed, false)
  })

  test('$ topics need a filter naming their prefix: a deny-by-default ACL refuses them, # and +/... grant none', () => {
    const v = acl([{ filters: { '#': 0 } }]).aclFor(alice)
    assert.equal(v.canPublish('x').allowed, false)
    assert.equal(v.canSubscribe('$SYS/#').allowed, false, '# does not reach $SYS, and no rule granting it means refused')
    assert.equal(v.canSubscribe('$foo/#').allowed, false)
    const open = acl([{ filters: { '#': 3, '+/x': 3 } }]).aclFor(alice)
    assert.equal(open.canSubscribe('$foo/#').allowed, false, '# grants no $ topic')
    assert.equal(open.canSubscribe('$foo/x').allowed, false, '+/x grants no $ topic')
    assert.equal(open.canSubscribe('$share/g/a/b').allowed, true, 'a shared subscription is judged by its filter')
    assert.equal(open.canSubscribe('$share/g/$SYS/#').allowed, false, 'also when that filter is a $ one')
    assert.equal(acl([{ username: 'alice' }]).aclFor(alice).canSubscribe('$SYS/#').allowed, false, 'a rule without filters grants no $ topic')
    const sys = acl([{ username: 'alice', filters: { '$SYS/#': 1 } }, { filters: { '#': 0 } }])
    assert.equal(sys.aclFor(alice).canSubscribe('$SYS/#').allowed, true, 'an explicit grant does')
    assert.equal(sys.aclFor(alice).canSubscribe('$SYS/+/new/clients').allowed, true)
    assert.equal(sys.aclFor(who({ username: 'bob' })).canSubscribe('$SYS/#').allowed, false, 'for whom it is granted only')
  })

  test('with no ACL at all, $ subscriptions are refused and everything else allowed', () => {
    const v = acl([]).aclFor(alice)
    assert.equal(v.canSubscribe('#').allowed, true)
    assert.equal(v.canSubscribe('$SYS/#').allowed, false)
    assert.equal(v.canSubscribe('$SYS/broker/new/clients').allowed, false)
  })

  test('clients with the same applicable rules share one view', () => {
    const p = acl([{ username: 'alice', filters: { 'a/#': 3 } }, { filters: { 'b/#': 3 } }])
    assert.equal(p.aclFor(who({ username: 'alice', clientId: 'x' })), p.aclFor(who({ username: 'alice', clientId: 'y' })))
    assert.notEqual(p.aclFor(who({ username: 'alice' })), p.aclFor(who({ username: 'bob' })))
  })

  test('the docs/security.md production ACL example behaves as the guide says', () => {
    const p = acl([
      { username: 'dev-0001', filters: { 'telemetry/dev-0001': 2, 'cmd/dev-0001': 1, '#': 0 } },
      { username: 'dev-0002', filters: { 'telemetry/dev-0002': 2, 'cmd/dev-0002': 1, '#': 0 } },
      { username: 'backend', filters: { 'telemetry/+': 1, 'cmd/+': 2, '#': 0 } },
      { client: 'svc-*', filters: { 'telemetry/#': 1, '#': 0 } },
      { filters: { '#': 0 } }
    ])
    const dev = p.aclFor(who({ username: 'dev-0001' }))
    assert.equal(dev.canSubscribe('cmd/dev-0001').allowed, true)
    assert.equal(dev.canSubscribe('cmd/#').allowed, false)
    assert.equal(dev.canPublish('telemetry/dev-0001').allowed, true)
    assert.equal(dev.canPublish('telemetry/dev-0002').allowed, false)
    const backend = p.aclFor(who({ username: 'backend' }))
    assert.equal(backend.canSubscribe('telemetry/+').allowed, true)
    assert.equal(backend.canSubscribe('telemetry/#').allowed, false, 'telemetry/+ does not cover deeper levels')
    assert.equal(backend.canPublish('cmd/dev-0002').allowed, true)
    assert.equal(p.aclFor(who({ clientId: 'svc-dash' })).canSubscribe('telemetry/#').allowed, true)
    assert.equal(p.aclFor(who({ username: 'stranger' })).canPublish('x').allowed, false)
  })

  test('canRead memo stays bounded and correct', () => {
    const v = acl([{ filters: { 'a/#': 1 } }]).aclFor(alice)
    for (let i = 0; i < 3000; i++) assert.equal(v.canRead(`a/${i}`), true)
    assert.equal(v.canRead('b/1'), true)
    assert.equal(v.canRead('a/x'), true)
    const d = acl([{ filters: { 'a/#': 2 } }]).aclFor(alice)
    assert.equal(d.canRead('a/1'), false)
    assert.equal(d.canRead('a/1'), false, 'memoised answer is the same')
  })
})

describe('cached password verifier', () => {
  test('caches successful hash checks only, bounded', async () => {
    const stored = hashPassword('pw', 10)
    const verify = cachedPasswordVerifier({ maxEntries: 2 })
    assert.equal(await verify(Buffer.from('nope'), stored), false)
    assert.equal(verify.size, 0, 'failures are not remembered')
    assert.equal(await verify(Buffer.from('pw'), stored), true)
    assert.equal(verify.size, 1)
    assert.equal(await verify(Buffer.from('pw'), stored), true)
    assert.equal(await verify(Buffer.from('pw'), hashPassword('pw', 10)), true)
    assert.equal(await verify(Buffer.from('pw'), hashPassword('pw', 10)), true)
    assert.equal(verify.size, 2, 'bounded by maxEntries')
    assert.equal(await verify(Buffer.from('pw'), stored), true, 'an evicted entry is verified again')
  })

  test('concurrent checks of one pair share a single scrypt', async () => {
    const stored = hashPassword('pw', 10)
    let scrypts = 0
    const verify = cachedPasswordVerifier({ verify: async (a, b) => { scrypts++; return await verifyPassword(a, b) } })
    const results = await Promise.all(Array.from({ length: 20 }, async () => await verify(Buffer.from('pw'), stored)))
    assert.deepEqual(new Set(results), new Set([true]))
    assert.equal(scrypts, 1)
    assert.equal(await verify(Buffer.from('pw'), stored), true)
    assert.equal(scrypts, 1, 'later checks hit the cache')
    assert.equal(await verify(Buffer.from('bad'), stored), false)
    assert.equal(await verify(Buffer.from('bad'), stored), false)
    assert.equal(scrypts, 3, 'failures are verified every time')
  })

  test('plain passwords compare directly', async () => {
    const verify = cachedPasswordVerifier()
    assert.equal(await verify(Buffer.from('a'), 'a'), true)
    assert.equal(await verify(Buffer.from('a'), 'b'), false)
    assert.equal(verify.size, 0)
  })
})
