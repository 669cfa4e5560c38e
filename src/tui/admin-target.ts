// Which cluster the admin talks to, and as whom: from flags, environment
// variables and a small YAML file of named clusters, in that order of
// precedence. Pure: the command reads process.env and the file and passes
// their contents in.
//
//   # ~/.config/broker-ha/admin.yaml
//   default: prod
//   clusters:
//     prod: { url: "http://10.0.0.5:8080", user: "admin:secret" }
//     lab:  { url: "http://127.0.0.1:8080" }
import { parse } from 'yaml'
import { BrokerHaError } from '../errors.js'
import type { ClusterTarget } from './cluster-source.js'

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8080'

export interface TargetInputs {
  flags: { url?: string | undefined, user?: string | undefined, cluster?: string | undefined }
  /** BROKER_ADMIN_URL, BROKER_ADMIN_USER, BROKER_ADMIN_PASSWORD, BROKER_ADMIN_CLUSTER. */
  env: Record<string, string | undefined>
  /** The clusters file, when there is one. */
  file?: { path: string, text: string } | undefined
}

interface ClusterEntry { url: string, user?: string }
interface ClustersFile { default?: string, clusters: Record<string, ClusterEntry> }

export function parseClustersFile (path: string, text: string): ClustersFile {
  let doc: unknown
  try {
    doc = parse(text)
  } catch (err) {
    throw new BrokerHaError('CONFIG_UNREADABLE', `${path}: not valid YAML: ${(err as Error).message}`, { cause: err })
  }
  if (doc === null || doc === undefined) return { clusters: {} }
  const bad = (key: string, what: string): BrokerHaError => new BrokerHaError('CONFIG_INVALID', `${path}: ${key} ${what}`, { key })
  if (typeof doc !== 'object' || Array.isArray(doc)) throw bad('(top level)', 'must be a mapping with a "clusters" key')
  const { default: def, clusters = {}, ...rest } = doc as Record<string, unknown>
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw bad(unknown[0]!, 'is not a known key (known: default, clusters)')
  if (def !== undefined && typeof def !== 'string') throw bad('default', 'must be a cluster name')
  if (typeof clusters !== 'object' || clusters === null || Array.isArray(clusters)) throw bad('clusters', 'must map names to {url, user}')
  const out: Record<string, ClusterEntry> = {}
  for (const [name, entry] of Object.entries(clusters as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null) throw bad(`clusters.${name}`, 'must be {url, user}')
    const { url, user, ...extra } = entry as Record<string, unknown>
    if (typeof url !== 'string') throw bad(`clusters.${name}.url`, 'must be a URL string')
    if (user !== undefined && typeof user !== 'string') throw bad(`clusters.${name}.user`, 'must be "name:password"')
    if (Object.keys(extra).length > 0) throw bad(`clusters.${name}.${Object.keys(extra)[0]!}`, 'is not a known key (known: url, user)')
    out[name] = user === undefined ? { url } : { url, user }
  }
  if (def !== undefined && out[def] === undefined) throw bad('default', `names cluster "${def}", which is not in clusters`)
  return def === undefined ? { clusters: out } : { default: def, clusters: out }
}

function checkUrl (url: string, from: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new BrokerHaError('USAGE', `${from}: "${url}" is not a URL (expected e.g. http://127.0.0.1:8080)`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new BrokerHaError('USAGE', `${from}: "${url}" must be an http:// or https:// URL`)
  return url.replace(/\/+$/, '')
}

function splitUser (user: string, from: string, env: Record<string, string | undefined>): { username: string, password: string } {
  const colon = user.indexOf(':')
  if (colon === 0) throw new BrokerHaError('USAGE', `${from}: the user name is empty (expected name:password)`)
  // Without a colon the password comes from BROKER_ADMIN_PASSWORD, which keeps it out of `ps` and shell history.
  if (colon < 0) return { username: user, password: env.BROKER_ADMIN_PASSWORD ?? '' }
  return { username: user.slice(0, colon), password: user.slice(colon + 1) }
}

export function resolveTarget ({ flags, env, file }: TargetInputs): ClusterTarget & { cluster?: string } {
  const clusters = file === undefined ? undefined : parseClustersFile(file.path, file.text)
  const clusterName = flags.cluster ?? (flags.url === undefined ? env.BROKER_ADMIN_CLUSTER : undefined)
  let url: string
  let user: { value: string, from: string } | undefined
  let cluster: string | undefined
  if (flags.url !== undefined) {
    url = checkUrl(flags.url, '--url')
  } else if (clusterName !== undefined) {
    const entry = clusters?.clusters[clusterName]
    if (entry === undefined) {
      const known = Object.keys(clusters?.clusters ?? {})
      throw new BrokerHaError('USAGE', `cluster "${clusterName}" is not in ${file?.path ?? 'the clusters file (none found)'}${known.length > 0 ? `; known: ${known.join(', ')}` : ''}`)
    }
    url = checkUrl(entry.url, `${file!.path}: clusters.${clusterName}.url`)
    if (entry.user !== undefined) user = { value: entry.user, from: `${file!.path}: clusters.${clusterName}.user` }
    cluster = clusterName
  } else if (env.BROKER_ADMIN_URL !== undefined && env.BROKER_ADMIN_URL !== '') {
    url = checkUrl(env.BROKER_ADMIN_URL, 'BROKER_ADMIN_URL')
  } else if (clusters?.default !== undefined) {
    const entry = clusters.clusters[clusters.default]!
    url = checkUrl(entry.url, `${file!.path}: clusters.${clusters.default}.url`)
    if (entry.user !== undefined) user = { value: entry.user, from: `${file!.path}: clusters.${clusters.default}.user` }
    cluster = clusters.default
  } else {
    url = DEFAULT_ADMIN_URL
  }
  if (flags.user !== undefined) user = { value: flags.user, from: '--user' }
  else if (env.BROKER_ADMIN_USER !== undefined && env.BROKER_ADMIN_USER !== '') user = { value: env.BROKER_ADMIN_USER, from: 'BROKER_ADMIN_USER' }
  const credentials = user === undefined ? {} : splitUser(user.value, user.from, env)
  return { url, ...credentials, ...(cluster === undefined ? {} : { cluster }) }
}
