// Authentication and ACL rule evaluation: rules in, decisions out. Nothing here
// knows about aedes or sockets (authorize.ts adapts this to aedes' hooks), so
// every rule kind can be tested exhaustively without a broker.
//
// Semantics follow the seed's `mqtt.auth` / `mqtt.acl` (mochi-mqtt's auth
// ledger), made precise where the seed was silent; the README (Authentication and access control) is the
// operator-facing description of the same rules.
import { BlockList, isIP } from 'node:net'
import type { AuthRuleConfig, AclRuleConfig } from '../../config/index.js'
import { levelsMatch, stripSharePrefix } from '../../topic-filter.js'
import { decoyPassword, protectPassword } from '../../security/password.js'

/** Who a client is, as far as rules can tell. */
export interface ClientIdentity {
  clientId: string
  /** Absent when the CONNECT carried no user name; rules see it as ''. */
  username?: string | undefined
  /** Peer address of the connection; absent when unknown (rules naming `remote` then never match). */
  remote?: RemoteAddress | undefined
}

export interface RemoteAddress {
  address: string
  port?: number | undefined
}

/** Checks a presented password against a rule's stored one (plain or scrypt hash). */
export type PasswordCheck = (presented: Buffer, stored: string) => Promise<boolean>

export interface AuthDecision {
  allowed: boolean
  /** Index of the deciding rule in `mqtt.auth`; undefined when no rule matched or there are none. */
  rule: number | undefined
}

/** ACL permission bits, as in the config: 0 deny, 1 read, 2 write, 3 both. */
export const READ = 1
export const WRITE = 2

type Decision = 'allow' | 'deny' | 'no-match'

// ---------------------------------------------------------------------------
// Field matchers

type Matcher = (value: string) => boolean

/** Exact match, or prefix match when the pattern ends with `*` (which then matches any suffix, also none). */
function textMatcher (pattern: string): Matcher {
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1)
    return (value) => value.startsWith(prefix)
  }
  return (value) => value === pattern
}

/**
 * `::ffff:10.0.0.1` -> `10.0.0.1`: a dual-stack listener reports IPv4 peers in
 * this form, and operators write their rules in plain IPv4.
 */
export function normaliseAddress (address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  return m !== null ? m[1]! : address
}

function family (address: string): 'ipv4' | 'ipv6' | undefined {
  const f = isIP(address)
  return f === 4 ? 'ipv4' : f === 6 ? 'ipv6' : undefined
}

type RemoteMatcher = (remote: RemoteAddress | undefined) => boolean

/**
 * The `remote` field: `ip` (any port), `ip:port` / `[v6]:port` (that port
 * only), CIDR (`10.0.0.0/8`, `fd00::/8`), or a text prefix ending in `*`
 * (matched against both `ip` and `ip:port`). IPv4-mapped IPv6 peers match IPv4
 * rules and the other way round (node's BlockList compares them as equal).
 */
export function remoteMatcher (pattern: string): RemoteMatcher {
  if (pattern.endsWith('*')) {
    const prefix = normaliseAddress(pattern.slice(0, -1))
    return (remote) => {
      if (remote === undefined) return false
      const address = normaliseAddress(remote.address)
      return address.startsWith(prefix) || (remote.port !== undefined && hostPort(address, remote.port).startsWith(prefix))
    }
  }
  const slash = pattern.indexOf('/')
  if (slash !== -1) {
    const base = pattern.slice(0, slash)
    const bits = Number(pattern.slice(slash + 1))
    const fam = family(base)
    if (fam === undefined) return () => false
    const list = new BlockList()
    list.addSubnet(base, bits, fam)
    return (remote) => remote !== undefined && inList(list, remote.address)
  }
  const { host, port } = splitHostPort(pattern)
  const fam = family(host)
  if (fam === undefined) {
    // A host name (config validation lets `host:port` through): peers are
    // known by address only, so compare the text as given.
    return (remote) => remote !== undefined && remote.address === host && (port === undefined || remote.port === port)
  }
  const list = new BlockList()
  list.addAddress(host, fam)
  return (remote) => remote !== undefined && inList(list, remote.address) && (port === undefined || remote.port === port)
}

