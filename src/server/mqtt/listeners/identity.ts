// The 'client-certificate' layer of aedes' authenticate seam (hooks.ts),
// outermost, so every later layer (the client log, introspection, the
// cluster, mqtt.auth and mqtt.acl) sees one user name: a verified client
// certificate's identity (the listener's `identity` field) takes the place
// of the CONNECT's user name. With the listener's `username_must_match`, a
// CONNECT that names another user is refused (not authorized) instead.
// Passwords are untouched: an mqtt.auth rule that names one still wants it.
import type { Client } from 'aedes'
import type { Wrap } from '../hooks.js'
import { connectionInfo } from './connection-info.js'

// CONNACK return code 5 "not authorized" (MQTT 3.1.1 section 3.2.2.3); reason 0x87 on MQTT 5.
const NOT_AUTHORIZED = 5

export function certificateIdentityLayer (onMismatch: (client: Client, username: string, identity: string) => void): Wrap<'authenticate'> {
  return (next) => (client, username, password, callback) => {
    const info = connectionInfo(client.conn)
    const identity = info?.certificateIdentity
    if (identity === undefined) return next(client, username, password, callback)
    if (info!.usernameMustMatch && username !== undefined && username !== null && username !== '' && username !== identity) {
      onMismatch(client, username, identity)
      return callback(Object.assign(new Error('user name does not match the client certificate'), { returnCode: NOT_AUTHORIZED }), false)
    }
    next(client, identity, password, callback)
  }
}
