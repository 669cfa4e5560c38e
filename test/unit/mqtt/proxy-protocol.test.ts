// The PROXY protocol parser (listeners/proxy-protocol.ts) against headers
// built by an independent encoder (proxy-protocol-js) and hand-made bad ones:
// every split point of a valid header waits, junk and bad fields are refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Peer, V1ProxyProtocol, V2ProxyProtocol, INETProtocol, Command, TransportProtocol, IPv4ProxyAddress, IPv4Address, IPv6ProxyAddress, IPv6Address } from 'proxy-protocol-js'
import { parseProxyHeader } from '../../../src/server/mqtt/listeners/proxy-protocol.js'

const MQTT_CONNECT = Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54])
const v1 = (text: string): Buffer => Buffer.from(text, 'latin1')

test('v1 TCP4 and TCP6: the source address and port, and where the client bytes start', () => {
  const header = Buffer.from(new V1ProxyProtocol(INETProtocol.TCP4, new Peer('10.1.2.3', 5555), new Peer('10.0.0.1', 1883)).build())
  const r = parseProxyHeader(Buffer.concat([header, MQTT_CONNECT]))
  assert.deepEqual(r, { kind: 'ok', version: 1, length: header.length, source: { address: '10.1.2.3', port: 5555 } })
  const text = 'PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'
  assert.deepEqual(parseProxyHeader(v1(text)), { kind: 'ok', version: 1, length: text.length, source: { address: '2001:db8::1', port: 1 } })
  assert.deepEqual(parseProxyHeader(v1('PROXY UNKNOWN\r\n')), { kind: 'ok', version: 1, length: 15, source: undefined })
})

test('v2 PROXY over IPv4 and IPv6, LOCAL, and TLVs after the addresses', () => {
  const four = Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM,
    new IPv4ProxyAddress(IPv4Address.createFrom([192, 0, 2, 7]), 40000, IPv4Address.createFrom([10, 0, 0, 1]), 8883)).build())
  assert.deepEqual(parseProxyHeader(Buffer.concat([four, MQTT_CONNECT])), { kind: 'ok', version: 2, length: four.length, source: { address: '192.0.2.7', port: 40000 } })
  const src = IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42])
  const six = Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, new IPv6ProxyAddress(src, 1, src, 2)).build())
  assert.deepEqual(parseProxyHeader(six), { kind: 'ok', version: 2, length: six.length, source: { address: '2001:db8::42', port: 1 } })
  const local = Buffer.from(new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC,
    new IPv4ProxyAddress(IPv4Address.createFrom([0, 0, 0, 0]), 0, IPv4Address.createFrom([0, 0, 0, 0]), 0)).build())
  assert.equal((parseProxyHeader(local) as { source: unknown }).source, undefined)
  // A TLV (type 0x04 NOOP, length 2) counted in the length field, then MQTT: the length bounds the header.
  const withTlv = Buffer.from(four)
  withTlv.writeUInt16BE(withTlv.readUInt16BE(14) + 5, 14)
  const r = parseProxyHeader(Buffer.concat([withTlv, Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb]), MQTT_CONNECT]))
  assert.equal((r as { length: number }).length, four.length + 5)
})

test('every proper prefix of a valid header is incomplete, not invalid', () => {
  const headers = [
    v1('PROXY TCP4 10.1.2.3 10.0.0.1 5555 1883\r\n'),
    Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM,
      new IPv4ProxyAddress(IPv4Address.createFrom([192, 0, 2, 7]), 40000, IPv4Address.createFrom([10, 0, 0, 1]), 8883)).build())
  ]
  for (const h of headers) {
    for (let n = 0; n < h.length; n++) assert.equal(parseProxyHeader(h.subarray(0, n)).kind, 'incomplete', `prefix ${n}`)
    assert.equal(parseProxyHeader(h).kind, 'ok')
  }
})

test('no header, or a malformed one, is invalid', () => {
  const bad: Buffer[] = [
    MQTT_CONNECT,
    v1('GET / HTTP/1.1\r\n'),
    v1('PROXY TCP4 10.1.2.3 10.0.0.1 5555\r\n'),
    v1('PROXY TCP4 999.1.2.3 10.0.0.1 5555 1883\r\n'),
    v1('PROXY TCP4 2001:db8::1 10.0.0.1 5555 1883\r\n'),
    v1('PROXY TCP4 10.1.2.3 10.0.0.1 65536 1883\r\n'),
    v1('PROXY TCP4 10.1.2.3 10.0.0.1 05 1883\r\n'),
    v1('PROXY UDP4 10.1.2.3 10.0.0.1 5 1883\r\n'),
    v1(`PROXY TCP4 ${'1'.repeat(120)}`),
    Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]), Buffer.from([0x31, 0x11, 0x00, 0x0c]), Buffer.alloc(12)]),
    Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]), Buffer.from([0x21, 0x11, 0x00, 0x04]), Buffer.alloc(4)]),
    Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]), Buffer.from([0x21, 0x12, 0x00, 0x0c]), Buffer.alloc(12)]),
    Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b])
  ]
  for (const b of bad) assert.equal(parseProxyHeader(b).kind, 'invalid', JSON.stringify(b.toString('latin1')))
})
