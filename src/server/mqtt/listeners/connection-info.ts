// What a listener learned about a connection before MQTT saw its first byte:
// the client's real address (a PROXY header's, else the socket's), the
// listener it came in on, and the identity its client certificate gives. The
// stream aedes reads from is the key; everything that names a client's
// address (auth `remote` rules, the ACL, /api/mqtt/clients, logs) asks here
// through remoteOf().
import type { RemoteAddress } from '../access.js'

export interface ConnectionInfo {
  /** `mqtts 0.0.0.0:8883`: the listener, for logs. */
  listener: string
  /**
   * The client's address as the listener knows it (from the PROXY header when
   * there was one); undefined: the socket's own (a plain TCP listener shares
   * one record among all its sockets).
   */
  remote: RemoteAddress | undefined
  /** The identity a verified client certificate gives (mqtt.listeners[].identity field); undefined without one. */
  certificateIdentity: string | undefined
  /** The listener requires the MQTT user name to equal certificateIdentity. */
  usernameMustMatch: boolean
}

const infos = new WeakMap<object, ConnectionInfo>()

export function describeConnection (conn: object, info: ConnectionInfo): void {
  infos.set(conn, info)
}

export function connectionInfo (conn: object | undefined | null): ConnectionInfo | undefined {
  return conn === undefined || conn === null ? undefined : infos.get(conn)
}

/** The client's address: what its listener recorded, else the socket's own. */
export function remoteOf (conn: object | undefined | null): RemoteAddress | undefined {
  const info = connectionInfo(conn)
  if (info?.remote !== undefined) return info.remote
  const socket = conn as { remoteAddress?: string, remotePort?: number } | undefined | null
  if (socket?.remoteAddress === undefined) return undefined
  return { address: socket.remoteAddress, port: socket.remotePort }
}

/** `1.2.3.4:5` or `[::1]:5`, as the API and logs show an address. */
export function formatRemote (remote: RemoteAddress | undefined): string | undefined {
  if (remote === undefined) return undefined
  const host = remote.address.includes(':') ? `[${remote.address}]` : remote.address
  return `${host}:${remote.port ?? 0}`
}
