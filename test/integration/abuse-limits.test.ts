/**
 * Abuse limits against the real Redis and real sockets: per-address and per-customer rate limits
 * (shared by instances), exemptions for probes and service-credential routes, server timeouts that
 * cut off slow clients, and /docs and /metrics switched off or protected by configuration.
 */
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildServiceApp, type ServiceApp } from '../../services/shared/http/app';
import { createAuthenticator } from '../../services/shared/http/auth';
import type { Principal } from '../../services/shared/http/principal';
import { createMetricsRegistry } from '../../lib/metrics';
import { connectRedis } from '../../lib/redis';
import { createTestProductService, type TestProductService } from '../helpers/product-service';
import { testConfig } from '../helpers/stack';

/** A fresh client address per test (inject's remoteAddress), so tests never share a counter. */
let addressCounter = 0;
const freshAddress = () => `10.${(process.pid >> 8) & 255}.${process.pid & 255}.${++addressCounter}`;

const LIMITS = { RATE_LIMIT_EXEMPT_ADDRESSES: '', RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '5', RATE_LIMIT_PER_CUSTOMER_PER_MINUTE: '3' };

describe('rate limits (Redis)', () => {
  let redis: Redis;
  let first: TestProductService;
  let second: TestProductService;

  beforeAll(async () => {
    redis = await connectRedis(testConfig());
    // Two instances of the product service, each with its own database, counting in the one Redis.
    first = await createTestProductService({ overrides: LIMITS });
    second = await createTestProductService({ overrides: LIMITS });
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    redis?.disconnect();
  });

  it('answers 429 RATE_LIMITED with Retry-After once an address is over its limit', async () => {
    const remoteAddress = freshAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) statuses.push((await first.app.inject({ method: 'GET', url: '/products', remoteAddress })).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);

    const refused = await first.app.inject({ method: 'GET', url: '/products', remoteAddress });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ error: { code: 'RATE_LIMITED', details: { limit: 'address' } } });
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);

    // Another address is not affected.
    expect((await first.app.inject({ method: 'GET', url: '/products', remoteAddress: freshAddress() })).statusCode).toBe(200);
  });

  it('counts an address across instances: the limit holds for the service, not per process', async () => {
    const remoteAddress = freshAddress();
    const statuses: number[] = [];
    for (const instance of [first, second, first, second, first, second]) {
      statuses.push((await instance.app.inject({ method: 'GET', url: '/products', remoteAddress })).statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect(await redis.get(`oms:rate-limit:product:address:${remoteAddress}`)).toBe('6');
  });

  it('counts a request whatever credentials it carries: the limit runs before authentication', async () => {
    const remoteAddress = freshAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      statuses.push((await first.app.inject({ method: 'GET', url: '/products', remoteAddress, headers: { authorization: 'Bearer forged' } })).statusCode);
    }
    // Refused by authentication (a forged token is 401 even on a public route), counted all the same.
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    // Unknown routes count too (a scan is a flood like any other).
    const scan: number[] = [];
    const other = freshAddress();
    for (let i = 0; i < 6; i += 1) scan.push((await first.app.inject({ method: 'GET', url: `/admin-${i}`, remoteAddress: other })).statusCode);
    expect(scan).toEqual([404, 404, 404, 404, 404, 429]);
  });

  it('never throttles health, metrics or the service-credential TCC routes the saga worker calls', async () => {
    const remoteAddress = freshAddress();
    for (let i = 0; i < 8; i += 1) {
      for (const url of ['/health/live', '/health', '/metrics']) {
        expect((await first.app.inject({ method: 'GET', url, remoteAddress })).statusCode).toBe(200);
      }
      const tryStock = await first.app.inject({
        method: 'POST',
        url: '/stock/try',
        remoteAddress,
        headers: first.worker,
        payload: { orderId: `limit-${randomUUID()}`, items: [{ productId: randomUUID(), quantity: 1 }] },
      });
      // Unknown product: a 404 decision from the participant, never a 429.
      expect(tryStock.statusCode).toBe(404);
    }
  });

  it('declares the 429 in OpenAPI on every route a limit can refuse, and only there', async () => {
    const spec = (await first.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>();
    expect(Object.keys(spec.paths['/products']!.get!.responses)).toContain('429');
    expect(Object.keys(spec.paths['/products/{id}']!.get!.responses)).toContain('429');
    expect(Object.keys(spec.paths['/stock/try']!.post!.responses)).not.toContain('429');
    expect(Object.keys(spec.paths['/health']!.get!.responses)).not.toContain('429');
  });

  it('answers over a real socket: the burst from one client gets 429s with Retry-After', async () => {
    const listening = await createTestProductService({ overrides: { ...LIMITS, RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '10' }, listen: true });
    try {
      await redis.del('oms:rate-limit:product:address:127.0.0.1');
      const responses = await Promise.all(Array.from({ length: 15 }, () => fetch(`${listening.url}/products?limit=1`)));
      const statuses = responses.map((response) => response.status);
      expect(statuses.filter((status) => status === 200)).toHaveLength(10);
      expect(statuses.filter((status) => status === 429)).toHaveLength(5);
      const refused = responses.find((response) => response.status === 429)!;
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await refused.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    } finally {
      await redis.del('oms:rate-limit:product:address:127.0.0.1');
      await listening.close();
    }
  });

  describe('per customer', () => {
    let app: ServiceApp;

    beforeAll(async () => {
      app = await buildServiceApp({
        service: `limits-${randomUUID()}`,
        description: 'per-customer limit test',
        logger: false,
        metrics: createMetricsRegistry('limits-test'),
        healthChecks: [],
        config: testConfig(LIMITS),
        authenticator: await createAuthenticator(testConfig(LIMITS)),
        redis,
      });
      // Stands in for the authentication hook: registered after the app's own hooks, like it.
      app.addHook('onRequest', async (request) => {
        const who = request.headers['x-test-principal'];
        if (typeof who !== 'string') return;
        const [kind, id = ''] = who.split(':');
        const principals: Record<string, Principal> = {
          customer: { kind: 'customer', customerId: id, subject: id },
          operator: { kind: 'operator', subject: id },
          service: { kind: 'service', name: id, scopes: [] },
        };
        request.principal = principals[kind ?? ''];
      });
      app.get('/things', { schema: { response: { 200: z.object({ ok: z.boolean() }) } } }, () => ({ ok: true }));
      app.post('/things', { schema: { body: z.object({ quantity: z.number().int().positive() }), response: { 200: z.object({ ok: z.boolean() }) } } }, () => ({ ok: true }));
      await app.ready();
    });
    afterAll(() => app?.close());

    it('limits one customer across addresses; other customers, operators and services are not affected', async () => {
      const customer = randomUUID();
      const asCustomer = (id: string) => ({ 'x-test-principal': `customer:${id}` });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i += 1) {
        // A new address for each request: only the customer's own counter can refuse the fourth.
        statuses.push((await app.inject({ method: 'GET', url: '/things', remoteAddress: freshAddress(), headers: asCustomer(customer) })).statusCode);
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      const refused = await app.inject({ method: 'GET', url: '/things', remoteAddress: freshAddress(), headers: asCustomer(customer) });
      expect(refused.json()).toMatchObject({ error: { code: 'RATE_LIMITED', details: { limit: 'customer' } } });
      expect(refused.headers['retry-after']).toBeDefined();

      expect((await app.inject({ method: 'GET', url: '/things', remoteAddress: freshAddress(), headers: asCustomer(randomUUID()) })).statusCode).toBe(200);
      for (const principal of ['operator:ops', 'service:saga-worker']) {
        const answered: number[] = [];
        for (let i = 0; i < 4; i += 1) {
          answered.push((await app.inject({ method: 'GET', url: '/things', remoteAddress: freshAddress(), headers: { 'x-test-principal': principal } })).statusCode);
        }
        expect(answered).toEqual([200, 200, 200, 200]);
      }
    });

    it("counts a customer's invalid requests too: the limit runs before the body is parsed and validated", async () => {
      const headers = { 'x-test-principal': `customer:${randomUUID()}` };
      const statuses: number[] = [];
      for (const quantity of [0, -1, 'many', 1]) {
        statuses.push((await app.inject({ method: 'POST', url: '/things', remoteAddress: freshAddress(), headers, payload: { quantity } })).statusCode);
      }
      expect(statuses).toEqual([400, 400, 400, 429]);
    });
  });
});

