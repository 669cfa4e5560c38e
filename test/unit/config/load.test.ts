import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir, hostname } from 'node:os'
import { join } from 'node:path'
import { loadConfig, maskSecrets, leafKeys, effectiveConfigText } from '../../../src/config/index.js'
import { BrokerHaError } from '../../../src/errors.js'

function withFile (text: string, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-config-'))
  try {
    const path = join(dir, 'config.yaml')
    writeFileSync(path, text)
    fn(path)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function configError (fn: () => unknown): BrokerHaError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof BrokerHaError, `expected BrokerHaError, got ${String(err)}`)
    return err
  }
  assert.fail('expected a config error')
}

test('no file anywhere: the embedded defaults (seed defaults: 1883, probe_interval 500)', () => {
  const { config, source } = loadConfig({ searchPaths: ['/nonexistent/config.yaml'] })
  assert.equal(source, 'defaults')
  assert.equal(config.mqtt.port, 1883)
  assert.equal(config.api.port, 8080)
  assert.equal(config.cluster.port, 7946)
  assert.equal(config.cluster.expected_members, 3)
  assert.equal(config.cluster.config.probe_interval, 500)
  assert.deepEqual(config.discovery.subscription_size, { 'cluster:message_to': 1024 })
  assert.deepEqual(config.mqtt.subscription_size, { 'cluster:message_from': 1024, 'cluster:new_member': 10 })
  assert.deepEqual(config.mqtt.auth, [])
  assert.equal(config.discovery.domain, '')
  assert.equal(config.cluster.name, hostname(), 'cluster.name defaults to the host name')
})

test('the seed example config is accepted with its meaning', () => {
  withFile(`
api:
  user:
    admin: admin
discovery:
  domain: broker-headless.broker-ha.svc.cluster.local
  subscription_size:
    "cluster:message_to": 1024
mqtt:
  port: 1883
  subscription_size:
    "cluster:message_from": 1024
    "cluster:new_member": 10
  auth:
    - username: test
      password: test
      allow: true
    - client: someClientID
      allow: true
    - remote: 127.0.0.1
      allow: true
  acl:
    # 0 = deny, 1 = read only, 2 = write only, 3 = read and write
    - username: test
      filters:
        "a/#": 0
        "b/#": 2
cluster:
  expected_members: 3
  config:
    secret_key: "someSecretKey13$"
    tcp_timeout: 1000
    push_pull_interval: 15000
    probe_interval: 1000
    probe_timeout: 200
    gossip_interval: 100
    gossip_to_the_dead_time: 15000
    indirect_checks: 1
    retransmit_mult: 2
    suspicion_mult: 3
`, (path) => {
    const { config, source } = loadConfig({ path })
    assert.equal(source, path)
    assert.deepEqual(config.api.user, { admin: 'admin' })
    assert.equal(config.discovery.domain, 'broker-headless.broker-ha.svc.cluster.local')
    assert.equal(config.mqtt.auth.length, 3)
    assert.deepEqual(config.mqtt.acl[0], { username: 'test', filters: { 'a/#': 0, 'b/#': 2 } })
    assert.equal(config.cluster.config.secret_key, 'someSecretKey13$')
    assert.equal(config.cluster.config.probe_interval, 1000)
    assert.equal(config.cluster.config.suspicion_mult, 3)
    assert.equal(config.cluster.config.gossip_nodes, 3, 'keys the file omits keep their defaults')
  })
})

test('search order: explicit path, else the first existing search path', () => {
  withFile('mqtt:\n  port: 2001\n', (first) => {
    withFile('mqtt:\n  port: 2002\n', (second) => {
      assert.equal(loadConfig({ searchPaths: ['/nonexistent.yaml', first, second] }).config.mqtt.port, 2001)
      assert.equal(loadConfig({ path: second, searchPaths: [first] }).config.mqtt.port, 2002)
    })
  })
})

test('an empty file means defaults', () => {
  withFile('', (path) => assert.equal(loadConfig({ path }).config.mqtt.port, 1883))
})

test('environment variables override file values and defaults, typed by the schema', () => {
  withFile('mqtt:\n  port: 2001\ncluster:\n  config:\n    probe_interval: 900\n', (path) => {
    const { config } = loadConfig({
      path,
      env: {
        BROKER_MQTT_PORT: '2999',
        BROKER_CLUSTER_CONFIG_PROBE_INTERVAL: '750',
        BROKER_LOG_LEVEL: 'debug',
        BROKER_MQTT_AUTH: '[{"username": "u", "password": "p", "allow": true}]',
        BROKER_API_USER: 'admin: secret',
        BROKER_DISCOVERY_SEEDS: '127.0.0.2:7946, 127.0.0.3',
        BROKER_MQTT_SUBSCRIPTION_SIZE: '{"cluster:message_from": 5}',
        PATH: '/usr/bin'
      }
    })
    assert.equal(config.mqtt.port, 2999)
    assert.equal(config.cluster.config.probe_interval, 750)
    assert.equal(config.log.level, 'debug')
    assert.deepEqual(config.mqtt.auth, [{ username: 'u', password: 'p', allow: true }])
    assert.deepEqual(config.api.user, { admin: 'secret' })
    assert.deepEqual(config.discovery.seeds, ['127.0.0.2:7946', '127.0.0.3'])
    assert.deepEqual(config.mqtt.subscription_size, { 'cluster:message_from': 5 })
  })
})

