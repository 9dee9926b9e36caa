/**
 * `tsx infra/balancer.ts PORT=UPSTREAM_PORT,UPSTREAM_PORT ...`: the production topology's local load
 * balancer (infra/production-apps.sh runs it). Each service keeps its public port; behind it run two
 * instances, and each request goes to the next one in turn.
 *
 * What it retries on the other instance decides whether an instance's death can cause a duplicate:
 * - a refused connection always: the request never reached anyone;
 * - a connection that failed after the request went out only when repeating it is harmless: a GET
 *   or HEAD, or a request carrying an Idempotency-Key (the services answer its repeat with the first
 *   answer). Anything else gets a 502 UPSTREAM_FAILED and the caller decides, as it would with any
 *   proxy.
 * An instance that refused a connection is skipped for a second, so a dead one costs one attempt.
 */
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import pino from 'pino';

const REQUEST_BODY_LIMIT_BYTES = 10 * 1024 * 1024;
const DOWN_FOR_MS = 1_000;
const UPSTREAM_TIMEOUT_MS = 60_000;
const SAFE_TO_REPEAT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const logger = pino({ name: 'oms-balancer', level: process.env.LOG_LEVEL ?? 'info' });

interface Upstream {
  port: number;
  downUntil: number;
}

interface Route {
  port: number;
  upstreams: Upstream[];
  next: number;
}

function parseRoute(argument: string): Route {
  const match = /^(\d+)=(\d+(?:,\d+)*)$/.exec(argument);
  if (!match) throw new Error(`expected PORT=UPSTREAM_PORT,UPSTREAM_PORT, got '${argument}'`);
  return { port: Number(match[1]), upstreams: match[2]!.split(',').map((port) => ({ port: Number(port), downUntil: 0 })), next: 0 };
}

/** The instances in the order to try them: round robin, those seen down recently last. */
function attemptOrder(route: Route): Upstream[] {
  const start = route.next;
  route.next = (route.next + 1) % route.upstreams.length;
  const rotated = [...route.upstreams.slice(start), ...route.upstreams.slice(0, start)];
  const now = Date.now();
  return [...rotated.filter((u) => u.downUntil <= now), ...rotated.filter((u) => u.downUntil > now)];
}

class UpstreamError extends Error {
  constructor(
    readonly failure: NodeJS.ErrnoException,
    /** The request went out: the instance may have acted on it. */
    readonly sent: boolean,
  ) {
    super(failure.message);
  }
}

function forward(upstream: Upstream, request: http.IncomingMessage, body: Buffer, response: http.ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const forwardedFor = [request.headers['x-forwarded-for'], request.socket.remoteAddress].filter(Boolean).join(', ');
    const outgoing = http.request({
      host: '127.0.0.1',
      port: upstream.port,
      method: request.method,
      path: request.url,
      headers: { ...request.headers, 'x-forwarded-for': forwardedFor, 'content-length': String(body.length) },
      // A fresh connection per request: a kept-alive one the instance closed meanwhile would fail a
      // request that never reached it, indistinguishable from one it dropped while working.
      agent: false,
      timeout: UPSTREAM_TIMEOUT_MS,
    });
    let connected = false;
    outgoing.on('socket', (socket) => socket.once('connect', () => (connected = true)));
    outgoing.on('timeout', () => outgoing.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
    outgoing.on('error', (error: NodeJS.ErrnoException) => reject(new UpstreamError(error, connected)));
    outgoing.on('response', (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
      answer.on('end', resolve);
      answer.on('error', (error: NodeJS.ErrnoException) => {
        response.destroy(error);
        resolve();
      });
    });
    outgoing.end(body);
  });
}

function readBody(request: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > REQUEST_BODY_LIMIT_BYTES) {
        resolve(undefined);
        request.destroy();
      } else chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

function reply(response: http.ServerResponse, status: number, code: string, message: string): void {
  if (response.headersSent) return void response.destroy();
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify({ error: { code, message } }));
}

async function handle(route: Route, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  const body = await readBody(request);
  if (body === undefined) return reply(response, 413, 'PAYLOAD_TOO_LARGE', `request body over ${REQUEST_BODY_LIMIT_BYTES} bytes`);
  const repeatable = SAFE_TO_REPEAT_METHODS.has(request.method ?? '') || request.headers['idempotency-key'] !== undefined;
  let last: UpstreamError | undefined;
  for (const upstream of attemptOrder(route)) {
    try {
      return await forward(upstream, request, body, response);
    } catch (error) {
      if (!(error instanceof UpstreamError)) throw error;
      last = error;
      if (!error.sent) upstream.downUntil = Date.now() + DOWN_FOR_MS;
      logger.warn({ port: route.port, upstream: upstream.port, err: error.failure.code ?? error.message, sent: error.sent }, 'upstream failed');
      if (error.sent && !repeatable) break;
    }
  }
  reply(response, 502, 'UPSTREAM_FAILED', `no instance behind port ${route.port} answered (${last?.failure.code ?? last?.message ?? 'none'})`);
}

/** Listens on each route's port; resolves once all listen. */
export async function startBalancer(arguments_: readonly string[]): Promise<http.Server[]> {
  const routes = arguments_.map(parseRoute);
  if (routes.length === 0) throw new Error('usage: tsx infra/balancer.ts PORT=UPSTREAM_PORT,UPSTREAM_PORT ...');
  return Promise.all(
    routes.map(
      (route) =>
        new Promise<http.Server>((resolve, reject) => {
          const server = http.createServer((request, response) => {
            handle(route, request, response).catch((error: unknown) => {
              logger.error({ err: String(error) }, 'balancer failure');
              reply(response, 502, 'UPSTREAM_FAILED', 'the balancer failed');
            });
          });
          server.keepAliveTimeout = 5_000;
          server.once('error', reject);
          server.listen(route.port, '127.0.0.1', () => {
            logger.info({ port: route.port, upstreams: route.upstreams.map((u) => u.port) }, 'balancing');
            resolve(server);
          });
        }),
    ),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const servers = await startBalancer(process.argv.slice(2));
  // Stop taking connections, let answers in flight finish, then go.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      for (const server of servers) {
        server.close();
        server.closeIdleConnections();
      }
      setTimeout(() => process.exit(0), 2_000).unref();
    });
  }
}
