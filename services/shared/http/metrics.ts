import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Registry } from 'prom-client';
import { UnauthorizedError } from '../errors';
import { createHttpDurationHistogram } from '../../../lib/metrics';

export interface MetricsOptions {
  registry: Registry;
  /** Serve GET /metrics (METRICS_ENABLED); requests are timed either way. */
  expose: boolean;
  /** When set, GET /metrics answers only `Authorization: Bearer <bearerToken>` (METRICS_BEARER_TOKEN). */
  bearerToken?: string | undefined;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** True when the Authorization header carries `expected`; compares digests in constant time, so timing says nothing. */
export function bearerTokenMatches(header: string | undefined, expected: string): boolean {
  const presented = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
  return presented !== undefined && timingSafeEqual(digest(presented), digest(expected));
}

/** Times every request by route template (not raw URL, which would explode label cardinality) and serves GET /metrics. */
export const metricsPlugin = fp(
  (app: FastifyInstance, { registry, expose, bearerToken }: MetricsOptions) => {
    const duration = createHttpDurationHistogram(registry);
    app.addHook('onResponse', async (request, reply) => {
      duration.observe(
        { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });
    if (!expose) return;
    app.get(
      '/metrics',
      {
        schema: { hide: true },
        // Prometheus scrapes on a schedule: never throttled per address.
        // Its Authorization header is METRICS_BEARER_TOKEN, checked here, not a caller's credential.
        config: { rateLimit: false, checksOwnAuthorization: true },
        onRequest: async (request) => {
          if (bearerToken !== undefined && !bearerTokenMatches(request.headers.authorization, bearerToken)) {
            throw new UnauthorizedError('GET /metrics requires Authorization: Bearer <METRICS_BEARER_TOKEN>');
          }
        },
      },
      async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
    );
  },
  { name: 'oms-metrics' },
);
