// A small real DNS server on loopback for tests: answers SRV and A queries
// over UDP from an in-memory zone that tests may change while it runs (to
// test re-resolution). Enough of RFC 1035 and RFC 2782 for node's resolver;
// anything it does not know gets NXDOMAIN.
import { createSocket, type Socket } from 'node:dgram'

export interface SrvRecord { priority?: number, weight?: number, port: number, target: string }

export interface DnsServer {
  host: string
  port: number
  /** host:port, the value for discovery.dns_server. */
  address: string
  /** Replaces the SRV records of `name`. */
  setSrv: (name: string, records: SrvRecord[]) => void
  /** Replaces the A records of `name`. */
  setA: (name: string, addresses: string[]) => void
  /** Queries answered so far, as "TYPE name". */
  queries: string[]
  close: () => Promise<void>
}

const TYPE_A = 1
const TYPE_SRV = 33
const CLASS_IN = 1

export async function startDnsServer (host: string): Promise<DnsServer> {
  const srv = new Map<string, SrvRecord[]>()
  const a = new Map<string, string[]>()
  const queries: string[] = []
  const socket: Socket = createSocket('udp4')
  socket.on('message', (msg, rinfo) => {
    const answer = respond(msg, srv, a, queries)
    if (answer !== undefined) socket.send(answer, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, host, () => resolve())
  })
  const port = socket.address().port
  const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '')
  return {
    host,
    port,
    address: `${host}:${port}`,
    setSrv: (name, records) => { srv.set(norm(name), records) },
    setA: (name, addresses) => { a.set(norm(name), addresses) },
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve()))
  }
}

function respond (msg: Buffer, srv: Map<string, SrvRecord[]>, a: Map<string, string[]>, queries: string[]): Buffer | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined
  let offset = 12
  const labels: string[] = []
  for (;;) {
    const len = msg[offset]
    if (len === undefined || len > 63) return undefined
    offset++
    if (len === 0) break
    labels.push(msg.subarray(offset, offset + len).toString('ascii'))
    offset += len
  }
  if (offset + 4 > msg.length) return undefined
  const qtype = msg.readUInt16BE(offset)
  const questionEnd = offset + 4
  const name = labels.join('.').toLowerCase()
  queries.push(`${qtype === TYPE_SRV ? 'SRV' : qtype === TYPE_A ? 'A' : String(qtype)} ${name}`)
  const answers: Buffer[] = []
  if (qtype === TYPE_SRV) {
    for (const r of srv.get(name) ?? []) {
      const target = encodeName(r.target)
      const rdata = Buffer.alloc(6 + target.length)
      rdata.writeUInt16BE(r.priority ?? 0, 0)
      rdata.writeUInt16BE(r.weight ?? 0, 2)
      rdata.writeUInt16BE(r.port, 4)
      target.copy(rdata, 6)
      answers.push(record(TYPE_SRV, rdata))
    }
  } else if (qtype === TYPE_A) {
    for (const ip of a.get(name) ?? []) answers.push(record(TYPE_A, Buffer.from(ip.split('.').map(Number))))
  }
  const known = srv.has(name) || a.has(name)
  const header = Buffer.alloc(12)
  header.writeUInt16BE(msg.readUInt16BE(0), 0)
  // QR, AA, RD copied, RA; NXDOMAIN for names we do not hold.
  header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | (known ? 0 : 3), 2)
  header.writeUInt16BE(1, 4)
  header.writeUInt16BE(answers.length, 6)
  return Buffer.concat([header, msg.subarray(12, questionEnd), ...answers])
}

/** An answer for the question's name (compression pointer to offset 12), TTL 0 so nothing is cached. */
function record (type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12)
  head.writeUInt16BE(0xC00C, 0)
  head.writeUInt16BE(type, 2)
  head.writeUInt16BE(CLASS_IN, 4)
  head.writeUInt32BE(0, 6)
  head.writeUInt16BE(rdata.length, 10)
  return Buffer.concat([head, rdata])
}

function encodeName (name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '')
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'ascii')])), Buffer.from([0])])
}
