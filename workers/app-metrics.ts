/**
 * Serves the worker's own Prometheus registry (outbox relay, consumers) on WORKER_APP_METRICS_PORT.
 * Temporal's SDK metrics stay on WORKER_METRICS_PORT, served by the Temporal runtime itself.
 * The same rules as the services' GET /metrics: off with METRICS_ENABLED=false, behind
 * METRICS_BEARER_TOKEN when set, the same server timeouts, no internal error text in a 500.
 */
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Config } from '../lib/config';
import { bearerTokenMatches } from '../services/shared/http/metrics';
import { nodeServerTimeouts } from '../services/shared/http/server-timeouts';

export async function serveAppMetrics(registry: Registry, config: Config, logger: Pick<Logger, 'error'>): Promise<() => Promise<void>> {
  if (!config.METRICS_ENABLED) return async () => undefined;
  const token = config.METRICS_BEARER_TOKEN;
  const server = createServer(nodeServerTimeouts(config), (request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    if (token !== undefined && !bearerTokenMatches(request.headers.authorization, token)) {
      response.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      return;
    }
    registry.metrics().then(
      (body) => response.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (error: unknown) => {
        logger.error({ err: error }, 'collecting metrics failed');
        response.writeHead(500).end('internal error; see the worker log');
      },
    );
  });
  server.setTimeout(config.HTTP_CONNECTION_TIMEOUT_MS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.WORKER_APP_METRICS_PORT, config.HOST, resolve);
  });
  return () => new Promise((resolve) => server.close(() => resolve()));
}
