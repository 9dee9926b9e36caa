import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

// A second, private copy of the whole stack on other ports and in its own state directory, so the
// scripts' promises (start is idempotent, stop leaves nothing running) are checked for real without
// touching the stack the other suites use.
const ports = { pg: 25432, redis: 26379, kafka: 29092, kafkaController: 29093, temporal: 27233, ui: 28233, http: 27243, metrics: 27244 };

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Running, not a zombie: an exited server may stay a zombie until pid 1 reaps it. */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

describe('infra/stack.sh on a fresh state directory', () => {
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  const stack = (...args: string[]) => run('bash', ['infra/stack.sh', ...args], { env, timeout: 240_000 });
  const pids = async () => {
    const { stdout } = await stack('status');
    return Object.fromEntries(
      stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/))
        .map(([component, pid, , state]) => [component, { pid: Number(pid), state }]),
    ) as Record<string, { pid: number; state: string }>;
  };

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'oms-stack-test-'));
    // The postgres user must be able to reach its data directory inside.
    await chmod(stateDir, 0o755);
    env = {
      ...process.env,
      OMS_STATE_DIR: stateDir,
      OMS_PG_PORT: String(ports.pg),
      OMS_REDIS_PORT: String(ports.redis),
      OMS_KAFKA_PORT: String(ports.kafka),
      OMS_KAFKA_CONTROLLER_PORT: String(ports.kafkaController),
      OMS_TEMPORAL_PORT: String(ports.temporal),
      OMS_TEMPORAL_UI_PORT: String(ports.ui),
      OMS_TEMPORAL_HTTP_PORT: String(ports.http),
      OMS_TEMPORAL_METRICS_PORT: String(ports.metrics),
    };
  });
  afterAll(async () => {
    await stack('stop').catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  });

  it('starts every component, and a second start changes nothing', async () => {
    await stack('start');
    const first = await pids();
    expect(Object.keys(first).sort()).toEqual(['kafka', 'postgres', 'redis', 'temporal']);
    for (const [component, { state, pid }] of Object.entries(first)) {
      expect(state, component).toBe('up');
      expect(pidAlive(pid), component).toBe(true);
    }
    const { stderr } = await stack('start');
    expect(stderr.match(/already running/g)).toHaveLength(4);
    expect(await pids()).toEqual(first);
  });

  it('stop leaves no process of ours running and no port open', async () => {
    const before = await pids();
    await stack('stop');
    for (const [component, { pid }] of Object.entries(before)) expect(pidAlive(pid), component).toBe(false);
    for (const [name, port] of Object.entries(ports)) expect(await portOpen(port), `${name} port ${port}`).toBe(false);
    await expect(stack('status')).rejects.toMatchObject({ code: 1 });
  });
});