/** Opens a raw connection and collects what the server sends until it closes the socket. */
function rawConnection(url: string): { socket: Socket; closed: Promise<{ afterMs: number; received: string }> } {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  const started = performance.now();
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
  });
  const closed = new Promise<{ afterMs: number; received: string }>((resolve) => {
    socket.on('close', () => resolve({ afterMs: performance.now() - started, received }));
    socket.on('error', () => undefined);
  });
  return { socket, closed };
}

describe('server timeouts', () => {
  let service: TestProductService;

  beforeAll(async () => {
    service = await createTestProductService({
      overrides: { HTTP_HEADERS_TIMEOUT_MS: '500', HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '500' },
      listen: true,
    });
  });
  afterAll(() => service?.close());

  it('cuts off a client that sends its headers slowly', async () => {
    const { socket, closed } = rawConnection(service.url);
    socket.write('GET /health/live HTTP/1.1\r\nHost: localhost\r\n');
    // One header byte every 100 ms: the connection is never idle, but the headers never end.
    const drip = setInterval(() => socket.writable && socket.write('X'), 100);
    const { afterMs, received } = await closed;
    clearInterval(drip);
    expect(afterMs).toBeGreaterThanOrEqual(450);
    expect(afterMs).toBeLessThan(3_000);
    expect(received === '' || received.startsWith('HTTP/1.1 408')).toBe(true);
  });

  it('answers 408 (or closes) when a request body never completes', async () => {
    const { socket, closed } = rawConnection(service.url);
    socket.write(`POST /products HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${service.operator.authorization}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sku":`);
    const drip = setInterval(() => socket.writable && socket.write(' '), 100);
    const { afterMs, received } = await closed;
    clearInterval(drip);
    expect(afterMs).toBeGreaterThanOrEqual(900);
    expect(afterMs).toBeLessThan(4_000);
    expect(received === '' || received.startsWith('HTTP/1.1 408'), received).toBe(true);
  });

  it('closes an idle keep-alive connection after its bound', async () => {
    const { socket, closed } = rawConnection(service.url);
    socket.write('GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const { afterMs, received } = await closed;
    expect(received).toMatch(/^HTTP\/1.1 200/);
    expect(afterMs).toBeLessThan(3_000);
  });

  it('takes its bounds from configuration and refuses a headers bound above the request bound', () => {
    expect(service.app.server.headersTimeout).toBe(500);
    expect(service.app.server.requestTimeout).toBe(1000);
    expect(service.app.server.keepAliveTimeout).toBe(500);
    expect(() => testConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '1000' })).toThrow(/HTTP_HEADERS_TIMEOUT_MS/);
  });
});

