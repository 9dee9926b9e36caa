/**
 * The Fastify instance every OMS service starts from: zod-typed routes, OpenAPI generated from the
 * route schemas (served at /docs and /openapi.json unless EXPOSE_DOCS=false), one error format,
 * health and metrics, rate limits, and server timeouts that cut off slow or idle clients.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import type { Config } from '../../../lib/config';
import { REQUEST_ID_HEADER, usableRequestId, withCorrelationId } from '../../../lib/correlation';
import { authenticationPlugin, securitySchemes, type Authenticator } from './auth';
import { errorHandlerPlugin, frameworkErrorHandler } from './error-handler';
import { healthPlugin, type HealthCheck } from './health';
import { metricsPlugin } from './metrics';
import { rateLimitPlugin } from './rate-limit';
import { rejectUnstorableTextPlugin } from './reject-unstorable-text';
import { serverTimeouts } from './server-timeouts';

export interface ServiceAppOptions {
  service: string;
  description: string;
  /** Request logging goes to this logger; false silences it (tests). */
  logger: Logger | false;
  healthChecks: HealthCheck[];
  metrics: Registry;
  /** Turns the Authorization header into request.principal (createAuthenticator(config)). */
  authenticator: Authenticator;
  /** Largest accepted request body; larger ones get 413 PAYLOAD_TOO_LARGE. */
  bodyLimitBytes?: number;
  /** Timeouts, rate limits, proxy trust, docs and metrics exposure. */
  config: Config;
  /** Where rate limits are counted; required unless RATE_LIMIT_ENABLED=false. */
  redis?: Redis;
}

/** OpenAPI generated from the route schemas: the UI at /docs, the document at /openapi.json. */
const docsPlugin = fp(
  async (app: FastifyInstance, options: Pick<ServiceAppOptions, 'service' | 'description'>) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: { title: `OMS ${options.service} service`, description: options.description, version: '0.1.0' },
        components: { securitySchemes },
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
    app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  },
  { name: 'oms-docs' },
);

export async function buildServiceApp(options: ServiceAppOptions) {
  const { config } = options;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    ...serverTimeouts(config),
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    trustProxy: config.TRUST_PROXY,
    // The request id is the correlation id of everything this request causes (lib/correlation.ts):
    // the caller's X-Request-Id when it is usable, else a new one. It is on every log line of the request.
    requestIdHeader: false,
    genReqId: (request) => usableRequestId(request.headers[REQUEST_ID_HEADER]) ?? crypto.randomUUID(),
    frameworkErrors: frameworkErrorHandler,
    // One access log line per request (below), not Fastify's two ("incoming request" and "request
    // completed"): at a thousand requests a second the second line is a measurable share of the CPU.
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>();
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    done();
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // Every answer names its request id, so a client can quote it (and learn the one we made up).
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
  // The handler runs with the request id as the current correlation id: the events it writes and the
  // sagas it starts carry it. Set after body parsing, which would not keep the async context.
  app.addHook('preHandler', (request, _reply, done) => withCorrelationId(request.id, done));

  // First of all hooks: a flood is refused before anything else (authentication included) runs.
  if (config.RATE_LIMIT_ENABLED) {
    if (!options.redis) throw new Error('rate limits are enabled (RATE_LIMIT_ENABLED) but no Redis client was given');
    await app.register(rateLimitPlugin, {
      service: options.service,
      redis: options.redis,
      perAddressPerMinute: config.RATE_LIMIT_PER_ADDRESS_PER_MINUTE,
      perCustomerPerMinute: config.RATE_LIMIT_PER_CUSTOMER_PER_MINUTE,
      exemptAddresses: config.RATE_LIMIT_EXEMPT_ADDRESSES,
    });
  }

  if (config.EXPOSE_DOCS) await app.register(docsPlugin, { service: options.service, description: options.description });
  await app.register(errorHandlerPlugin);
  await app.register(authenticationPlugin, { authenticator: options.authenticator });
  await app.register(rejectUnstorableTextPlugin);
  await app.register(metricsPlugin, { registry: options.metrics, expose: config.METRICS_ENABLED, bearerToken: config.METRICS_BEARER_TOKEN });
  await app.register(healthPlugin, { service: options.service, checks: options.healthChecks });
  return app;
}

export type ServiceApp = Awaited<ReturnType<typeof buildServiceApp>>;
