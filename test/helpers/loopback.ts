// Loopback addresses for test nodes. Each node gets its own 127.x.y.z so it
// can use the standard ports (1883, 8080, 7946) like a pod does, and parallel
// test files do not collide. An address is only handed out after its ports
// were found free.
import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'

const PORTS = [1883, 8080, 7946]
const taken = new Set<string>()

function randomAddress (): string {
  // 127.100.0.0 - 127.199.255.255: clear of 127.0.0.x, which people use by hand.
  const b = 100 + Math.floor(Math.random() * 100)
  const c = Math.floor(Math.random() * 256)
  const d = 2 + Math.floor(Math.random() * 250)
  return `127.${b}.${c}.${d}`
}

async function tcpFree (host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, host, () => server.close(() => resolve(true)))
  })
}

async function udpFree (host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createSocket('udp4')
    socket.once('error', () => { socket.close(); resolve(false) })
    socket.bind(port, host, () => socket.close(() => resolve(true)))
  })
}

export async function freeLoopbackAddress (): Promise<string> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const address = randomAddress()
    if (taken.has(address)) continue
    const checks = await Promise.all([...PORTS.map((p) => tcpFree(address, p)), udpFree(address, 7946)])
    if (checks.every(Boolean)) {
      taken.add(address)
      return address
    }
  }
  throw new Error('no free loopback address found')
}