test('every key has a BROKER_ variable that sets it', () => {
  const keys = leafKeys()
  assert.ok(keys.length > 40)
  assert.equal(new Set(keys.map((k) => k.env)).size, keys.length, 'env names are unique')
  for (const key of keys) assert.match(key.env, /^BROKER_[A-Z0-9_]+$/)
  assert.ok(keys.some((k) => k.env === 'BROKER_CLUSTER_CONFIG_PROBE_INTERVAL'))
})

test('unknown BROKER_ variables are reported as warnings, not errors (Kubernetes service links)', () => {
  const { warnings } = loadConfig({ searchPaths: [], env: { BROKER_PORT: 'tcp://10.0.0.1:1883' } })
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!, /BROKER_PORT/)
})

test('a wrong type names the key and the file line', () => {
  withFile('api:\n  port: 8080\nmqtt:\n  port: "high"\n', (path) => {
    const err = configError(() => loadConfig({ path }))
    assert.equal(err.code, 'CONFIG_INVALID')
    assert.match(err.message, /mqtt\.port: must be integer/)
    assert.match(err.message, /line 4/)
  })
})

test('an unknown key names the key and its line', () => {
  withFile('mqtt:\n  port: 1883\n  prot: 1884\n', (path) => {
    const err = configError(() => loadConfig({ path }))
    assert.match(err.message, /mqtt\.prot: unknown key/)
    assert.match(err.message, /line 3/)
  })
})

test('an out-of-range value names the key and the bound', () => {
  withFile('cluster:\n  port: 70000\n', (path) => {
    const err = configError(() => loadConfig({ path }))
    assert.match(err.message, /cluster\.port: must be <= 65535/)
    assert.match(err.message, /line 2/)
  })
})

test('a bad entry deep in a list names its index', () => {
  withFile('mqtt:\n  auth:\n    - username: a\n      allow: true\n    - username: b\n      allow: "yes"\n', (path) => {
    const err = configError(() => loadConfig({ path }))
    assert.match(err.message, /mqtt\.auth\[1\]\.allow: must be boolean/)
    assert.match(err.message, /line 6/)
  })
})

test('a wrong enum value lists the allowed ones', () => {
  const err = configError(() => loadConfig({ searchPaths: [], env: { BROKER_LOG_LEVEL: 'loud' } }))
  assert.match(err.message, /log\.level: must be one of fatal, error, warn, info, debug, trace, silent/)
  assert.match(err.message, /environment variable BROKER_LOG_LEVEL/)
})

test('a bad environment value names the variable', () => {
  const err = configError(() => loadConfig({ searchPaths: [], env: { BROKER_MQTT_PORT: '18x3' } }))
  assert.match(err.message, /mqtt\.port: must be integer \(environment variable BROKER_MQTT_PORT\)/)
  const yamlErr = configError(() => loadConfig({ searchPaths: [], env: { BROKER_MQTT_AUTH: '[{' } }))
  assert.match(yamlErr.message, /BROKER_MQTT_AUTH is not valid JSON\/YAML/)
})

test('an unreadable file and broken YAML are reported with the path and line', () => {
  const missing = configError(() => loadConfig({ path: '/nonexistent/broker.yaml' }))
  assert.equal(missing.code, 'CONFIG_UNREADABLE')
  assert.match(missing.message, /cannot read \/nonexistent\/broker\.yaml: ENOENT/)
  withFile('mqtt:\n  port: 1883\n   bad: [\n', (path) => {
    const err = configError(() => loadConfig({ path }))
    assert.equal(err.code, 'CONFIG_UNREADABLE')
    assert.match(err.message, /line \d/)
  })
  withFile('- just\n- a list\n', (path) => {
    assert.match(configError(() => loadConfig({ path })).message, /top level must be a mapping/)
  })
})

