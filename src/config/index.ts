export { ConfigSchema, type Config, type AuthRuleConfig, type AclRuleConfig } from './schema.js'
export { loadConfig, parseHostPort, DEFAULT_CONFIG_PATHS, type FlagValue, type LoadOptions, type LoadedConfig, type ValueSource } from './load.js'
export { effectiveConfigText } from './effective.js'
export { leafKeys, maskSecrets, referenceTable, type LeafKey } from './keys.js'
