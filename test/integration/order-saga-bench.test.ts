/**
 * Smoke run of every `./oms bench` scenario with tiny counts against the running stack: the bench
 * places orders, waits for them in a closed loop, runs the engine ceiling and the engine shapes on
 * task queues of their own, and prints its summary. No timing is asserted; that the scenarios run and every order ends PAID is.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

async function bench(args: string[]): Promise<{ code: number; output: string }> {
  const { PG_ADMIN_URL: _admin, ...stack } = inject('stack');
  try {
    const { stdout } = await run('node', ['--import', 'tsx', 'test/bench/order-saga-bench.ts', ...args], { env: { ...process.env, ...stack }, timeout: 240_000 });
    return { code: 0, output: stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

describe('./oms bench', () => {
  it('lists its scenarios', async () => {
    const { code, output } = await bench(['--help']);
    expect(code).toBe(0);
    expect(output).toMatch(/^ {2}open /m);
    expect(output).toMatch(/^ {2}closed /m);
    expect(output).toMatch(/^ {2}ceiling /m);
    expect(output).toMatch(/^ {2}shapes /m);
  });

  // The child process starts its own ceiling worker and bundles the workflows; the bound is its
  // own 240 s, not the suite's default 120 s, which it outran on a busy machine (load 11).
  it('runs the open loop, the closed loop and the engine ceiling in one run', { timeout: 300_000 }, async () => {
    const { code, output } = await bench(['--shared-stack', '--scenarios', 'open,closed,ceiling', '--orders', '2', '--concurrency', '1', '--closed-orders', '2', '--clients', '1']);
    expect(output).toContain('== open');
    expect(output).toContain('== closed');
    expect(output).toContain('== ceiling');
    expect(output).toMatch(/closed \/ ceiling +\d+\.\d\d/);
    expect(output).toMatch(/all orders PAID +yes/);
    expect(code).toBe(0);
  });

  it('runs the engine shapes, one workflow and parent + child, and prints their ratio', { timeout: 300_000 }, async () => {
    const { code, output } = await bench(['--shared-stack', '--scenarios', 'shapes', '--closed-orders', '2', '--clients', '1']);
    expect(output).toContain('== shapes: one workflow');
    expect(output).toContain('== shapes: parent + child');
    expect(output).toMatch(/parent \+ child \/ one workflow +\d+\.\d\d \(\d+\.\d vs \d+\.\d workflows\/s\)/);
    expect(code).toBe(0);
  });

  it('refuses a count out of range, printing its usage', async () => {
    const { code, output } = await bench(['--clients', '0']);
    expect(code).toBe(2);
    expect(output).toContain('usage: ./oms bench');
  });
});