test('rules a schema cannot express: key lengths, timing relations, addresses, filters, ports', () => {
  const cases: Array<[object, RegExp]> = [
    [{ cluster: { config: { secret_key: 'short' } } }, /cluster\.config\.secret_key: must be 16, 24 or 32 bytes long/],
    [{ cluster: { config: { secret_key: 'a'.repeat(16), secondary_keys: ['b'.repeat(20)] } } }, /secondary_keys\[0\]: must be 16, 24 or 32 bytes/],
    [{ cluster: { config: { secondary_keys: ['b'.repeat(16)] } } }, /secondary_keys: needs cluster\.config\.secret_key/],
    [{ cluster: { config: { probe_interval: 500, probe_timeout: 500 } } }, /probe_timeout: must be less than cluster\.config\.probe_interval/],
    [{ discovery: { formation_wait_min: 9000, formation_wait_max: 1000 } }, /formation_wait_min: must not exceed/],
    [{ discovery: { seeds: ['host:99999'] } }, /discovery\.seeds\[0\]: "host:99999" is not host or host:port/],
    [{ mqtt: { bind: 'not-an-ip' } }, /mqtt\.bind: "not-an-ip" is not an IP address/],
    [{ mqtt: { max_keepalive: 30, server_keep_alive: 60 } }, /mqtt\.server_keep_alive: must not exceed mqtt\.max_keepalive \(30\)/],
    [{ mqtt: { auth: [{ remote: '10.0.0.0/33', allow: true }] } }, /mqtt\.auth\[0\]\.remote: "10\.0\.0\.0\/33" is not a valid CIDR block/],
    [{ mqtt: { auth: [{ allow: true }] } }, /mqtt\.auth\[0\]: needs at least one of/],
    [{ mqtt: { auth: [{ username: 'a', password: 'scrypt$1$2', allow: true }] } }, /mqtt\.auth\[0\]\.password: bad password hash/],
    [{ mqtt: { acl: [{ username: 'a', filters: { 'a/#/b': 1 } }] } }, /mqtt\.acl\[0\]\.filters: "a\/#\/b": # must be a whole level and the last one/],
    [{ mqtt: { acl: [{ filters: { 'a/b': 4 } }] } }, /mqtt\.acl\[0\]\.filters\.a\/b: must be <= 3/],
    [{ api: { port: 1883 } }, /api\.port: port 1883 is already used by mqtt\.port/]
  ]
  for (const [object, pattern] of cases) {
    const err = configError(() => loadConfig({ object }))
    assert.equal(err.code, 'CONFIG_INVALID')
    assert.match(err.message, pattern)
  }
})

test('the loaded config is frozen: config flows one way', () => {
  const { config } = loadConfig({ object: {} })
  assert.ok(Object.isFrozen(config))
  assert.ok(Object.isFrozen(config.mqtt.subscription_size))
  assert.throws(() => { (config.mqtt as { port: number }).port = 1 })
})

test('maskSecrets hides passwords and keys but keeps names visible', () => {
  const { config } = loadConfig({
    object: {
      api: { user: { admin: 'hunter2' } },
      mqtt: { auth: [{ username: 'dev', password: 'p4ss', allow: true }] },
      cluster: { config: { secret_key: 'k'.repeat(32), secondary_keys: ['j'.repeat(16)] } }
    }
  })
  const masked = JSON.stringify(maskSecrets(config))
  for (const secret of ['hunter2', 'p4ss', 'k'.repeat(32), 'j'.repeat(16)]) assert.ok(!masked.includes(secret), `${secret} leaked`)
  assert.ok(masked.includes('"admin"'))
  assert.ok(masked.includes('"dev"'))
  assert.equal(config.api.user.admin, 'hunter2', 'the config itself is untouched')
})

test('every key says where its value came from; precedence is flag > env > file > default', () => {
  withFile('mqtt:\n  port: 1999\n  bind: 127.0.0.5\napi:\n  port: 8081\n', (path) => {
    const loaded = loadConfig({
      path,
      env: { BROKER_MQTT_PORT: '2000', BROKER_API_PORT: '8082', BROKER_LOG_LEVEL: 'warn' },
      flags: [{ key: 'mqtt.port', flag: '--port', value: 2001 }, { key: 'log.level', flag: '-v', value: 'debug' }]
    })
    assert.equal(loaded.config.mqtt.port, 2001, 'the flag wins over env and file')
    assert.equal(loaded.config.api.port, 8082, 'env wins over the file')
    assert.equal(loaded.config.mqtt.bind, '127.0.0.5')
    assert.equal(loaded.config.log.level, 'debug')
    assert.deepEqual(loaded.sources.get('mqtt.port'), { kind: 'flag', name: '--port' })
    assert.deepEqual(loaded.sources.get('log.level'), { kind: 'flag', name: '-v' })
    assert.deepEqual(loaded.sources.get('api.port'), { kind: 'env', name: 'BROKER_API_PORT' })
    assert.deepEqual(loaded.sources.get('mqtt.bind'), { kind: 'file', path, line: 3 })
    assert.deepEqual(loaded.sources.get('cluster.port'), { kind: 'default' })
    assert.equal(loaded.sources.size, leafKeys().length, 'every key has a source')

    const text = effectiveConfigText(loaded)
    assert.match(text, /^# effective config \(secrets masked\), from file .*config\.yaml; precedence: flag > env > file > default\n/)
    assert.match(text, /^ {2}port: 2001 # flag --port$/m)
    assert.match(text, /^ {2}port: 8082 # env BROKER_API_PORT$/m)
    assert.match(text, new RegExp(`^ {2}bind: 127\\.0\\.0\\.5 # file ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line 3$`, 'm'))
    assert.match(text, /^ {2}auth: \[\] # default$/m)
    assert.match(text, /^ {2}name: \S+ # default \(the host name\)$/m)
  })
})

test('a bad flag value is named by its flag', () => {
  const err = configError(() => loadConfig({ object: {}, flags: [{ key: 'mqtt.port', flag: '--port', value: 70000 }] }))
  assert.match(err.message, /mqtt\.port: must be <= 65535 \(flag --port\)/)
})
