/**
 * The development identity provider: a key pair in $OMS_STATE_DIR/auth/ whose public half the
 * services trust (`./oms up` points AUTH_JWT_PUBLIC_KEY_FILE at it) and whose private half signs
 * the tokens `./oms token` prints. loadConfig refuses that public key outside a loopback
 * development setup, so these tokens open nothing anywhere else.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { DEV_JWT_PUBLIC_KEY_FILENAME } from '../lib/config';
import { OPERATOR_SCOPE } from '../services/shared/http/auth';

/** The development key is P-256, so the services must accept ES256 (the default of AUTH_JWT_ALGORITHMS). */
export const DEV_JWT_ALGORITHM = 'ES256';

/** $OMS_STATE_DIR, as infra/lib.sh resolves it: the variable, or .oms/ in the repository. */
export function stateDir(): string {
  return process.env.OMS_STATE_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '.oms');
}

export function devKeyFiles(state = stateDir()): { privateKey: string; publicKey: string } {
  const dir = join(state, 'auth');
  return { privateKey: join(dir, 'oms-dev-jwt-private.pem'), publicKey: join(dir, DEV_JWT_PUBLIC_KEY_FILENAME) };
}

/** Creates the development key pair unless it exists; returns its files. Safe to run again, and at once. */
export function ensureDevKeyPair(state = stateDir()): { privateKey: string; publicKey: string; created: boolean } {
  const files = devKeyFiles(state);
  if (existsSync(files.privateKey) && existsSync(files.publicKey)) return { ...files, created: false };
  const dir = dirname(files.privateKey);
  mkdirSync(dirname(dir), { recursive: true });
  // Both halves are written to a private directory that is then renamed into place: a reader never
  // sees half a pair, and of two processes racing here exactly one pair wins.
  const staging = mkdtempSync(join(dirname(dir), '.auth-'));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(staging, basename(files.privateKey)), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(staging, basename(files.publicKey)), publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  try {
    renameSync(staging, dir);
    return { ...files, created: true };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    if (existsSync(files.privateKey) && existsSync(files.publicKey)) return { ...files, created: false };
    throw new Error(`could not create the development key pair in ${dir} (${(error as Error).message}); remove that directory and retry`);
  }
}

export function loadDevSigningKey(state = stateDir()): KeyObject {
  const { privateKey } = devKeyFiles(state);
  if (!existsSync(privateKey)) throw new Error(`no development signing key at ${privateKey}; ./oms up creates it`);
  return createPrivateKey(readFileSync(privateKey, 'utf8'));
}

/** Who a token is for: a customer (its id becomes `sub`) or an operator (`scope` oms:operator). */
export type TokenSubject = { customerId: string } | { operator: string };

export interface TokenSettings {
  issuer: string;
  audience: string;
  ttlSeconds: number;
  algorithm?: string;
}

/** Signs an access token shaped as the services expect (see services/shared/http/auth.ts). */
export async function signAccessToken(key: KeyObject, who: TokenSubject, { issuer, audience, ttlSeconds, algorithm = DEV_JWT_ALGORITHM }: TokenSettings): Promise<string> {
  const claims = 'operator' in who ? { scope: OPERATOR_SCOPE } : {};
  return new SignJWT(claims)
    .setProtectedHeader({ alg: algorithm, typ: 'JWT' })
    .setSubject('operator' in who ? who.operator : who.customerId)
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key);
}
