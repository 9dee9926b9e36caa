import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConflictError } from '../../services/shared/errors';
import { loadConfig } from '../../lib/config';
import { buildServiceApp, type ServiceApp } from '../../services/shared/http/app';
import { createAuthenticator } from '../../services/shared/http/auth';
import { createMetricsRegistry } from '../../lib/metrics';
import { testAuthEnv } from '../helpers/auth';

// Every service gets its error format from buildServiceApp; this exercises it with a tiny route.
describe('HTTP error format', () => {
  let app: ServiceApp;
  let healthy = true;

  beforeAll(async () => {
    app = await buildServiceApp({
      service: 'test',
      description: 'error format test',
      logger: false,
      metrics: createMetricsRegistry('test'),
      authenticator: await createAuthenticator(loadConfig(testAuthEnv)),
      healthChecks: [{ name: 'dependency', check: () => (healthy ? Promise.resolve() : Promise.reject(new Error('connection refused'))) }],
      bodyLimitBytes: 1024,
      // Rate limits need Redis; they have their own integration test (test/integration/abuse-limits.test.ts).
      config: loadConfig({ RATE_LIMIT_ENABLED: 'false' }),
    });
    app.post(
      '/things',
      { schema: { body: z.object({ quantity: z.number().int().positive() }), response: { 201: z.object({ quantity: z.number() }) } } },
      async (request, reply) => {
        reply.status(201);
        return { quantity: request.body.quantity };
      },
    );
    app.post('/conflict', () => {
      throw new ConflictError('THING_TAKEN', 'that thing is taken', { thing: 1 });
    });
    app.get('/boom', () => {
      throw new Error('password=hunter2 at db.internal:5432');
    });
    await app.ready();
  });
  afterAll(() => app.close());

  it('accepts a valid body', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', payload: { quantity: 2 } });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toEqual({ quantity: 2 });
  });

  it('answers 400 VALIDATION_ERROR naming the bad field', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', payload: { quantity: 0 } });
    expect(response.statusCode).toBe(400);
    const body = response.json<{ error: { code: string; details: { issues: { path: string }[] } } }>();
    expect(body.error.code).toBe('VALIDATION_ERROR');
    expect(body.error.details.issues[0]?.path).toContain('quantity');
  });

  it('answers 400 MALFORMED_JSON for a body that is not JSON', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"quantity": 2' });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: { code: 'MALFORMED_JSON' } });
  });

  it('answers 413 PAYLOAD_TOO_LARGE for an oversized body', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', payload: { quantity: 1, padding: 'x'.repeat(2048) } });
    expect(response.statusCode).toBe(413);
    expect(response.json()).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('answers 415 for a content type it does not parse', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/xml' }, payload: '<q/>' });
    expect(response.statusCode).toBe(415);
    expect(response.json()).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
  });

  it('maps domain errors to their status and stable code', async () => {
    const response = await app.inject({ method: 'POST', url: '/conflict' });
    expect(response.statusCode).toBe(409);
    expect(response.json()).toEqual({ error: { code: 'THING_TAKEN', message: 'that thing is taken', details: { thing: 1 } } });
  });

  it('refuses a NUL character anywhere in the request (PostgreSQL cannot store it) before the handler runs', async () => {
    const body = await app.inject({ method: 'POST', url: '/things', payload: { quantity: 1, note: ['ok', 'bad\u0000'] } });
    expect(body.statusCode).toBe(400);
    expect(body.json()).toMatchObject({ error: { code: 'VALIDATION_ERROR', details: { issues: [{ path: '/note/1' }] } } });
    const query = await app.inject({ method: 'POST', url: '/things?x=a%00b', payload: { quantity: 1 } });
    expect(query.statusCode).toBe(400);
    expect(query.json()).toMatchObject({ error: { code: 'VALIDATION_ERROR', message: 'invalid request querystring' } });
  });

  it('refuses a lone UTF-16 surrogate (jsonb cannot store it) before the handler runs', async () => {
    // Written by hand: JSON.stringify would escape it the same way, but the point is the wire form.
    const payload = '{"quantity":1,"note":["ok","half \\ud800 a pair"]}';
    const response = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({
      error: { code: 'VALIDATION_ERROR', details: { issues: [{ path: '/note/1', message: 'must not contain unpaired UTF-16 surrogates' }] } },
    });
    const paired = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"quantity":1,"note":["\\ud83d\\ude00"]}' });
    expect(paired.statusCode).toBe(201);
  });

  it('answers 404 ROUTE_NOT_FOUND for unknown routes', async () => {
    const response = await app.inject({ method: 'GET', url: '/nope' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ error: { code: 'ROUTE_NOT_FOUND' } });
  });

  it('never leaks internals in a 500', async () => {
    const response = await app.inject({ method: 'GET', url: '/boom' });
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('hunter2');
    expect(response.json()).toMatchObject({ error: { code: 'INTERNAL_ERROR' } });
  });

  it('reports a failing dependency as 503 DOWN, without its error text', async () => {
    healthy = false;
    const down = await app.inject({ method: 'GET', url: '/health' });
    healthy = true;
    expect(down.statusCode).toBe(503);
    const body = down.json<{ status: string; checks: Record<string, Record<string, unknown>> }>();
    expect(body.status).toBe('DOWN');
    expect(Object.keys(body.checks.dependency!).sort()).toEqual(['latencyMs', 'status']);
    expect(body.checks.dependency!.status).toBe('DOWN');
    expect(down.body).not.toContain('refused');
    const up = await app.inject({ method: 'GET', url: '/health' });
    expect(up.statusCode).toBe(200);
    expect(up.json()).toMatchObject({ status: 'UP', checks: { dependency: { status: 'UP' } } });
  });

  it('counts requests in the metrics by route template', async () => {
    await app.inject({ method: 'POST', url: '/things', payload: { quantity: 3 } });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toMatch(/oms_http_request_duration_seconds_count\{[^}]*route="\/things"[^}]*status_code="201"[^}]*\} [1-9]/);
  });

  it('publishes an OpenAPI document built from the route schemas', async () => {
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const spec = response.json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/things', '/health']));
  });
});
