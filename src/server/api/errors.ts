// One error shape for every API answer that is not a success:
// `{"status": <code>, "error": "<message naming the problem>"}`. Typed
// errors map by code (never by message text); fastify's own errors (schema
// validation, bad JSON, body too large) keep their 4xx status.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { BrokerHaError } from '../../errors.js'
import type { Logger } from '../../log.js'
import { ErrorBody as ErrorBodySchema } from '../../client/contract.js'
import type { ErrorBody } from '../../client/contract.js'

export function statusFor (err: unknown): number {
  if (err instanceof BrokerHaError) {
    switch (err.code) {
      case 'BAD_REQUEST':
      case 'CONFIG_INVALID':
      case 'USAGE':
        return 400
      case 'NOT_FOUND':
        return 404
      default:
        return 500
    }
  }
  const e = err as Partial<FastifyError>
  if (e.validation !== undefined) return 400
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600) return e.statusCode
  return 500
}

export function errorBody (err: unknown): ErrorBody {
  const status = statusFor(err)
  const e = err as Partial<FastifyError> & Error
  let message = e.message ?? String(err)
  if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) message = `invalid JSON body: ${message}`
  else if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') message = 'empty JSON body: send a JSON object'
  else if (status === 500 && !(err instanceof BrokerHaError)) message = `internal error: ${message}`
  return { status, error: message }
}

/** The API's error handler: the shape above, logged with the API's logger. */
export function errorHandler (log: Logger): (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => void {
  return (err, request, reply) => {
    const body = errorBody(err)
    if (body.status >= 500) log.error({ err, url: request.url }, 'API request failed')
    else log.debug({ url: request.url, error: body.error }, 'API request refused')
    void reply.code(body.status).type('application/json').send(body)
  }
}

/** Route `response` schemas: the success shape plus the error shape for the given statuses. */
export function responses<T> (ok: T, errors: number[] = [400, 401, 500]): Record<number, unknown> {
  const out: Record<number, unknown> = { 200: ok }
  for (const status of errors) out[status] = { ...ErrorBodySchema, description: ERROR_DESCRIPTIONS[status] ?? 'error' }
  return out
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'bad request: invalid JSON, missing or wrong-typed field, invalid topic or filter',
  401: 'basic auth required (api.user is set) and missing or wrong',
  403: 'api.user is not set and the caller is not on this host (debug, chaos and mutating endpoints)',
  404: 'no such resource on this node',
  409: 'busy: another profile is running',
  429: 'too many failed logins from this address: wait Retry-After seconds',
  500: 'the request could not be carried out',
  503: 'probe failed'
}
