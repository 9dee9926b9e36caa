import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ConfigError, loadConfig } from '../../lib/config';
import { buildServiceApp, type ServiceApp } from '../../services/shared/http/app';
import { createAuthenticator, requireCustomerOrOperator, requireOperator, requireScope } from '../../services/shared/http/auth';
import { SERVICE_SCOPES } from '../../services/shared/http/service-auth';
import { createMetricsRegistry } from '../../lib/metrics';
import { asWorker, bearer, craftToken, customerToken, operatorToken, testAuthEnv, TEST_JWT_AUDIENCE, TEST_JWT_ISSUER } from '../helpers/auth';

const principalSchema = z.object({ principal: z.unknown() });

type Injected = Awaited<ReturnType<ServiceApp['inject']>>;
const principalIn = (response: Injected) => response.json<{ principal: unknown }>().principal;
const errorIn = (response: Injected) => response.json<{ error: { code: string; message: string } }>().error;

/** An app with one route per guard, each answering with the principal the hook set. */
async function guardedApp(env: Record<string, string>): Promise<ServiceApp> {
  const config = loadConfig({ ...env, RATE_LIMIT_ENABLED: 'false' });
  const app = await buildServiceApp({
    service: 'auth-test',
    description: 'authentication test',
    logger: false,
    metrics: createMetricsRegistry('auth-test'),
    healthChecks: [],
    config,
    authenticator: await createAuthenticator(config),
  });
  const answer = (request: { principal?: unknown }) => ({ principal: request.principal ?? null });
  const response = { response: { 200: principalSchema } };
  // Registered as the services register theirs: in a route plugin.
  await app.register(async (routes) => {
    routes.get('/public', { schema: response }, answer);
    routes.get('/orders', { onRequest: requireCustomerOrOperator, schema: response }, answer);
    routes.post('/admin', { onRequest: requireOperator, schema: response }, answer);
    routes.post('/tcc', { onRequest: requireScope(SERVICE_SCOPES.stockReserve), schema: response }, answer);
  });
  await app.ready();
  return app;
}

