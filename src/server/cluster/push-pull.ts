// The user-state hook of the periodic push/pull full-state exchange
// (memberlist's Delegate.LocalState / MergeRemoteState). The membership
// carries the bytes; what they mean is the delegate's business: the data
// plane will put retained-message digests here so nodes find out cheaply
// what they should exchange over their own links.
export interface UserStateDelegate {
  /** Bytes to send along with our member list; `join` is true during a join. */
  localState (join: boolean): Buffer
  /** The peer's bytes from the same exchange. Must not throw (errors are swallowed). */
  mergeRemoteState (state: Buffer, join: boolean): void
}
