// The MQTT side of a node (seed: /api/mqtt/...): clients, in-flight
// messages, retained messages, subscribers, and disconnecting a client.
import type { FastifyInstance } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import {
  ClientIdRequest, ClientList, ClientStopResult, MessageList, TopicRequest, TopicSubscribers,
  type ClientStopResult as ClientStopResultType
} from '../../../client/contract.js'
import type { MqttIntrospection } from '../../mqtt/introspection.js'
import { BrokerHaError } from '../../../errors.js'
import { responses } from '../errors.js'

/**
 * Disconnects a client wherever it is connected. The node-local version
 * below answers for this node only; the cluster layer can pass one that
 * finds the client's node and asks it, without the route changing.
 */
export interface ClientControl {
  stop (clientId: string): Promise<ClientStopResultType>
}

export class LocalClientControl implements ClientControl {
  constructor (private readonly introspection: MqttIntrospection, private readonly nodeName: string) {}

  async stop (clientId: string): Promise<ClientStopResultType> {
    if (!await this.introspection.disconnect(clientId)) {
      throw new BrokerHaError('NOT_FOUND', `client ${JSON.stringify(clientId)} is not connected to ${this.nodeName}`, { key: 'client_id' })
    }
    return { client_id: clientId, node: this.nodeName, stopped: true }
  }
}

/** A read-only endpoint that also has a /proxy variant (seed: marked `| /proxy/...`). */
export interface ProxiedRoute {
  method: 'GET' | 'POST'
  url: string
  summary: string
  tags: string[]
  body?: TSchema
  response: TSchema
}

export const MQTT_PROXIED_ROUTES: ProxiedRoute[] = [
  { method: 'GET', url: '/api/mqtt/clients', summary: 'Clients connected to this node, with their subscriptions', tags: ['mqtt'], response: ClientList },
  { method: 'POST', url: '/api/mqtt/client/inflight', summary: "Messages queued or awaiting acknowledgement in a client's session on this node (persistent sessions; empty for clean sessions and unknown ids)", tags: ['mqtt'], body: ClientIdRequest, response: MessageList },
  { method: 'POST', url: '/api/mqtt/topic/messages', summary: 'Retained messages whose topic matches a filter (wildcards allowed)', tags: ['mqtt'], body: TopicRequest, response: MessageList },
  { method: 'POST', url: '/api/mqtt/topic/subscribers', summary: 'Subscriptions on this node that match a topic name', tags: ['mqtt'], body: TopicRequest, response: TopicSubscribers }
]

export function mqttRoutes (app: FastifyInstance, deps: { introspection: MqttIntrospection, clientControl: ClientControl }): void {
  const { introspection: mqtt } = deps
  const handlers: Record<string, (body: Record<string, string>) => Promise<unknown> | unknown> = {
    '/api/mqtt/clients': () => mqtt.clients(),
    '/api/mqtt/client/inflight': (body) => mqtt.inflight(body.client_id!),
    '/api/mqtt/topic/messages': (body) => mqtt.retained(body.topic!),
    '/api/mqtt/topic/subscribers': (body) => mqtt.subscribers(body.topic!)
  }
  for (const route of MQTT_PROXIED_ROUTES) {
    const handler = handlers[route.url]!
    app.route({
      method: route.method,
      url: route.url,
      schema: {
        summary: route.summary,
        tags: route.tags,
        ...(route.body === undefined ? {} : { body: route.body }),
        response: responses(route.response, route.body === undefined ? [401, 500] : [400, 401, 500])
      },
      handler: async (request) => await handler((request.body ?? {}) as Record<string, string>)
    })
  }
  app.post<{ Body: ClientIdRequest }>('/api/mqtt/client/stop', {
    schema: {
      summary: 'Disconnect a client (MQTT 5 clients get DISCONNECT 0x98, administrative action)',
      tags: ['mqtt'],
      body: ClientIdRequest,
      response: responses(ClientStopResult, [400, 401, 404, 500])
    }
  }, async (request) => await deps.clientControl.stop(request.body.client_id))
}
