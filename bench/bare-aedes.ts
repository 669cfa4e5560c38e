// Bare aedes 2.0.0-beta.1 (default memory persistence, plain net server, no
// broker-ha code): the baseline the suite compares broker-ha with. Run as a
// child process by bench/suite.ts: `--host H --port P`; sends 'ready' to
// its parent once listening.
import { createServer } from 'node:net'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { Aedes } from 'aedes'

const { values: args } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '1883' } } })
const aedes = await Aedes.createBroker()
const server = createServer(aedes.handle)
server.listen(Number(args.port), args.host)
await once(server, 'listening')
process.send?.('ready')