function inList (list: BlockList, address: string): boolean {
  const fam = family(address)
  return fam !== undefined && list.check(address, fam)
}

function hostPort (address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}

/** `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`. */
function splitHostPort (value: string): { host: string, port: number | undefined } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value)
  if (bracketed !== null) return { host: bracketed[1]!, port: bracketed[2] === undefined ? undefined : Number(bracketed[2]) }
  if (isIP(value) !== 0) return { host: value, port: undefined }
  const colon = value.lastIndexOf(':')
  if (colon !== -1 && /^\d+$/.test(value.slice(colon + 1))) return { host: value.slice(0, colon), port: Number(value.slice(colon + 1)) }
  return { host: value, port: undefined }
}

interface IdentityMatchers {
  username?: Matcher
  client?: Matcher
  remote?: RemoteMatcher
}

function identityMatchers (rule: { username?: string | undefined, client?: string | undefined, remote?: string | undefined }): IdentityMatchers {
  const m: IdentityMatchers = {}
  if (rule.username !== undefined) m.username = textMatcher(rule.username)
  if (rule.client !== undefined) m.client = textMatcher(rule.client)
  if (rule.remote !== undefined) m.remote = remoteMatcher(rule.remote)
  return m
}

/** Every GIVEN field matches; a rule that gives none matches everyone. */
function identityMatches (m: IdentityMatchers, who: ClientIdentity): boolean {
  if (m.username !== undefined && !m.username(who.username ?? '')) return false
  if (m.client !== undefined && !m.client(who.clientId)) return false
  if (m.remote !== undefined && !m.remote(who.remote)) return false
  return true
}

// ---------------------------------------------------------------------------
// Topic filters

const isWildcard = (level: string | undefined): boolean => level === '+' || level === '#'

/**
 * [MQTT-4.7.2-1] A filter starting with a wildcard does not match topics
 * starting with `$`; so `#: 3` grants nothing under `$SYS`.
 */
function dollarBlocked (filter: string[], other: string[]): boolean {
  return isWildcard(filter[0]) && other[0] !== undefined && other[0].startsWith('$')
}

/** Is every topic matched by subscription `s` also matched by filter `f`? */
export function filterCovers (f: string[], s: string[]): boolean {
  if (dollarBlocked(f, s)) return false
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= s.length) return false
    if (s[i] === '#') return false // s reaches deeper than f allows at this level
    if (s[i] === '+' && f[i] !== '+') return false
    if (f[i] !== '+' && f[i] !== s[i]) return false
  }
  return f.length === s.length
}

/** Is there at least one topic matched by both filters? */
export function filtersOverlap (f: string[], s: string[]): boolean {
  if (dollarBlocked(f, s) || dollarBlocked(s, f)) return false
  const n = Math.max(f.length, s.length)
  for (let i = 0; i < n; i++) {
    const a = f[i]
    const b = s[i]
    if (a === '#' || b === '#') return true
    if (a === undefined || b === undefined) return false
    if (a !== '+' && b !== '+' && a !== b) return false
  }
  return true
}

/**
 * Orders filters from most to least specific. Levels are compared left to
 * right; at the first level where they differ, a literal beats `+`, `+` beats
 * the end of the filter, and the end beats `#` (so `a/+` beats `a/+/#` for
 * `a/x`). Two filters that both match one topic differ in kind somewhere
 * unless they are the same filter, so this is a total order on them: the
 * outcome never depends on the order of keys in the YAML map. It is the MQTT
 * analogue of a longest-prefix route: `a/secret/#: 0` carves a hole into
 * `a/#: 3`, whichever is written first.
 */
export function compareSpecificity (a: string[], b: string[]): number {
  const rank = (level: string | undefined): number => level === undefined ? 1 : level === '#' ? 0 : level === '+' ? 2 : 3
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = rank(b[i]) - rank(a[i])
    if (d !== 0) return d
  }
  return 0
}

// ---------------------------------------------------------------------------
// ACL

interface CompiledFilter {
  filter: string
  levels: string[]
  access: number
}

interface CompiledAclRule {
  index: number
  who: IdentityMatchers
  /** Sorted most specific first; undefined: the rule allows everything. */
  filters: CompiledFilter[] | undefined
}

