// Reads the configuration once, at start, validated as a whole. Precedence,
// strongest first: command-line flags (serve -p, --bind, -v), BROKER_*
// environment variables, the YAML file, schema defaults. Every error names
// the key path and where the value came from (flag, file line or environment
// variable), and the loaded config says the same for every key.
import { readFileSync, existsSync } from 'node:fs'
import { hostname } from 'node:os'
import { isIP } from 'node:net'
import { Ajv, type ErrorObject } from 'ajv'
import { parseDocument, LineCounter, isMap, isNode, type Document } from 'yaml'
import { ConfigSchema, type Config } from './schema.js'
import { leafKeys, indexedKeys, type LeafKey } from './keys.js'
import { clusterKeyBytes } from './cluster-key.js'
import { BrokerHaError } from '../errors.js'
import { parsePasswordHash, isPasswordHash } from '../security/password.js'
import { sealSecrets } from './secrets.js'
import { filterProblem } from '../topic-filter.js'
import { listenerProblems } from './listeners.js'

/** Where the embedded defaults give way to a file, in this order (seed: /config/config.yaml). */
export const DEFAULT_CONFIG_PATHS = ['/config/config.yaml', './config.yaml']

export interface LoadOptions {
  /** Explicit --config path; it must exist. */
  path?: string
  /** The process environment (only BROKER_* variables are read). */
  env?: Record<string, string | undefined>
  /** Search these paths when no explicit path is given. */
  searchPaths?: string[]
  /** Use this value instead of reading a file (tests, embedding). */
  object?: unknown
  /** Values from command-line flags, over everything else. */
  flags?: FlagValue[]
}

/** A key set by a command-line flag (`serve --port 1884` sets mqtt.port). */
export interface FlagValue {
  /** Key path, `mqtt.port`. */
  key: string
  /** The flag as the operator wrote it, for messages: `--port`. */
  flag: string
  value: unknown
}

/** Where a key's value came from. */
export type ValueSource =
  | { kind: 'default' }
  | { kind: 'file', path: string, line: number | undefined }
  | { kind: 'env', name: string }
  | { kind: 'flag', name: string }

export interface LoadedConfig {
  config: Readonly<Config>
  /** The file that was read, or 'defaults'. */
  source: string
  /** Per settable key (leafKeys(), `mqtt.port`), where its value came from. */
  sources: ReadonlyMap<string, ValueSource>
  /** Things the operator should hear about but that do not stop start-up. */
  warnings: string[]
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true })
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' })
ajv.addKeyword({ keyword: 'indexedEnv', schemaType: 'boolean' })
const validate = ajv.compile<Config>(ConfigSchema)

export function loadConfig (options: LoadOptions = {}): LoadedConfig {
  const warnings: string[] = []
  const { text, source } = options.object !== undefined
    ? { text: JSON.stringify(options.object), source: 'object' }
    : readConfigText(options)
  const lines = new LineCounter()
  let doc: Document | undefined
  let raw: unknown = {}
  if (text !== undefined) {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
    if (doc.errors.length > 0) {
      const err = doc.errors[0]!
      const line = lines.linePos(err.pos[0]).line
      throw new BrokerHaError('CONFIG_UNREADABLE', `config error: ${source}${line === undefined ? '' : ` line ${line}`}: ${err.message.split('\n')[0]}`)
    }
    raw = doc.toJS() ?? {}
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new BrokerHaError('CONFIG_INVALID', `config error: ${source}: the top level must be a mapping of keys (api, mqtt, cluster, ...)`)
    }
  }

  const inFile = leafKeys().filter((k) => hasPath(raw, k.path))
  const overrides = new Map<string, ValueSource>()
  for (const [key, name] of applyEnv(raw as Record<string, unknown>, options.env ?? {}, warnings)) overrides.set(key, { kind: 'env', name })
  for (const { key, flag, value } of options.flags ?? []) {
    setPath(raw as Record<string, unknown>, key.split('.'), value)
    overrides.set(key, { kind: 'flag', name: flag })
  }
  const ctx: ErrorContext = { doc, lines, source, overrides }

  if (!validate(raw)) {
    const messages = (validate.errors ?? []).map((e) => describeError(e, ctx))
    throw new BrokerHaError('CONFIG_INVALID', `config error:\n  ${[...new Set(messages)].join('\n  ')}`, { key: keyPathOf(validate.errors?.[0]) })
  }
  const config = raw as Config
  checkSemantics(config, ctx)
  if (config.cluster.name === '') config.cluster.name = hostname()
  const sources = new Map<string, ValueSource>()
  for (const key of leafKeys()) sources.set(key.path.join('.'), { kind: 'default' })
  for (const key of inFile) sources.set(key.path.join('.'), { kind: 'file', path: source, line: keyLine(key.path, ctx) })
  for (const [key, from] of overrides) sources.set(key, from)
  sealSecrets(config)
  return { config: deepFreeze(config), source, sources, warnings }
}

