/**
 * Development sign-in, for trying the API by hand:
 *
 *   tsx infra/auth-cli.ts keys                     create the development key pair if missing; print its public key file
 *   tsx infra/auth-cli.ts token --customer <id> [--ttl 1h]
 *   tsx infra/auth-cli.ts token --operator [--subject NAME] [--ttl 1h]
 *                                                  print a signed access token (`./oms token ...`)
 *
 * Tokens carry AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE as the services read them from the same environment.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfig } from '../lib/config';
import { DEV_JWT_ALGORITHM, ensureDevKeyPair, loadDevSigningKey, signAccessToken, type TokenSubject } from './dev-auth';

const USAGE = 'usage: ./oms token --customer <customer id> [--ttl 1h] | --operator [--subject NAME] [--ttl 1h]';
const UNITS = { s: 1, m: 60, h: 3_600, d: 86_400 } as const;
const MAX_TTL_SECONDS = 30 * 86_400;

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

/** "90", "90s", "15m", "1h", "7d" to seconds. */
function parseTtl(text: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text);
  if (!match) fail(`--ttl ${text}: expected a number with an optional unit s, m, h or d (e.g. 1h)`);
  const seconds = Number(match[1]) * UNITS[(match[2] || 's') as keyof typeof UNITS];
  if (seconds < 1 || seconds > MAX_TTL_SECONDS) fail(`--ttl ${text}: must be between 1s and 30d`);
  return seconds;
}

async function printToken(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { customer: { type: 'string' }, operator: { type: 'boolean' }, subject: { type: 'string' }, ttl: { type: 'string', default: '1h' } },
    strict: true,
  });
  if (Boolean(values.customer) === Boolean(values.operator)) fail(USAGE);
  let who: TokenSubject;
  if (values.customer !== undefined) {
    // The services accept only the canonical form as a customer subject.
    if (!z.uuid().safeParse(values.customer).success) fail(`--customer ${values.customer}: expected a customer id (a UUID)`);
    who = { customerId: values.customer.toLowerCase() };
  } else {
    who = { operator: values.subject ?? 'dev-operator' };
  }
  const config = loadConfig();
  if (config.AUTH_JWKS_URL) console.error('warning: AUTH_JWKS_URL is set, so the services trust your identity provider, not this development key');
  if (!config.AUTH_JWT_ALGORITHMS.includes(DEV_JWT_ALGORITHM)) console.error(`warning: AUTH_JWT_ALGORITHMS does not include ${DEV_JWT_ALGORITHM}, the development key's algorithm`);
  ensureDevKeyPair();
  const token = await signAccessToken(loadDevSigningKey(), who, {
    issuer: config.AUTH_JWT_ISSUER,
    audience: config.AUTH_JWT_AUDIENCE,
    ttlSeconds: parseTtl(values.ttl),
  });
  console.log(token);
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'keys': {
    const { publicKey, created } = ensureDevKeyPair();
    if (created) console.error(`created the development key pair in ${publicKey.replace(/\/[^/]+$/, '/')}`);
    console.log(publicKey);
    break;
  }
  case 'token':
    try {
      await printToken(rest);
    } catch (error) {
      fail(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    }
    break;
  default:
    fail(`usage: tsx infra/auth-cli.ts keys | token ...\n${USAGE}`);
}