function compileAclRule (rule: AclRuleConfig, index: number): CompiledAclRule {
  const entries = Object.entries(rule.filters ?? {})
  // An empty map is treated like no map (seed/mochi: no filters = allow all).
  const filters = entries.length === 0
    ? undefined
    : entries
      .map(([filter, access]) => ({ filter, levels: filter.split('/'), access }))
      .sort((a, b) => compareSpecificity(a.levels, b.levels))
  return { index, who: identityMatchers(rule), filters }
}

/** Publish / delivery of one topic name under one rule: the most specific matching filter decides. */
function decideTopic (rule: CompiledAclRule, topic: string[], need: number): Decision {
  if (rule.filters === undefined) return 'allow'
  for (const f of rule.filters) {
    if (levelsMatch(f.levels, topic)) return (f.access & need) !== 0 ? 'allow' : 'deny'
  }
  return 'no-match'
}

/**
 * A subscription under one rule. A rule whose filters do not even overlap the
 * subscription says nothing about it (next rule). Otherwise the subscription
 * must lie wholly inside a readable filter: the most specific filter covering
 * it decides, and if none covers it (`a/#` against a grant of `a/b/#` only) it
 * is refused rather than granted beyond the rule. Narrower deny filters inside
 * an allowed subscription (`a/#: 3` with `a/secret/#: 0`, subscribing `a/#`)
 * are enforced per message at delivery (AclView.canRead).
 */
function decideSubscription (rule: CompiledAclRule, filter: string[]): Decision {
  // A rule without filters grants everything except `$` topics, which need a
  // filter naming their prefix (isReservedFilter).
  if (rule.filters === undefined) return isReservedFilter(filter) ? 'no-match' : 'allow'
  let overlaps = false
  for (const f of rule.filters) {
    if (filterCovers(f.levels, filter)) return (f.access & READ) !== 0 ? 'allow' : 'deny'
    if (!overlaps && filtersOverlap(f.levels, filter)) overlaps = true
  }
  return overlaps ? 'deny' : 'no-match'
}

const ALLOWED_BY_DEFAULT = Object.freeze({ allowed: true, rule: undefined })
const REFUSED_BY_DEFAULT = Object.freeze({ allowed: false, rule: undefined })

/**
 * Topics starting with `$` are the server's (MQTT 5 §4.7.2): no client may
 * publish to one, and a subscription to one (`$SYS/...`, `$foo/#`; a shared
 * subscription `$share/g/f` is judged by `f`) is allowed only by an ACL
 * filter whose first level names that prefix: `#`, `+/...` and rules without
 * filters do not grant them, and with no ACL at all they are refused.
 */
export function isReservedTopic (topic: string): boolean {
  return topic.charCodeAt(0) === 36 // '$'
}

function isReservedFilter (levels: string[]): boolean {
  return levels[0] !== undefined && levels[0].charCodeAt(0) === 36
}

/** The ACL as it applies to one client: the rules whose username/client/remote match it, in order. */
export class AclView {
  readonly rules: readonly CompiledAclRule[]
  // Delivery checks run for every message a client receives; a small
  // per-view memo keeps that to one Map lookup for the hot topics.
  private readonly readMemo = new Map<string, boolean>()
  private readonly memoLimit: number

  constructor (rules: readonly CompiledAclRule[], memoLimit = 1024) {
    this.rules = rules
    this.memoLimit = memoLimit
  }

  /** Index of the first rule that decided, or undefined when none did (allowed). */
  private decide (judge: (rule: CompiledAclRule) => Decision): { allowed: boolean, rule: number | undefined } {
    for (const rule of this.rules) {
      const d = judge(rule)
      if (d !== 'no-match') return { allowed: d === 'allow', rule: rule.index }
    }
    return { allowed: true, rule: undefined }
  }

  canPublish (topic: string): { allowed: boolean, rule: number | undefined } {
    // The publish hot path: no applicable rule means allowed, without splitting the topic.
    if (this.rules.length === 0) return ALLOWED_BY_DEFAULT
    const levels = topic.split('/')
    return this.decide((r) => decideTopic(r, levels, WRITE))
  }

