export { ConfigSchema, type Config, type AuthRuleConfig, type AclRuleConfig } from './schema.js'
export { loadConfig, parseHostPort, DEFAULT_CONFIG_PATHS, type LoadOptions, type LoadedConfig } from './load.js'
export { leafKeys, maskSecrets, referenceTable, type LeafKey } from './keys.js'
