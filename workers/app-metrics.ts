/**
 * Serves the worker's own Prometheus registry (outbox relay, consumers) on WORKER_APP_METRICS_PORT.
 * Temporal's SDK metrics stay on WORKER_METRICS_PORT, served by the Temporal runtime itself.
 */
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';

export async function serveAppMetrics(registry: Registry, host: string, port: number): Promise<() => Promise<void>> {
  const server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => response.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (error: unknown) => response.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return () => new Promise((resolve) => server.close(() => resolve()));
}