  canSubscribe (filter: string): { allowed: boolean, rule: number | undefined } {
    const levels = stripSharePrefix(filter).split('/')
    const decision = this.decide((r) => decideSubscription(r, levels))
    // No rule said anything about a `$` filter: refused, not allowed.
    if (decision.rule === undefined && isReservedFilter(levels)) return REFUSED_BY_DEFAULT
    return decision
  }

  /** May a message on `topic` be delivered to this client? */
  canRead (topic: string): boolean {
    if (this.rules.length === 0) return true
    const memo = this.readMemo.get(topic)
    if (memo !== undefined) return memo
    const levels = topic.split('/')
    const allowed = this.decide((r) => decideTopic(r, levels, READ)).allowed
    // Bounded by clearing: cheaper than LRU bookkeeping, and refilling costs
    // only the rule evaluation that the memo saves.
    if (this.readMemo.size >= this.memoLimit) this.readMemo.clear()
    this.readMemo.set(topic, allowed)
    return allowed
  }
}

// ---------------------------------------------------------------------------
// The policy: both rule lists compiled once at start

interface CompiledAuthRule {
  index: number
  who: IdentityMatchers
  password: string | undefined
  allow: boolean
}

export class AccessPolicy {
  private readonly authRules: CompiledAuthRule[]
  private readonly aclRules: CompiledAclRule[]
  // Clients whose identity selects the same rules share one view (and its memo).
  private readonly views = new Map<string, AclView>()
  private readonly maxViews: number
  /** Checked when no rule's password was: the same work for an unknown user as for a wrong password. */
  private readonly decoy: string

  constructor (config: { auth: readonly AuthRuleConfig[], acl: readonly AclRuleConfig[] }, options: { maxViews?: number } = {}) {
    // Plain passwords are kept only as protected digests (password.ts), so
    // this long-lived object holds no password a heap snapshot could show.
    this.authRules = config.auth.map((rule, index) => {
      const password = rule.password
      return { index, who: identityMatchers(rule), password: password === undefined ? undefined : protectPassword(password), allow: rule.allow }
    })
    this.decoy = decoyPassword(this.authRules.find((r) => r.password !== undefined)?.password)
    this.aclRules = config.acl.map(compileAclRule)
    this.maxViews = options.maxViews ?? 4096
  }

  /** No auth rules: every client may connect (the seed's default). */
  get anonymous (): boolean {
    return this.authRules.length === 0
  }

  /** No ACL rule restricts anything: hooks may skip per-message checks. */
  get unrestricted (): boolean {
    return this.aclRules.every((r) => r.filters === undefined)
  }

  /**
   * The first rule whose every given field matches decides; no match refuses.
   * Passwords are checked only for rules whose other fields already match, in
   * rule order, so a hash is verified at most once per candidate rule.
   */
  async authenticate (who: ClientIdentity, password: Buffer | undefined, check: PasswordCheck): Promise<AuthDecision> {
    if (this.authRules.length === 0) return { allowed: true, rule: undefined }
    let checked = false
    for (const rule of this.authRules) {
      if (!identityMatches(rule.who, who)) continue
      // A rule naming a password needs one; an absent password is the empty one.
      if (rule.password !== undefined) {
        checked = true
        if (!(await check(password ?? Buffer.alloc(0), rule.password))) continue
      }
      return { allowed: rule.allow, rule: rule.index }
    }
    // Refused without any password checked (an unknown user name): check one
    // that never matches, so the answer takes as long as for a known user
    // with a wrong password and does not tell which user names exist.
    if (!checked) await check(password ?? Buffer.alloc(0), this.decoy)
    return { allowed: false, rule: undefined }
  }

  /** The ACL rules that apply to this client, in config order. */
  aclFor (who: ClientIdentity): AclView {
    const applicable = this.aclRules.filter((r) => identityMatches(r.who, who))
    const key = applicable.map((r) => r.index).join(',')
    let view = this.views.get(key)
    if (view === undefined) {
      if (this.views.size >= this.maxViews) this.views.clear()
      view = new AclView(applicable)
      this.views.set(key, view)
    }
    return view
  }
}