describe('authentication (services/shared/http/auth.ts)', () => {
  let app: ServiceApp;
  const customerId = randomUUID();

  beforeAll(async () => {
    app = await guardedApp(testAuthEnv);
  });
  afterAll(() => app.close());

  const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

  it('leaves a request without credentials anonymous: public routes answer, guarded ones are 401 with a Bearer challenge', async () => {
    expect((await get('/public')).json()).toEqual({ principal: null });
    const refused = await get('/orders');
    expect(refused.statusCode).toBe(401);
    expect(errorIn(refused).code).toBe('UNAUTHORIZED');
    expect(refused.headers['www-authenticate']).toBe('Bearer realm="oms"');
  });

  it('makes a customer of a valid token whose subject is a customer id', async () => {
    const response = await get('/orders', bearer(await customerToken(customerId)));
    expect(response.statusCode).toBe(200);
    expect(principalIn(response)).toEqual({ kind: 'customer', customerId, subject: customerId });
  });

  it('makes an operator of a token whose scope holds oms:operator', async () => {
    const response = await get('/orders', bearer(await operatorToken('ops-alice')));
    expect(principalIn(response)).toEqual({ kind: 'operator', subject: 'ops-alice' });
    const scoped = await get('/orders', bearer(await craftToken({ sub: 'ops-bob', scope: 'openid profile oms:operator' })));
    expect(principalIn(scoped)).toEqual({ kind: 'operator', subject: 'ops-bob' });
  });

  const refusedTokens: [string, () => Promise<string>, RegExp][] = [
    ['expired', () => craftToken({ sub: customerId }, { expiresIn: Math.floor(Date.now() / 1000) - 120 }), /expired/],
    ['without exp', () => craftToken({ sub: customerId }, { expiresIn: null }), /"exp" is missing/],
    ['without sub', () => craftToken({}), /"sub" is missing/],
    ['for another audience', () => craftToken({ sub: customerId }, { audience: 'some-other-api' }), /"aud" is not accepted/],
    ['from another issuer', () => craftToken({ sub: customerId }, { issuer: 'https://evil.example/' }), /"iss" is not accepted/],
    ['signed with a shared secret (HS256)', () => craftToken({ sub: customerId }, { algorithm: 'HS256', key: new TextEncoder().encode('x'.repeat(32)) }), /algorithm not accepted/],
    ['signed by a key we do not trust', () => craftToken({ sub: customerId }, { key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey }), /signature does not verify/],
    ['whose subject is not a customer id', () => craftToken({ sub: 'alice' }), /"sub" must be a customer id/],
    ['whose customer id is not in canonical lower case', () => craftToken({ sub: customerId.toUpperCase() }), /"sub" must be a customer id/],
    ['that is not a JWT', () => Promise.resolve('not-a-jwt-and-not-a-credential'), /not a well-formed signed JWT/],
  ];

  it('a token it accepted (and remembered as verified) is refused once it expires', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const token = await craftToken({ sub: customerId }, { expiresIn: exp });
    expect((await get('/orders', bearer(token))).statusCode).toBe(200);
    expect((await get('/orders', bearer(token))).statusCode).toBe(200);
    // Past exp and the 30 s clock tolerance: the remembered verification no longer counts.
    vi.useFakeTimers({ toFake: ['Date'], now: (exp + 31) * 1000 });
    try {
      const late = await get('/orders', bearer(token));
      expect(late.statusCode).toBe(401);
      expect(errorIn(late).message).toMatch(/expired/);
    } finally {
      vi.useRealTimers();
    }
  });

  it.each(refusedTokens)('refuses a token %s with 401 invalid_token', async (_, token, reason) => {
    const response = await get('/orders', bearer(await token()));
    expect(response.statusCode).toBe(401);
    expect(errorIn(response).code).toBe('UNAUTHORIZED');
    expect(errorIn(response).message).toMatch(reason);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="oms", error="invalid_token"');
  });

  it('refuses an invalid credential even on a public route, and a header that is not "Bearer <token>"', async () => {
    expect((await get('/public', bearer('wrong-credential'))).statusCode).toBe(401);
    const basic = await get('/public', { authorization: 'Basic dXNlcjpwYXNz' });
    expect(basic.statusCode).toBe(401);
    expect(basic.headers['www-authenticate']).toBe('Bearer realm="oms", error="invalid_request"');
  });

  it('gives the worker credential its scopes and nothing else', async () => {
    const tcc = await app.inject({ method: 'POST', url: '/tcc', headers: asWorker() });
    expect(tcc.statusCode).toBe(200);
    const worker = principalIn(tcc) as { kind: string; name: string; scopes: string[] };
    expect(worker).toMatchObject({ kind: 'service', name: 'saga-worker' });
    expect(worker.scopes).toContain(SERVICE_SCOPES.stockReserve);
    for (const [method, url] of [['POST', '/admin'], ['GET', '/orders']] as const) {
      const refused = await app.inject({ method, url, headers: asWorker() });
      expect(refused.statusCode).toBe(403);
      expect(errorIn(refused).code).toBe('FORBIDDEN');
    }
  });

  it('lets operators hold every scope, and keeps customers out of admin and internal routes', async () => {
    expect((await app.inject({ method: 'POST', url: '/tcc', headers: bearer(await operatorToken()) })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/admin', headers: bearer(await operatorToken()) })).statusCode).toBe(200);
    const customer = bearer(await customerToken(customerId));
    expect((await app.inject({ method: 'POST', url: '/tcc', headers: customer })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/admin', headers: customer })).statusCode).toBe(403);
  });
});

describe('keys from a JWKS endpoint (an identity provider)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let jwks: Server;
  let app: ServiceApp;

  beforeAll(async () => {
    const jwk = { ...(await exportJWK(publicKey)), kid: 'idp-key-1', alg: 'RS256', use: 'sig' };
    jwks = createServer((_, response) => {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const { port } = jwks.address() as AddressInfo;
    const { AUTH_JWT_PUBLIC_KEY_FILE: _file, ...env } = testAuthEnv;
    app = await guardedApp({ ...env, AUTH_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`, AUTH_JWT_ALGORITHMS: 'RS256' });
  });
  afterAll(async () => {
    await app.close();
    await new Promise((resolve) => jwks.close(resolve));
  });

  /** A token as the provider would issue it: RS256, naming its key by kid. */
  const providerToken = (kid: string, subject: string, scope?: string) =>
    new SignJWT(scope ? { scope } : {})
      .setProtectedHeader({ alg: 'RS256', kid })
      .setSubject(subject)
      .setIssuer(TEST_JWT_ISSUER)
      .setAudience(TEST_JWT_AUDIENCE)
      .setExpirationTime('5m')
      .sign(privateKey);

  it("verifies a token with the provider's key, chosen by kid", async () => {
    const response = await app.inject({ method: 'GET', url: '/orders', headers: bearer(await providerToken('idp-key-1', 'ops-carol', 'oms:operator')) });
    expect(response.statusCode).toBe(200);
    expect(principalIn(response)).toEqual({ kind: 'operator', subject: 'ops-carol' });
  });

  it('answers 503 AUTH_UNAVAILABLE, not 401, when the provider cannot be reached', async () => {
    // A port nobody listens on: the first key fetch fails.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const { AUTH_JWT_PUBLIC_KEY_FILE: _file, ...env } = testAuthEnv;
    const unreachable = await guardedApp({ ...env, AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks`, AUTH_JWT_ALGORITHMS: 'RS256' });
    try {
      const response = await unreachable.inject({ method: 'GET', url: '/orders', headers: bearer(await providerToken('idp-key-1', randomUUID())) });
      expect(response.statusCode).toBe(503);
      expect(errorIn(response).code).toBe('AUTH_UNAVAILABLE');
    } finally {
      await unreachable.close();
    }
  });
});

describe('createAuthenticator start-up checks', () => {
  it('stops on a key file that is missing or fits none of the accepted algorithms, naming the variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oms-auth-test-'));
    const rsaKey = join(dir, 'rsa.pem');
    writeFileSync(rsaKey, generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }));
    await expect(createAuthenticator(loadConfig({ ...testAuthEnv, AUTH_JWT_PUBLIC_KEY_FILE: join(dir, 'missing.pem') }))).rejects.toThrow(/AUTH_JWT_PUBLIC_KEY_FILE: .*missing\.pem is not a readable PEM public key/);
    await expect(createAuthenticator(loadConfig({ ...testAuthEnv, AUTH_JWT_PUBLIC_KEY_FILE: rsaKey }))).rejects.toThrow(ConfigError);
    await expect(createAuthenticator(loadConfig({ ...testAuthEnv, AUTH_JWT_PUBLIC_KEY_FILE: rsaKey }))).rejects.toThrow(/AUTH_JWT_ALGORITHMS: none of ES256 fits the rsa key/);
    await expect(createAuthenticator(loadConfig({ ...testAuthEnv, AUTH_JWT_PUBLIC_KEY_FILE: rsaKey, AUTH_JWT_ALGORITHMS: 'RS256' }))).resolves.toBeDefined();
  });
});
