// Derived views of the config schema: the settable keys with their BROKER_*
// environment variable names, secret masking, and the reference table of docs/configuration.md.
import { ConfigSchema, type Config } from './schema.js'

type SchemaNode = Record<string, unknown> & {
  type?: string
  properties?: Record<string, SchemaNode>
  items?: SchemaNode
  additionalProperties?: unknown
  patternProperties?: Record<string, SchemaNode>
  anyOf?: SchemaNode[]
  default?: unknown
  description?: string
  secret?: boolean
  /** A list of objects whose fields each get a BROKER_<LIST>_<N>_<FIELD> variable (mqtt.listeners). */
  indexedEnv?: boolean
  minimum?: number
  maximum?: number
}

export interface LeafKey {
  /** ['cluster', 'config', 'probe_interval'] */
  path: string[]
  /** BROKER_CLUSTER_CONFIG_PROBE_INTERVAL */
  env: string
  /** How an environment variable's text is read. */
  kind: 'string' | 'integer' | 'boolean' | 'string-list' | 'structured'
  schema: SchemaNode
}

let cached: LeafKey[] | undefined

/** Every key that can be set on its own: leaves, plus structured values (lists, maps) as a whole. */
export function leafKeys (): LeafKey[] {
  if (cached !== undefined) return cached
  const out: LeafKey[] = []
  const walk = (node: SchemaNode, path: string[]): void => {
    if (node.type === 'object' && node.properties !== undefined) {
      for (const [name, child] of Object.entries(node.properties)) walk(child, [...path, name])
      return
    }
    out.push({ path, env: `BROKER_${path.join('_').toUpperCase()}`, kind: kindOf(node), schema: node })
  }
  walk(ConfigSchema as unknown as SchemaNode, [])
  cached = out
  return out
}

function kindOf (node: SchemaNode): LeafKey['kind'] {
  if (node.type === 'integer' || node.type === 'number') return 'integer'
  if (node.type === 'boolean') return 'boolean'
  if (node.type === 'string' || node.anyOf !== undefined) return 'string'
  if (node.type === 'array' && node.items?.type === 'string') return 'string-list'
  return 'structured'
}

export interface IndexedKey {
  /** ['mqtt', 'listeners'] */
  list: string[]
  /** 'port' */
  field: string
  /** BROKER_MQTT_LISTENERS_ */
  envPrefix: string
  kind: LeafKey['kind']
  schema: SchemaNode
}

/** The fields of lists marked indexedEnv, each settable as BROKER_<LIST>_<N>_<FIELD> (N from 0). */
export function indexedKeys (): IndexedKey[] {
  const out: IndexedKey[] = []
  for (const key of leafKeys()) {
    const items = key.schema.items
    if (key.schema.indexedEnv !== true || items?.properties === undefined) continue
    for (const [field, node] of Object.entries(items.properties)) {
      out.push({ list: key.path, field, envPrefix: `${key.env}_`, kind: kindOf(node), schema: node })
    }
  }
  return out
}

const MASK = '********'

/**
 * A copy of the config with every secret replaced, for --check-config output,
 * logs and the API. Secret map values and list entries are masked one by one,
 * so the operator still sees which users or keys are configured.
 */
export function maskSecrets (config: Config): unknown {
  const mask = (value: unknown, node: SchemaNode | undefined, secret: boolean): unknown => {
    if (Array.isArray(value)) return value.map((v) => mask(v, node?.items, secret))
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value)) {
        const child = node?.properties?.[k] ?? (node?.patternProperties !== undefined ? Object.values(node.patternProperties)[0] : undefined)
        out[k] = mask(v, child, secret || child?.secret === true)
      }
      return out
    }
    if (secret && typeof value === 'string' && value !== '') return MASK
    return value
  }
  // A map or list marked secret masks its values, not its keys.
  return mask(config, ConfigSchema as unknown as SchemaNode, false)
}

/** The configuration reference of docs/configuration.md, one row per key, generated from the schema. */
export function referenceTable (): string {
  const rows = leafKeys().map((key) => {
    const def = key.schema.default
    const shown = def === undefined ? '' : typeof def === 'string' ? (def === '' ? '""' : def) : JSON.stringify(def)
    const range = key.schema.minimum !== undefined && key.schema.maximum !== undefined ? ` (${key.schema.minimum} to ${key.schema.maximum})` : ''
    const description = `${key.schema.description ?? ''}${range}`.replace(/\|/g, '\\|')
    const row = `| \`${key.path.join('.')}\` | \`${key.env}\` | \`${shown.replace(/\|/g, '\\|')}\` | ${description} |`
    const fields = indexedKeys().filter((k) => k.list.join('.') === key.path.join('.')).map((k) => {
      const d = k.schema.default
      const def = d === undefined ? '' : `\`${typeof d === 'string' ? d : JSON.stringify(d)}\``
      const text = (k.schema.description ?? '').replace(/\|/g, '\\|')
      const values = k.schema.anyOf?.every((o) => o.const !== undefined) === true ? ` (${k.schema.anyOf.map((o) => String(o.const)).join(' \\| ')})` : ''
      return `| \`${key.path.join('.')}[N].${k.field}\` | \`${k.envPrefix}<N>_${k.field.toUpperCase()}\` | ${def} | ${text}${values} |`
    })
    return [row, ...fields].join('\n')
  })
  return ['| key | environment variable | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n')
}
