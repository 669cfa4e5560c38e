// The PROXY protocol (HAProxy, version 1 text and version 2 binary), as sent
// by load balancers in front of a listener with `proxy_protocol: true`: the
// first bytes of the connection name the client's real address.
//   https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
//
// Why our own parser: the npm packages we looked at (proxy-protocol-js) parse
// a header they are handed whole, do not bound version 2's address block by
// its length field and refuse `PROXY UNKNOWN`; framing the header on a stream
// and validating addresses is most of the work, so it is done here in one
// small pure function (parseProxyHeader) with unit tests, and the tests build
// headers with that package as an independent encoder.
import { isIP, type Socket } from 'node:net'
import type { RemoteAddress } from '../access.js'

/** Version 2 signature (section 2.2). */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V1_PREFIX = Buffer.from('PROXY ')
/** Section 2.1: a version 1 line is at most 107 bytes with its CRLF. */
const V1_MAX = 107
/** Version 2 fixed part: signature, version/command, family/protocol, length. */
const V2_FIXED = 16

export type ProxyHeader =
  | { kind: 'incomplete' }
  | { kind: 'invalid', reason: string }
  /** source undefined: a LOCAL command (v2) or UNKNOWN (v1): the connection's own address stands. */
  | { kind: 'ok', version: 1 | 2, length: number, source: RemoteAddress | undefined }

/** Reads a PROXY header at the start of `data`, which may hold more (the client's first bytes) or less (wait). */
export function parseProxyHeader (data: Buffer): ProxyHeader {
  if (data.length === 0) return { kind: 'incomplete' }
  if (data[0] === V2_SIGNATURE[0]) {
    const n = Math.min(data.length, V2_SIGNATURE.length)
    if (!data.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return { kind: 'invalid', reason: 'not a PROXY protocol header' }
    return parseV2(data)
  }
  const n = Math.min(data.length, V1_PREFIX.length)
  if (!data.subarray(0, n).equals(V1_PREFIX.subarray(0, n))) return { kind: 'invalid', reason: 'not a PROXY protocol header' }
  return parseV1(data)
}

function parseV1 (data: Buffer): ProxyHeader {
  const end = data.indexOf('\r\n')
  if (end === -1) return data.length >= V1_MAX ? { kind: 'invalid', reason: 'v1 header longer than 107 bytes' } : { kind: 'incomplete' }
  if (end + 2 > V1_MAX) return { kind: 'invalid', reason: 'v1 header longer than 107 bytes' }
  const parts = data.subarray(0, end).toString('latin1').split(' ')
  const length = end + 2
  if (parts[1] === 'UNKNOWN') return { kind: 'ok', version: 1, length, source: undefined }
  if (parts.length !== 6) return { kind: 'invalid', reason: 'v1 header needs protocol, two addresses and two ports' }
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string]
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0
  if (family === 0) return { kind: 'invalid', reason: `v1 protocol ${proto} is not TCP4, TCP6 or UNKNOWN` }
  if (isIP(src) !== family || isIP(dst) !== family) return { kind: 'invalid', reason: `v1 addresses are not ${proto} addresses` }
  const port = v1Port(sport)
  if (port === undefined || v1Port(dport) === undefined) return { kind: 'invalid', reason: 'v1 port is not 0 to 65535' }
  return { kind: 'ok', version: 1, length, source: { address: src, port } }
}

function v1Port (text: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined
  const port = Number(text)
  return port <= 65535 ? port : undefined
}

function parseV2 (data: Buffer): ProxyHeader {
  if (data.length < V2_FIXED) return { kind: 'incomplete' }
  const versionCommand = data[12]!
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: `v2 version ${versionCommand >> 4} is not 2` }
  const command = versionCommand & 0x0f
  if (command > 1) return { kind: 'invalid', reason: `v2 command ${command} is not LOCAL or PROXY` }
  const familyProtocol = data[13]!
  const length = V2_FIXED + data.readUInt16BE(14)
  if (data.length < length) return { kind: 'incomplete' }
  // LOCAL: the balancer's own connection (a health check); its address stands.
  if (command === 0) return { kind: 'ok', version: 2, length, source: undefined }
  const body = data.subarray(V2_FIXED, length)
  switch (familyProtocol) {
    case 0x11: // TCP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes
      if (body.length < 12) return { kind: 'invalid', reason: 'v2 IPv4 address block too short' }
      return { kind: 'ok', version: 2, length, source: { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) } }
    case 0x21: // TCP over IPv6: 16 + 16, 2 + 2
      if (body.length < 36) return { kind: 'invalid', reason: 'v2 IPv6 address block too short' }
      return { kind: 'ok', version: 2, length, source: { address: ipv6Text(body.subarray(0, 16)), port: body.readUInt16BE(32) } }
    case 0x00: // UNSPEC: unknown origin; the connection's address stands (section 2.2)
      return { kind: 'ok', version: 2, length, source: undefined }
    default:
      return { kind: 'invalid', reason: `v2 address family/protocol 0x${familyProtocol.toString(16).padStart(2, '0')} is not TCP over IPv4 or IPv6` }
  }
}

function ipv6Text (bytes: Buffer): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  // Canonical short form via URL parsing would be heavier; collapse the longest zero run (RFC 5952).
  let best = -1
  let bestLen = 0
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i }
    i = j
  }
  if (best === -1) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
}

export interface ProxiedSocket {
  /** The client's address from the header, or the connection's own (LOCAL, UNKNOWN). */
  source: RemoteAddress | undefined
}

/**
 * Reads the PROXY header off `socket` and leaves every byte after it unread
 * (unshifted) for whoever takes the socket next (MQTT, TLS, HTTP). Rejects
 * with the reason when the header is missing, malformed or late.
 */
export function readProxyHeader (socket: Socket, timeoutMs: number): Promise<ProxiedSocket> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0)
    const finish = (err: Error | undefined, result?: ProxiedSocket): void => {
      clearTimeout(timer)
      socket.removeListener('data', onData)
      socket.removeListener('close', onClose)
      socket.removeListener('error', onError)
      if (err !== undefined) reject(err)
      else resolve(result!)
    }
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      const header = parseProxyHeader(buffered)
      if (header.kind === 'incomplete') return
      socket.pause()
      if (header.kind === 'invalid') return finish(new Error(header.reason))
      const rest = buffered.subarray(header.length)
      if (rest.length > 0) socket.unshift(rest)
      finish(undefined, { source: header.source })
    }
    const onClose = (): void => finish(new Error('connection closed before the PROXY header'))
    const onError = (err: Error): void => finish(err)
    const timer = setTimeout(() => finish(new Error(`no PROXY header within ${timeoutMs} ms`)), timeoutMs)
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.once('error', onError)
  })
}