function hasPath (value: unknown, path: string[]): boolean {
  let node = value
  for (const part of path) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.prototype.hasOwnProperty.call(node, part)) return false
    node = (node as Record<string, unknown>)[part]
  }
  return true
}

/** The file line where the key `path` is written, when there is one. */
function keyLine (path: Array<string | number>, ctx: ErrorContext): number | undefined {
  if (ctx.doc === undefined) return undefined
  const parent = path.length > 1 ? ctx.doc.getIn(path.slice(0, -1), true) : ctx.doc.contents
  if (!isMap(parent)) return undefined
  const pair = parent.items.find((item) => isNode(item.key) && String((item.key as { value?: unknown }).value) === String(path[path.length - 1]))
  const node = pair?.key
  return isNode(node) && node.range !== undefined && node.range !== null ? ctx.lines.linePos(node.range[0]).line : undefined
}

function readConfigText (options: LoadOptions): { text: string | undefined, source: string } {
  const candidates = options.path !== undefined ? [options.path] : (options.searchPaths ?? DEFAULT_CONFIG_PATHS)
  for (const path of candidates) {
    if (options.path === undefined && !existsSync(path)) continue
    try {
      return { text: readFileSync(path, 'utf8'), source: path }
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      throw new BrokerHaError('CONFIG_UNREADABLE', `config error: cannot read ${path}: ${reason}`, { cause: err })
    }
  }
  return { text: undefined, source: 'defaults' }
}

/** Applies BROKER_<PATH> variables; returns which key paths came from which variable. */
function applyEnv (target: Record<string, unknown>, env: Record<string, string | undefined>, warnings: string[]): Map<string, string> {
  const byEnv = new Map(leafKeys().map((k) => [k.env, k]))
  const fromEnv = new Map<string, string>()
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('BROKER_') || value === undefined) continue
    const key = byEnv.get(name)
    const indexed = key === undefined ? indexedEnv(name) : undefined
    if (indexed !== undefined) {
      // BROKER_MQTT_LISTENERS_1_PORT: one field of one list entry, over the file's entry or a new one.
      const { item, n } = indexed
      let list = getPath(target, item.list)
      if (!Array.isArray(list)) { list = []; setPath(target, item.list, list) }
      const entries = list as unknown[]
      while (entries.length <= n) entries.push({})
      if (typeof entries[n] !== 'object' || entries[n] === null) entries[n] = {}
      ;(entries[n] as Record<string, unknown>)[item.field] = parseEnvValue({ path: [...item.list, String(n), item.field], env: name, kind: item.kind, schema: item.schema }, value)
      fromEnv.set(item.list.join('.'), name)
      continue
    }
    if (key === undefined) {
      // Not an error: Kubernetes injects <SERVICE>_PORT style variables, and a
      // Service called "broker" would otherwise stop every pod from starting.
      warnings.push(`ignoring environment variable ${name}: no config key has that name`)
      continue
    }
    setPath(target, key.path, parseEnvValue(key, value))
    fromEnv.set(key.path.join('.'), name)
  }
  return fromEnv
}

/** BROKER_MQTT_LISTENERS_2_CLIENT_AUTH -> the listeners' client_auth field, entry 2. */
function indexedEnv (name: string): { item: ReturnType<typeof indexedKeys>[number], n: number } | undefined {
  for (const item of indexedKeys()) {
    if (!name.startsWith(item.envPrefix)) continue
    const m = /^(\d+)_(.+)$/.exec(name.slice(item.envPrefix.length))
    if (m !== null && m[2] === item.field.toUpperCase() && Number(m[1]) < 100) return { item, n: Number(m[1]) }
  }
  return undefined
}

function getPath (target: Record<string, unknown>, path: string[]): unknown {
  let node: unknown = target
  for (const part of path) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[part] : undefined
  return node
}

function parseEnvValue (key: LeafKey, value: string): unknown {
  switch (key.kind) {
    case 'string': return value
    case 'integer': return value.trim() !== '' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value
    case 'boolean': return value === 'true' ? true : value === 'false' ? false : value
    case 'string-list':
      // A plain comma-separated list is what people type in a manifest.
      if (!value.trim().startsWith('[')) return value.split(',').map((s) => s.trim()).filter((s) => s !== '')
      return parseStructured(key, value)
    default: return parseStructured(key, value)
  }
}

