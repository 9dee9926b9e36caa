/**
 * Identities for tests: a key pair made when this module loads (its public key in a temp file the
 * test services are configured with, see testAuthEnv), tokens signed with it, and the worker's
 * service credential. Tests call the services as their real callers would.
 */
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, type JWTPayload } from 'jose';
import { signAccessToken } from '../../infra/dev-auth';

export const TEST_JWT_ISSUER = 'https://issuer.oms.test/';
export const TEST_JWT_AUDIENCE = 'oms-test-api';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
export const testSigningKey: KeyObject = keys.privateKey;
const dir = mkdtempSync(join(tmpdir(), 'oms-test-auth-'));
const publicKeyFile = join(dir, 'jwt-public.pem');
writeFileSync(publicKeyFile, keys.publicKey.export({ type: 'spki', format: 'pem' }));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Configuration that makes a service trust this module's key and worker credential. */
export const testAuthEnv = {
  AUTH_JWT_ISSUER: TEST_JWT_ISSUER,
  AUTH_JWT_AUDIENCE: TEST_JWT_AUDIENCE,
  AUTH_JWT_ALGORITHMS: 'ES256',
  AUTH_JWT_PUBLIC_KEY_FILE: publicKeyFile,
  WORKER_SERVICE_TOKEN: `test-worker-credential-${randomUUID()}`,
} as const;

// An hour: longer than any suite, so no test meets an expiry it did not ask for.
const settings = { issuer: TEST_JWT_ISSUER, audience: TEST_JWT_AUDIENCE, ttlSeconds: 3_600 };

export type AuthHeaders = { authorization: string };

export const bearer = (token: string): AuthHeaders => ({ authorization: `Bearer ${token}` });

export function customerToken(customerId: string, ttlSeconds = settings.ttlSeconds): Promise<string> {
  return signAccessToken(testSigningKey, { customerId }, { ...settings, ttlSeconds });
}

/** The principal operatorToken() stands for by default (e.g. to find its Idempotency-Key records). */
export const testOperator = { kind: 'operator', subject: 'test-operator' } as const;

export function operatorToken(subject: string = testOperator.subject): Promise<string> {
  return signAccessToken(testSigningKey, { operator: subject }, settings);
}

/** Authorization headers of a signed-in customer. */
export async function asCustomer(customerId: string): Promise<AuthHeaders> {
  return bearer(await customerToken(customerId));
}

/** Authorization headers of an operator (sees and acts on everything). */
export async function asOperator(): Promise<AuthHeaders> {
  return bearer(await operatorToken());
}

/** The principal asWorker() stands for (its name is what keys its Idempotency-Key records). */
export const testWorker = { kind: 'service', name: 'saga-worker', scopes: [] } as const;

/** Authorization headers of the saga worker (TCC, restock, order refunds; nothing else). */
export const asWorker = (): AuthHeaders => bearer(testAuthEnv.WORKER_SERVICE_TOKEN);

/**
 * A token built claim by claim, for the tests that show what is refused: `expiresIn: null` leaves
 * out `exp`; `key`/`algorithm` sign with something the services do not trust.
 */
export function craftToken(
  claims: JWTPayload,
  {
    issuer = TEST_JWT_ISSUER,
    audience = TEST_JWT_AUDIENCE,
    expiresIn = '10m',
    algorithm = 'ES256',
    key = testSigningKey,
  }: { issuer?: string; audience?: string; expiresIn?: string | number | null; algorithm?: string; key?: KeyObject | Uint8Array } = {},
): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: algorithm, typ: 'JWT' }).setIssuer(issuer).setAudience(audience).setIssuedAt();
  if (expiresIn !== null) jwt = jwt.setExpirationTime(expiresIn);
  return jwt.sign(key);
}
