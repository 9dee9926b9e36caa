/**
 * The Fastify instance every OMS service starts from: zod-typed routes, OpenAPI generated from the
 * route schemas (served at /docs and /openapi.json), one error format, health and metrics.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify from 'fastify';
import type { Logger } from 'pino';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { authenticationPlugin, securitySchemes, type Authenticator } from './auth';
import { errorHandlerPlugin } from './error-handler';
import { healthPlugin, type HealthCheck } from './health';
import { metricsPlugin } from './metrics';
import { rejectNulPlugin } from './reject-nul';

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
}

export async function buildServiceApp(options: ServiceAppOptions) {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    // Request ids let a client's error report be found in the log.
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

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

  await app.register(errorHandlerPlugin);
  await app.register(authenticationPlugin, { authenticator: options.authenticator });
  await app.register(rejectNulPlugin);
  await app.register(metricsPlugin, { registry: options.metrics });
  await app.register(healthPlugin, { service: options.service, checks: options.healthChecks });
  return app;
}

export type ServiceApp = Awaited<ReturnType<typeof buildServiceApp>>;