function parseStructured (key: LeafKey, value: string): unknown {
  const doc = parseDocument(value)
  if (doc.errors.length > 0) {
    throw new BrokerHaError('CONFIG_INVALID', `config error: ${key.path.join('.')}: environment variable ${key.env} is not valid JSON/YAML: ${doc.errors[0]!.message.split('\n')[0]}`, { key: key.path.join('.') })
  }
  return doc.toJS()
}

function setPath (target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target
  for (const part of path.slice(0, -1)) {
    const next = node[part]
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {}
    node = node[part] as Record<string, unknown>
  }
  node[path[path.length - 1]!] = value
}

interface ErrorContext {
  doc: Document | undefined
  lines: LineCounter
  source: string
  /** Key path -> the environment variable or flag that set it. */
  overrides: Map<string, ValueSource>
}

/** ajv's instancePath (/mqtt/auth/0/allow) as a key path (mqtt.auth[0].allow). */
function segmentsOf (error: ErrorObject): string[] {
  const segments = error.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
  if (error.keyword === 'additionalProperties') segments.push(String(error.params.additionalProperty))
  if (error.keyword === 'required') segments.push(String(error.params.missingProperty))
  return segments
}

function formatPath (segments: string[]): string {
  return segments.reduce((acc, s) => (/^\d+$/.test(s) ? `${acc}[${s}]` : acc === '' ? s : `${acc}.${s}`), '')
}

function keyPathOf (error: ErrorObject | undefined): string | undefined {
  return error === undefined ? undefined : formatPath(segmentsOf(error))
}

function describeError (error: ErrorObject, ctx: ErrorContext): string {
  const segments = segmentsOf(error)
  const key = formatPath(segments)
  let what: string
  switch (error.keyword) {
    case 'additionalProperties': what = 'unknown key'; break
    case 'required': what = 'is required'; break
    case 'type': what = `must be ${String(error.params.type)}`; break
    case 'anyOf': what = 'has a value that is not allowed'; break
    case 'const': what = `must be ${JSON.stringify(error.params.allowedValue)}`; break
    default: what = error.message ?? error.keyword
  }
  if (error.keyword === 'anyOf' || error.keyword === 'const') {
    const options = allowedLiterals(segments)
    if (options !== undefined) what = `must be one of ${options.join(', ')}`
  }
  return `${key}: ${what}${whereFrom(segments, ctx)}`
}

/** For a union of literals (log.level), the values it allows. */
function allowedLiterals (segments: string[]): string[] | undefined {
  let node: Record<string, unknown> | undefined = ConfigSchema as unknown as Record<string, unknown>
  for (const s of segments) {
    const props = node?.properties as Record<string, Record<string, unknown>> | undefined
    node = props?.[s]
  }
  const anyOf = node?.anyOf as Array<{ const?: unknown }> | undefined
  return anyOf?.every((o) => o.const !== undefined) === true ? anyOf.map((o) => String(o.const)) : undefined
}

/** " (config.yaml line 3)", " (environment variable BROKER_MQTT_PORT)" or " (flag --port)". */
function whereFrom (segments: string[], ctx: ErrorContext): string {
  for (let n = segments.length; n > 0; n--) {
    const from = ctx.overrides.get(segments.slice(0, n).join('.'))
    if (from?.kind === 'env') return ` (environment variable ${from.name})`
    if (from?.kind === 'flag') return ` (flag ${from.name})`
  }
  if (ctx.doc === undefined) return ''
  for (let n = segments.length; n > 0; n--) {
    const path = segments.slice(0, n).map((s) => (/^\d+$/.test(s) ? Number(s) : s))
    // Point at the key itself when we can (unknown keys have no value node of interest).
    const line = keyLine(path, ctx)
    if (line !== undefined) return ` (${ctx.source} line ${line})`
    const node = ctx.doc.getIn(path, true)
    if (isNode(node) && node.range !== undefined && node.range !== null) {
      return ` (${ctx.source} line ${ctx.lines.linePos(node.range[0]).line})`
    }
  }
  return ` (${ctx.source})`
}

