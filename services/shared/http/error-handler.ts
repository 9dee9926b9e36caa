/** The one place that turns thrown errors into HTTP answers. A client's mistake is never a 500. */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { ApiError } from '../errors';
import { errorBody } from './error-body';

// Fastify's own client-error codes, mapped to our stable codes.
const fastifyClientErrors: Record<string, { status: number; code: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'MALFORMED_JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'MALFORMED_JSON' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'PAYLOAD_TOO_LARGE' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'BAD_REQUEST' },
};

/**
 * Errors the router meets before any route or hook runs (a path that is not valid percent-encoded
 * UTF-8, a path parameter past the router's length limit): Fastify's `frameworkErrors` option
 * hands them here, so they get the same body as every other client error.
 */
export function frameworkErrorHandler(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void reply.status(414).send(errorBody('URI_TOO_LONG', 'a path parameter is too long'));
  } else if (error.code === 'FST_ERR_BAD_URL') {
    void reply.status(400).send(errorBody('BAD_URL', 'the path is not valid percent-encoded UTF-8'));
  } else {
    void reply.status(400).send(errorBody('BAD_REQUEST', 'the request could not be routed'));
  }
}

export const errorHandlerPlugin = fp(
  (app: FastifyInstance) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      if (hasZodFastifySchemaValidationErrors(error)) {
        const issues = error.validation.map((issue) => ({
          path: issue.instancePath || '/',
          message: issue.message,
        }));
        return reply
          .status(400)
          .send(errorBody('VALIDATION_ERROR', `invalid request ${error.validationContext ?? ''}`.trim(), { issues }));
      }
      if (error instanceof ApiError) {
        // Ours to fix, not the client's: the cause (hosts, ports, driver messages) is logged, never sent.
        if (error.statusCode >= 500) request.log.warn({ err: error, cause: error.cause }, 'answered with a server error');
        return reply.status(error.statusCode).send(errorBody(error.code, error.message, error.details));
      }
      const known = error.code ? fastifyClientErrors[error.code] : undefined;
      if (known) return reply.status(known.status).send(errorBody(known.code, error.message));
      if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
        return reply.status(error.statusCode).send(errorBody('BAD_REQUEST', error.message));
      }
      if (isResponseSerializationError(error)) {
        request.log.error({ err: error, issues: error.cause.issues }, 'response does not match its schema');
      } else {
        request.log.error({ err: error }, 'unhandled error');
      }
      // Internals (stack, SQL, hostnames) stay in the log.
      return reply.status(500).send(errorBody('INTERNAL_ERROR', 'internal error; see the service log', { requestId: request.id }));
    });

    app.setNotFoundHandler((request, reply) =>
      reply.status(404).send(errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url}`)),
    );
  },
  { name: 'oms-error-handler' },
);
