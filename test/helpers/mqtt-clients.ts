// Small helpers for the MQTT integration tests (mqtt-*.test.ts): real mqtt.js
// clients and raw sockets against a node, messages collected for assertions.
import { createConnection, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import mqtt, { type MqttClient, type IClientOptions, type IPublishPacket, type IConnackPacket, type Packet } from 'mqtt'
import type { Registry } from 'prom-client'
import { waitFor } from './wait.js'

const require = createRequire(import.meta.url)
interface RawParser { on (event: 'packet', fn: (p: Packet) => void): void, on (event: 'error', fn: (e: Error) => void): void, parse (buf: Buffer): number }
const mqttPacket = require('mqtt-packet') as {
  parser: (opts?: object) => RawParser
  generate: (packet: object, opts?: { protocolVersion: number }) => Buffer
}

let seq = 0
export function uniqueId (prefix = 'c'): string {
  return `${prefix}-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`
}

/** Connects and waits for CONNACK; no automatic reconnects in tests. */
export async function connect (url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return await mqtt.connectAsync(url, { clientId: uniqueId(), reconnectPeriod: 0, connectTimeout: 5000, ...options })
}

/**
 * Connects and resolves with the CONNACK (to look at session present and
 * properties), and `got`: every message received, collected from before the
 * CONNACK (a resumed session's queue may arrive in the same read).
 */
export async function connectWithConnack (url: string, options: IClientOptions = {}): Promise<{ client: MqttClient, connack: IConnackPacket, got: Received[] }> {
  const client = mqtt.connect(url, { clientId: uniqueId(), reconnectPeriod: 0, connectTimeout: 5000, ...options })
  const got = collect(client)
  try {
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve)
      client.once('error', reject)
    })
    return { client, connack, got }
  } catch (err) {
    client.end(true)
    throw err
  }
}

export interface Received {
  topic: string
  payload: string
  qos: number
  retain: boolean
  properties: IPublishPacket['properties']
}

/** Everything the client receives, in order. */
export function collect (client: MqttClient): Received[] {
  const got: Received[] = []
  client.on('message', (topic, payload, packet) => {
    got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, properties: packet.properties })
  })
  return got
}

export async function waitForCount<T> (items: T[], n: number, message = `${n} messages`, timeout = 5000): Promise<T[]> {
  await waitFor(() => items.length >= n, { timeout, message: `${message} (have ${items.length})` })
  return items
}

/** Resolves with the next DISCONNECT the server sends (MQTT 5), or undefined if the connection just closes. */
export function nextDisconnect (client: MqttClient): Promise<Packet | undefined> {
  return new Promise((resolve) => {
    client.once('disconnect', (packet) => resolve(packet))
    client.once('close', () => setImmediate(() => resolve(undefined)))
  })
}

export async function endAll (...clients: Array<MqttClient | undefined>): Promise<void> {
  await Promise.all(clients.map(async (c) => { if (c !== undefined) await c.endAsync(true).catch(() => {}) }))
}

/** A raw TCP connection speaking bytes, reading back decoded MQTT packets. */
export class RawClient {
  readonly socket: Socket
  readonly packets: Packet[] = []
  closed = false
  private readonly parser: RawParser

  private constructor (socket: Socket, protocolVersion: number) {
    this.socket = socket
    this.parser = mqttPacket.parser({ protocolVersion })
    this.parser.on('packet', (p) => this.packets.push(p))
    this.parser.on('error', () => {})
    socket.on('data', (d: Buffer) => this.parser.parse(d))
    socket.on('error', () => {})
    socket.on('close', () => { this.closed = true })
  }

  static async open (host: string, port: number, protocolVersion = 4): Promise<RawClient> {
    const socket = createConnection({ host, port })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    return new RawClient(socket, protocolVersion)
  }

  write (bytes: Buffer): void {
    this.socket.write(bytes)
  }

  send (packet: object, protocolVersion = 4): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion }))
  }

  async connect (clientId: string, protocolVersion = 4, extra: object = {}): Promise<Packet> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId, clean: true, keepalive: 60, ...extra }, protocolVersion)
    return await this.waitFor('connack')
  }

  async waitFor (cmd: string, timeout = 5000): Promise<Packet> {
    return await waitFor(() => this.packets.find((p) => p.cmd === cmd), { timeout, message: `raw client to receive ${cmd}` })
  }

  async waitClosed (timeout = 5000): Promise<void> {
    await waitFor(() => this.closed, { timeout, message: 'raw connection to close' })
  }

  destroy (): void {
    this.socket.destroy()
  }
}

export function encode (packet: object, protocolVersion = 4): Buffer {
  return mqttPacket.generate(packet, { protocolVersion })
}

/** Current value of a counter/gauge series, 0 when absent. */
export async function metricValue (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) throw new Error(`no metric ${name}`)
  const { values } = await metric.get()
  const match = values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
  return match?.value ?? 0
}

/** A persistent subscriber (MQTT 5, session kept an hour) that subscribes at QoS 1 and goes offline: messages queue for it. */
export async function offlineSubscriber (url: string, clientId: string, filter: string): Promise<void> {
  const c = await connect(url, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } })
  await c.subscribeAsync(filter, { qos: 1 })
  await c.endAsync()
}

/** A connected client with everything it received: every packet (acks with their reason codes) and each message. */
export interface RecordingClient { client: MqttClient, packets: Packet[], messages: Array<{ topic: string, payload: string }> }

/** Where recordingClient connects: a node's MQTT URL, and its host and port for a chosen local address. */
export interface MqttTarget { mqttUrl: string, host: string, config: { mqtt: { port: number } } }

/**
 * Connects (optionally from a given local address, for `remote` rules),
 * recording what arrives; resolves on CONNACK success, rejects with the
 * refusal (its `code` is the CONNACK code). The client goes into `open`
 * for the test file to end.
 */
export async function recordingClient (node: MqttTarget, open: MqttClient[], options: IClientOptions & { localAddress?: string } = {}): Promise<RecordingClient> {
  const { localAddress, ...rest } = options
  const opts: IClientOptions = { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, clientId: `c-${Math.random().toString(16).slice(2, 12)}`, ...rest }
  if (opts.protocolVersion === 3) opts.protocolId = 'MQIsdp'
  const client = localAddress === undefined
    ? mqtt.connect(node.mqttUrl, opts)
    : new mqtt.MqttClient(() => createConnection({ host: node.host, port: node.config.mqtt.port, localAddress }), opts)
  open.push(client)
  client.on('error', () => {}) // refusals arrive as errors; handled below, never thrown
  const packets: Packet[] = []
  const messages: Array<{ topic: string, payload: string }> = []
  client.on('packetreceive', (p) => packets.push(p))
  client.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString() }))
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', (err) => reject(err))
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  return { client, packets, messages }
}

/** The CONNACK code of a connection that must be refused (3.1.1 return code / 5.0 reason code); throws if it is accepted. */
export async function connackRefusal (node: MqttTarget, open: MqttClient[], options: IClientOptions & { localAddress?: string }): Promise<number> {
  let accepted: RecordingClient
  try {
    accepted = await recordingClient(node, open, options)
  } catch (err) {
    return (err as { code: number }).code
  }
  accepted.client.end(true)
  throw new Error(`connection with ${JSON.stringify({ ...options, password: undefined })} was accepted`)
}