describe('docs and metrics exposure', () => {
  it('serves /docs, /openapi.json and /metrics by default (the local stack)', async () => {
    const service = await createTestProductService();
    try {
      for (const url of ['/docs', '/openapi.json', '/metrics']) {
        const response = await service.app.inject({ method: 'GET', url });
        expect(response.statusCode, url).toBeLessThan(400);
      }
    } finally {
      await service.close();
    }
  });

  it('EXPOSE_DOCS=false and METRICS_ENABLED=false remove them', async () => {
    const service = await createTestProductService({ overrides: { EXPOSE_DOCS: 'false', METRICS_ENABLED: 'false' } });
    try {
      for (const url of ['/docs', '/openapi.json', '/metrics']) {
        const response = await service.app.inject({ method: 'GET', url });
        expect(response.statusCode, url).toBe(404);
      }
      expect((await service.app.inject({ method: 'GET', url: '/products' })).statusCode).toBe(200);
    } finally {
      await service.close();
    }
  });

  it('METRICS_BEARER_TOKEN protects /metrics', async () => {
    const token = `metrics-${randomUUID()}`;
    const service = await createTestProductService({ overrides: { METRICS_BEARER_TOKEN: token } });
    try {
      const without = await service.app.inject({ method: 'GET', url: '/metrics' });
      expect(without.statusCode).toBe(401);
      expect(without.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      const wrong = await service.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}x` } });
      expect(wrong.statusCode).toBe(401);
      const right = await service.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } });
      expect(right.statusCode).toBe(200);
      expect(right.body).toContain('oms_http_request_duration_seconds');
    } finally {
      await service.close();
    }
  });
});
