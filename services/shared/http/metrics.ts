import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Registry } from 'prom-client';
import { createHttpDurationHistogram } from '../metrics';

export interface MetricsOptions {
  registry: Registry;
}

/** Times every request by route template (not raw URL, which would explode label cardinality) and serves GET /metrics. */
export const metricsPlugin = fp(
  (app: FastifyInstance, { registry }: MetricsOptions) => {
    const duration = createHttpDurationHistogram(registry);
    app.addHook('onResponse', async (request, reply) => {
      duration.observe(
        { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()),
    );
  },
  { name: 'oms-metrics' },
);
