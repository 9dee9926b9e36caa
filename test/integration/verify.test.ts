import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

async function verify(env: Record<string, string>): Promise<{ code: number; output: string }> {
  const { PG_ADMIN_URL: _admin, ...stack } = inject('stack');
  try {
    const { stdout } = await run('node', ['--import', 'tsx', 'infra/verify.ts'], { env: { ...process.env, ...stack, ...env }, timeout: 90_000 });
    return { code: 0, output: stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, output: failed.stdout ?? '' };
  }
}

describe('./oms verify', () => {
  it('passes against the running stack', async () => {
    const { code, output } = await verify({});
    expect(output).toContain('All checks passed.');
    expect(output).toMatch(/ok +kafka produce\/consume round trip/);
    expect(output).toMatch(/ok +temporal namespace default and search attributes \(OrderId, CustomerId, SagaState\)/);
    expect(code).toBe(0);
  });

  it('exits 1 naming each component that does not answer', async () => {
    const { code, output } = await verify({ REDIS_URL: 'redis://127.0.0.1:1', TEMPORAL_UI_URL: 'http://127.0.0.1:1' });
    expect(code).toBe(1);
    expect(output).toMatch(/FAIL +redis set\/get/);
    expect(output).toMatch(/FAIL +temporal web ui/);
    expect(output).toContain('2 check(s) failed: redis set/get, temporal web ui');
  });
});
