import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ensureDevKeyPair } from '../../infra/dev-auth';
import { loadConfig } from '../../lib/config';
import { createAuthenticator } from '../../services/shared/http/auth';

const run = promisify(execFile);

describe('development sign-in (infra/dev-auth.ts, ./oms token)', () => {
  it('creates the key pair once, the private key readable by its owner only', () => {
    const state = mkdtempSync(join(tmpdir(), 'oms-dev-auth-'));
    const first = ensureDevKeyPair(state);
    expect(first.created).toBe(true);
    expect(statSync(first.privateKey).mode & 0o777).toBe(0o600);
    const publicPem = readFileSync(first.publicKey, 'utf8');
    const again = ensureDevKeyPair(state);
    expect(again).toEqual({ ...first, created: false });
    expect(readFileSync(again.publicKey, 'utf8')).toBe(publicPem);
  });

  it('lets one of several processes racing to create it win, never mixing halves of two pairs', async () => {
    const state = mkdtempSync(join(tmpdir(), 'oms-dev-auth-'));
    const script = "import('./infra/dev-auth.ts').then(({ ensureDevKeyPair }) => console.log(ensureDevKeyPair(process.argv[1]).created))";
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => run(process.execPath, ['--import', 'tsx', '-e', script, state]).then(({ stdout }) => stdout.trim())));
    expect(outcomes.filter((created) => created === 'true')).toHaveLength(1);
    const { privateKey, publicKey } = ensureDevKeyPair(state);
    const derived = createPublicKey(createPrivateKey(readFileSync(privateKey, 'utf8'))).export({ type: 'spki', format: 'pem' });
    expect(derived).toBe(readFileSync(publicKey, 'utf8'));
  }, 60_000);

  it("prints tokens the services accept, with the development key and the configured issuer and audience", async () => {
    const state = mkdtempSync(join(tmpdir(), 'oms-dev-auth-'));
    const env = { ...process.env, OMS_STATE_DIR: state, NODE_ENV: 'development', AUTH_JWT_ISSUER: 'https://issuer.example/', AUTH_JWT_AUDIENCE: 'oms-try' };
    const token = async (...args: string[]) => (await run(process.execPath, ['--import', 'tsx', 'infra/auth-cli.ts', 'token', ...args], { env })).stdout.trim();
    const customerId = '0d9a3c1e-0000-4000-8000-00000000c001';
    const [customer, operator] = await Promise.all([token('--customer', customerId.toUpperCase(), '--ttl', '5m'), token('--operator', '--subject', 'ada-ops')]);

    const { publicKey } = ensureDevKeyPair(state);
    const authenticator = await createAuthenticator(loadConfig({ ...env, AUTH_JWT_PUBLIC_KEY_FILE: publicKey }));
    await expect(authenticator.authenticate(customer)).resolves.toEqual({ kind: 'customer', customerId, subject: customerId });
    await expect(authenticator.authenticate(operator)).resolves.toEqual({ kind: 'operator', subject: 'ada-ops' });

    await expect(token('--customer', 'not-a-uuid')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('expected a customer id') as unknown });
    await expect(token('--operator', '--ttl', '90d')).rejects.toMatchObject({ code: 2 });
  }, 60_000);
});
