// The one chain of layers broker-ha puts around aedes, in the spirit of
// fastify's lib/hooks.js: every seam of aedes we use is listed here with
// the names of its layers in their order, outermost first. A layer is
// registered by name (hooks.use) and composed once, at start (install);
// registering a layer the table below does not name is an error, so the
// order is always the one written here, never the order of the calls.
//
// The seams (aedes 2.0.0-beta.1; aedes-internals.ts lists every private
// field touched):
//   connection          each new connection, after aedes.handle(): per-connection layers, in order
//                       (and their close steps, hooks.closed(), when its socket closes)
//   preConnect          CONNECT, before authentication
//   authenticate        CONNECT credentials
//   authorizePublish    a PUBLISH (and a will) from a client ('storage': refused while the store is full)
//   authorizeSubscribe  a subscription
//   authorizeForward    a delivery to a client (sync; null drops it)
//   publish             aedes.publish(): every message entering the broker
//   published           after a message was delivered locally; aedes acknowledges the publisher when it calls back
//   subscribe           aedes.subscribe(): a live subscription on the emitter
//   unsubscribe         aedes.unsubscribe()
import type { Aedes, Client } from 'aedes'

/** Layers per seam, outermost first. */
export const LAYERS = {
  connection: ['inbound', 'delivery', 'disconnect', 'access'],
  preConnect: ['topic-aliases', 'cluster'],
  authenticate: ['client-certificate', 'client-log', 'introspection', 'cluster', 'access'],
  authorizePublish: ['storage', 'reserved-topics', 'access'],
  authorizeSubscribe: ['quota', 'subscription-identifiers', 'shared-subscriptions', 'access'],
  authorizeForward: ['topic-aliases', 'packet-size', 'access'],
  publish: ['forwarded-properties', 'no-local', 'cluster'],
  published: ['cluster', 'bus-events'],
  subscribe: ['cluster'],
  unsubscribe: ['cluster']
} as const

export type Seam = keyof typeof LAYERS
type FnSeam = Exclude<Seam, 'connection'>
type SeamFn<S extends FnSeam> = Aedes[S]
export type LayerName<S extends Seam> = typeof LAYERS[S][number]

/** A layer: given the function below it (aedes' own at the bottom), returns the function that takes its place. */
export type Wrap<S extends FnSeam> = (next: SeamFn<S>) => SeamFn<S>

export class AedesHooks {
  private readonly wraps = new Map<FnSeam, Map<string, Wrap<FnSeam>>>()
  private readonly onConnection = new Map<string, (client: Client) => void>()
  private readonly onClosed = new Map<string, (client: Client) => void>()
  private installed = false

  use<S extends FnSeam> (seam: S, layer: LayerName<S>, wrap: Wrap<S>): void {
    if (this.installed) throw new Error(`aedes hooks already installed: layer ${layer} on ${seam} comes too late`)
    if (!(LAYERS[seam] as readonly string[]).includes(layer)) throw new Error(`no layer ${layer} on seam ${seam} (hooks.ts LAYERS)`)
    let layers = this.wraps.get(seam)
    if (layers === undefined) { layers = new Map(); this.wraps.set(seam, layers) }
    if (layers.has(layer)) throw new Error(`layer ${layer} on ${seam} registered twice`)
    layers.set(layer, wrap as unknown as Wrap<FnSeam>)
  }

  /** A per-connection layer, run on every new connection in the order of LAYERS.connection. */
  connection (layer: LayerName<'connection'>, install: (client: Client) => void): void {
    if (this.installed) throw new Error(`aedes hooks already installed: connection layer ${layer} comes too late`)
    if (this.onConnection.has(layer)) throw new Error(`connection layer ${layer} registered twice`)
    this.onConnection.set(layer, install)
  }

  /**
   * What a per-connection layer does when the connection's socket closes.
   * MqttServer runs these from one close listener shared by every socket,
   * instead of each layer adding a once('close') closure per connection
   * (each of those is a wrapper object, a bound function, a closure and its
   * context: about 200 bytes of every idle connection).
   */
  closed (layer: LayerName<'connection'>, onClose: (client: Client) => void): void {
    if (this.installed) throw new Error(`aedes hooks already installed: connection layer ${layer} comes too late`)
    if (this.onClosed.has(layer)) throw new Error(`close of connection layer ${layer} registered twice`)
    this.onClosed.set(layer, onClose)
  }

  /** Runs the connection layers on a client aedes just created. */
  connected (client: Client): void {
    for (const name of LAYERS.connection) this.onConnection.get(name)?.(client)
  }

  /** Runs the layers' close steps for a client whose socket closed, in the order of LAYERS.connection. */
  disconnected (client: Client): void {
    for (const name of LAYERS.connection) this.onClosed.get(name)?.(client)
  }

  /** Composes every seam onto aedes, once. */
  install (aedes: Aedes): void {
    if (this.installed) return
    this.installed = true
    const target = aedes as unknown as Record<FnSeam, unknown>
    for (const seam of Object.keys(LAYERS) as Seam[]) {
      if (seam === 'connection') continue
      const layers = this.wraps.get(seam)
      if (layers === undefined) continue
      let fn = (target[seam] as (...args: unknown[]) => unknown).bind(aedes) as unknown as SeamFn<FnSeam>
      const order = [...LAYERS[seam]].reverse()
      for (const name of order) {
        const wrap = layers.get(name)
        if (wrap !== undefined) fn = wrap(fn)
      }
      target[seam] = fn
    }
  }
}