/** Rules a JSON schema cannot say: relations between keys and value formats. */
function checkSemantics (config: Config, ctx: ErrorContext): void {
  const problems: string[] = []
  const fail = (key: string, message: string): void => {
    problems.push(`${key}: ${message}${whereFrom(key.replace(/\[(\d+)\]/g, '.$1').split('.'), ctx)}`)
  }
  const cc = config.cluster.config
  for (const [i, key] of [cc.secret_key, ...cc.secondary_keys].entries()) {
    const name = i === 0 ? 'cluster.config.secret_key' : `cluster.config.secondary_keys[${i - 1}]`
    if (key === '' && i === 0) continue
    if (clusterKeyBytes(key) === undefined) {
      fail(name, `must be 16, 24 or 32 bytes long (AES-128/192/256), or base64 of 16, 24 or 32 bytes; got ${Buffer.byteLength(key, 'utf8')} bytes`)
    }
  }
  if (cc.secret_key === '' && cc.secondary_keys.length > 0) fail('cluster.config.secondary_keys', 'needs cluster.config.secret_key (the key that encrypts)')
  if (cc.probe_timeout >= cc.probe_interval) fail('cluster.config.probe_timeout', `must be less than cluster.config.probe_interval (${cc.probe_interval})`)
  const m = config.mqtt
  if (m.max_keepalive > 0 && m.server_keep_alive > m.max_keepalive) fail('mqtt.server_keep_alive', `must not exceed mqtt.max_keepalive (${m.max_keepalive})`)
  const d = config.discovery
  if (d.formation_wait_min > d.formation_wait_max) fail('discovery.formation_wait_min', `must not exceed discovery.formation_wait_max (${d.formation_wait_max})`)
  for (const [i, seed] of d.seeds.entries()) {
    if (parseHostPort(seed, config.cluster.port) === undefined) fail(`discovery.seeds[${i}]`, `"${seed}" is not host or host:port`)
  }
  if (d.dns_server !== '' && parseHostPort(d.dns_server, 53) === undefined) fail('discovery.dns_server', `"${d.dns_server}" is not host or host:port`)
  for (const [key, value] of [['mqtt.bind', config.mqtt.bind], ['api.bind', config.api.bind], ['cluster.bind', config.cluster.bind]] as const) {
    if (isIP(value) === 0 && value !== 'localhost') fail(key, `"${value}" is not an IP address`)
  }
  if (config.cluster.advertise !== '' && isIP(config.cluster.advertise) === 0) fail('cluster.advertise', `"${config.cluster.advertise}" is not an IP address`)
  for (const [i, rule] of config.mqtt.auth.entries()) {
    if (rule.password !== undefined && isPasswordHash(rule.password)) {
      const parsed = parsePasswordHash(rule.password)
      if (typeof parsed === 'string') fail(`mqtt.auth[${i}].password`, `bad password hash: ${parsed}`)
    }
    if (rule.username === undefined && rule.password === undefined && rule.client === undefined && rule.remote === undefined) {
      fail(`mqtt.auth[${i}]`, 'needs at least one of username, password, client, remote (a rule without them would match every client)')
    }
    if (rule.remote !== undefined && remoteProblem(rule.remote) !== undefined) fail(`mqtt.auth[${i}].remote`, remoteProblem(rule.remote)!)
  }
  for (const [i, rule] of config.mqtt.acl.entries()) {
    for (const filter of Object.keys(rule.filters ?? {})) {
      const problem = filterProblem(filter)
      if (problem !== undefined) fail(`mqtt.acl[${i}].filters`, `"${filter}": ${problem}`)
    }
    if (rule.remote !== undefined && remoteProblem(rule.remote) !== undefined) fail(`mqtt.acl[${i}].remote`, remoteProblem(rule.remote)!)
  }
  for (const [name, password] of Object.entries(config.api.user)) {
    if (isPasswordHash(password)) {
      const parsed = parsePasswordHash(password)
      if (typeof parsed === 'string') fail(`api.user.${name}`, `bad password hash: ${parsed}`)
    }
  }
  for (const [key, message] of listenerProblems(config)) fail(key, message)
  if (problems.length > 0) {
    throw new BrokerHaError('CONFIG_INVALID', `config error:\n  ${problems.join('\n  ')}`, { key: problems[0]!.split(':')[0] })
  }
}

/** host, host:port, [v6]:port; undefined when malformed. */
export function parseHostPort (value: string, defaultPort: number): { host: string, port: number } | undefined {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(value) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(value)
  if (m === null) return isIP(value) === 6 ? { host: value, port: defaultPort } : undefined
  const port = m[2] === undefined ? defaultPort : Number(m[2])
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined
  return { host: m[1]!, port }
}

function remoteProblem (remote: string): string | undefined {
  if (remote.endsWith('*')) return undefined
  const [addr, bits] = remote.split('/')
  if (bits !== undefined) {
    const family = isIP(addr!)
    const max = family === 4 ? 32 : 128
    if (family === 0 || !/^\d+$/.test(bits) || Number(bits) > max) return `"${remote}" is not a valid CIDR block`
    return undefined
  }
  if (isIP(remote) !== 0 || parseHostPort(remote, 1) !== undefined) return undefined
  return `"${remote}" is not an IP address, IP:port, CIDR block or prefix*`
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
