// The user-state hook of the periodic push/pull full-state exchange
// (memberlist's Delegate.LocalState / MergeRemoteState). The membership
// carries the bytes; what they mean is the delegate's business. Nothing in
// the node uses it today (the data plane compares retained digests over its
// own links); it is tested as memberlist's extension point.
export interface UserStateDelegate {
  /** Bytes to send along with our member list; `join` is true during a join. */
  localState (join: boolean): Buffer
  /** The peer's bytes from the same exchange. Must not throw (errors are swallowed). */
  mergeRemoteState (state: Buffer, join: boolean): void
}
