// Typed errors with stable codes. Commands map codes to exit statuses, the API
// maps them to HTTP statuses; nobody matches on message text.

export type ErrorCode =
  | 'CONFIG_INVALID' // a key has a wrong type, unknown name or out-of-range value
  | 'CONFIG_UNREADABLE' // the config file cannot be read or parsed
  | 'USAGE' // bad command-line usage
  | 'LISTEN_FAILED' // a port could not be opened
  | 'CLUSTER_NAME_CONFLICT' // another member already uses our cluster.name
  | 'NOT_FOUND'
  | 'BAD_REQUEST'
  | 'STORAGE_INCOMPATIBLE' // the store was written by a newer version or another cluster
  | 'STORAGE_CORRUPT' // the store cannot be read (truncated, overwritten); serve --reset-storage starts empty
  | 'STORAGE_IN_USE' // another live process holds storage.dir's lock
  | 'PUBLISH_REFUSED' // a QoS 1/2 publish not acknowledged: no node keeps a copy for the sessions it is for
  | 'INTERNAL'

export class BrokerHaError extends Error {
  readonly code: ErrorCode
  /** Key path (`mqtt.port`), env variable or field the error is about, when there is one. */
  readonly key: string | undefined

  constructor (code: ErrorCode, message: string, options: { key?: string, cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'BrokerHaError'
    this.code = code
    this.key = options.key
  }
}

/** Exit status for a failed command: 2 for bad config, usage or a store the node must not use (the operator's input), 1 otherwise. */
export function exitStatusFor (err: unknown): number {
  if (err instanceof BrokerHaError && (err.code === 'CONFIG_INVALID' || err.code === 'CONFIG_UNREADABLE' || err.code === 'USAGE' || err.code === 'STORAGE_INCOMPATIBLE' || err.code === 'STORAGE_CORRUPT' || err.code === 'STORAGE_IN_USE')) {
    return 2
  }
  return 1
}
