// The MQTT side of a node (seed: /api/mqtt/...): clients, in-flight
// messages, retained messages, subscribers, and disconnecting a client.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import {
  ClientIdRequest, ClientList, ClientStopResult, MessageList, TopicRequest, TopicSubscribers,
  type ClientStopResult as ClientStopResultType, type MessageInfo as MessageInfoType
} from '../../../client/contract.js'
import { filterProblem, topicProblem, type MqttIntrospection } from '../../mqtt/introspection.js'
import { BrokerHaError } from '../../../errors.js'
import { responses } from '../errors.js'
import { isLocalScope, ScopeHeaders } from '../local-scope.js'
import type { ClientConnections } from '../client-connections.js'

/** Who asked, as far as finding a client on other members needs to know. */
export interface ClientControlRequest {
  /** The local-scope marker (local-scope.ts): answer for this node only. */
  local?: boolean
}

/**
 * Disconnects a client and reads its session's in-flight messages wherever
 * it is. The node-local version below answers for this node only; the
 * cluster version (cluster-client-control.ts) asks the other members when
 * the client is not here, without the routes changing.
 */
export interface ClientControl {
  stop (clientId: string, request?: ClientControlRequest): Promise<ClientStopResultType>
  inflight (clientId: string, request?: ClientControlRequest): Promise<MessageInfoType[]>
}

export class LocalClientControl implements ClientControl {
  constructor (private readonly introspection: MqttIntrospection, private readonly nodeName: string) {}

  async stop (clientId: string): Promise<ClientStopResultType> {
    if (!await this.introspection.disconnect(clientId)) {
      throw new BrokerHaError('NOT_FOUND', `client ${JSON.stringify(clientId)} is not connected to ${this.nodeName}`, { key: 'client_id' })
    }
    return { client_id: clientId, node: this.nodeName, stopped: true }
  }

  async inflight (clientId: string): Promise<MessageInfoType[]> {
    return await this.introspection.inflight(clientId)
  }
}

/** A read-only endpoint that also has a /proxy variant (seed: marked `| /proxy/...`). */
export interface ProxiedRoute {
  method: 'GET' | 'POST'
  url: string
  summary: string
  tags: string[]
  body?: TSchema
  /** Headers the direct route takes (not the /proxy variant, which always asks members locally). */
  headers?: TSchema
  response: TSchema
  /**
   * Checks the body beyond its schema; throws BAD_REQUEST. /proxy runs it
   * before asking any member, so a bad request is answered once with 400
   * rather than as every member's error.
   */
  check?: (body: Record<string, string>) => void
}

/** 400 unless `topic` is a valid filter (wildcards allowed). */
function checkFilter (body: Record<string, string>): void {
  const problem = filterProblem(body.topic ?? '')
  if (problem !== undefined) throw new BrokerHaError('BAD_REQUEST', `topic ${JSON.stringify(body.topic)} is not a valid MQTT topic filter: ${problem}`, { key: 'topic' })
}

/** 400 unless `topic` is a topic name (no wildcards). */
function checkTopicName (body: Record<string, string>): void {
  const problem = topicProblem(body.topic ?? '')
  if (problem !== undefined) throw new BrokerHaError('BAD_REQUEST', `topic ${JSON.stringify(body.topic)} is not a valid MQTT topic name: ${problem}`, { key: 'topic' })
}

export const MQTT_PROXIED_ROUTES: ProxiedRoute[] = [
  { method: 'GET', url: '/api/mqtt/clients', summary: 'Clients connected to this node, with their subscriptions', tags: ['mqtt'], response: ClientList },
  { method: 'POST', url: '/api/mqtt/client/inflight', summary: "Messages queued or awaiting acknowledgement in a client's session, read from the member holding it (persistent sessions; empty for clean sessions and unknown ids; with x-broker-ha-scope: local, this node's only)", tags: ['mqtt'], body: ClientIdRequest, headers: ScopeHeaders, response: MessageList },
  { method: 'POST', url: '/api/mqtt/topic/messages', summary: 'Retained messages whose topic matches a filter (wildcards allowed)', tags: ['mqtt'], body: TopicRequest, response: MessageList, check: checkFilter },
  { method: 'POST', url: '/api/mqtt/topic/subscribers', summary: 'Subscriptions on this node that match a topic name', tags: ['mqtt'], body: TopicRequest, response: TopicSubscribers, check: checkTopicName }
]

export function mqttRoutes (app: FastifyInstance, deps: { introspection: MqttIntrospection, connections: ClientConnections, clientControl: ClientControl }): void {
  const { introspection: mqtt, connections, clientControl } = deps
  const handlers: Record<string, (body: Record<string, string>, request: FastifyRequest) => Promise<unknown> | unknown> = {
    '/api/mqtt/clients': () => mqtt.clients().map((c) => ({ ...c, ...connections.of(c.ID) })),
    '/api/mqtt/client/inflight': (body, request) => clientControl.inflight(body.client_id!, controlRequest(request)),
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
        ...(route.headers === undefined ? {} : { headers: route.headers }),
        response: responses(route.response, route.body === undefined ? [401, 500] : [400, 401, 500])
      },
      handler: async (request) => {
        const body = (request.body ?? {}) as Record<string, string>
        route.check?.(body)
        return await handler(body, request)
      }
    })
  }
  app.post<{ Body: ClientIdRequest }>('/api/mqtt/client/stop', {
    schema: {
      summary: 'Disconnect a client on whichever member it is connected to (MQTT 5 clients get DISCONNECT 0x98, administrative action); with x-broker-ha-scope: local, only if connected to this node',
      tags: ['mqtt'],
      body: ClientIdRequest,
      headers: ScopeHeaders,
      response: responses(ClientStopResult, [400, 401, 404, 500])
    }
  }, async (request) => await clientControl.stop(request.body.client_id, controlRequest(request)))
}

function controlRequest (request: FastifyRequest): ClientControlRequest {
  return { local: isLocalScope(request.headers) }
}
