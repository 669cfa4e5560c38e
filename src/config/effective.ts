// What `serve --check-config` prints: the effective configuration as YAML
// (defaults filled in, environment and flags applied, secrets masked), each
// key followed by where its value came from, so an operator can tell a value
// from the file from one a BROKER_* variable or a flag put over it.
import { Document, isMap, isScalar, isSeq, type Pair, type Node } from 'yaml'
import { leafKeys, maskSecrets } from './keys.js'
import type { LoadedConfig, ValueSource } from './load.js'
import { ConfigSchema } from './schema.js'

type SchemaNode = { properties?: Record<string, SchemaNode> }

/** `value` with its maps' keys in schema order (a file's own order, then defaults, is no order to read). */
function inSchemaOrder (value: unknown, node: SchemaNode | undefined): unknown {
  if (node?.properties === undefined || typeof value !== 'object' || value === null || Array.isArray(value)) return value
  const object = value as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [name, child] of Object.entries(node.properties)) if (name in object) out[name] = inSchemaOrder(object[name], child)
  for (const [name, v] of Object.entries(object)) if (!(name in out)) out[name] = v
  return out
}

export function describeSource (key: string, source: ValueSource): string {
  switch (source.kind) {
    case 'flag': return `flag ${source.name}`
    case 'env': return `env ${source.name}`
    case 'file': return `file ${source.path}${source.line === undefined ? '' : ` line ${source.line}`}`
    case 'default': return key === 'cluster.name' ? 'default (the host name)' : 'default'
  }
}

export function effectiveConfigText (loaded: LoadedConfig): string {
  const doc = new Document(inSchemaOrder(maskSecrets(loaded.config), ConfigSchema as unknown as SchemaNode))
  for (const key of leafKeys()) {
    const name = key.path.join('.')
    const source = loaded.sources.get(name)
    if (source === undefined) continue
    const parent = doc.getIn(key.path.slice(0, -1), true)
    if (!isMap(parent)) continue
    const pair = (parent.items as Array<Pair<Node, Node>>).find((p) => isScalar(p.key) && p.key.value === key.path[key.path.length - 1])
    if (pair === undefined) continue
    const comment = ` ${describeSource(name, source)}`
    const value = pair.value
    // On the key's own line: after a scalar or an empty list or map, after the key otherwise.
    if ((isMap(value) || isSeq(value)) && value.items.length === 0) {
      value.flow = true
      value.comment = comment
    } else if (isScalar(value)) value.comment = comment
    else if (isScalar(pair.key)) pair.key.comment = comment
  }
  const from = loaded.source === 'defaults' ? 'no file (built-in defaults)' : `file ${loaded.source}`
  return `# effective config (secrets masked), from ${from}; precedence: flag > env > file > default\n${doc.toString()}`
}
