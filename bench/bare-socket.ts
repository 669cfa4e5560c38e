// The floor of any MQTT broker on Node: a plain net server that keeps every
// connection open and answers its first bytes (a CONNECT) with a CONNACK,
// with no MQTT parser, no session and no timer. bench/idle.ts measures it
// beside broker-ha and bare aedes so that their memory per idle connection
// reads against what Node's own socket costs. Run as a child process:
// `--host H --port P`; sends 'ready' to its parent once listening.
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '1883' } } })
const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00])
const open = new Set<Socket>()
const server = createServer((socket) => {
  open.add(socket)
  socket.once('data', () => socket.write(CONNACK))
  socket.on('error', () => {})
  socket.on('close', () => open.delete(socket))
})
server.listen(Number(args.port), args.host)
await once(server, 'listening')
process.send?.('ready')
