/**
 * infra/monitoring.sh (what `./oms up --monitoring` runs): Prometheus from the apt package, started
 * in a private state directory on a private port so the developer's own stays untouched. It loads
 * the alert rules, scrapes the running stack's services, worker and Temporal server, answers
 * queries, and `./oms verify` checks it; start is idempotent and stop leaves nothing running.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const PORT = 29090;
const url = `http://127.0.0.1:${PORT}`;

async function api<T>(path: string): Promise<T> {
  const body = (await (await fetch(new URL(path, url))).json()) as { status: string; data: T };
  expect(body.status).toBe('success');
  return body.data;
}

function pidAlive(pid: number): Promise<boolean> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then(
    (stat) => !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)),
    () => false,
  );
}

describe('infra/monitoring.sh', () => {
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  const monitoring = (command: string) => run('bash', ['infra/monitoring.sh', command], { env, timeout: 120_000 });

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'oms-monitoring-test-'));
    env = { ...process.env, OMS_STATE_DIR: stateDir, OMS_PROMETHEUS_PORT: String(PORT) };
    await run('bash', ['infra/install.sh', 'prometheus'], { env, timeout: 300_000 });
    await monitoring('start');
  });
  afterAll(async () => {
    await monitoring('stop').catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  });

  it('runs Prometheus with every alert rule loaded', async () => {
    const { stdout } = await monitoring('status');
    expect(stdout).toMatch(new RegExp(`^prometheus\\s+\\d+\\s+${PORT}\\s+up`));
    const { groups } = await api<{ groups: { rules: { type: string; name: string; health: string }[] }[] }>('/api/v1/rules');
    const alerts = groups.flatMap((group) => group.rules).filter((rule) => rule.type === 'alerting');
    expect(alerts.map((rule) => rule.name).sort()).toEqual(
      ['ConsumerLagHigh', 'ConsumerStalled', 'OutboxBacklog', 'OutboxRelayStalled', 'SagaCompensationFailed', 'SagaHighFailureRate', 'ServiceDown', 'TCCTimeoutSpike'].sort(),
    );
  });

  it('scrapes the three services, both worker endpoints and the Temporal server', async () => {
    const expected = ['oms-services/order-service', 'oms-services/payment-service', 'oms-services/product-service', 'oms-worker-app/worker', 'oms-worker/worker', 'temporal-server/temporal'];
    // Each target is scraped within one scrape interval of the start.
    await expect
      .poll(
        async () => {
          const { activeTargets } = await api<{ activeTargets: { labels: { job: string; service: string }; health: string }[] }>('/api/v1/targets');
          return activeTargets.filter((target) => target.health === 'up').map((target) => `${target.labels.job}/${target.labels.service}`).sort();
        },
        { timeout: 30_000, interval: 1_000 },
      )
      .toEqual(expected);
    const { result } = await api<{ result: { metric: { service: string } }[] }>(`/api/v1/query?query=${encodeURIComponent('oms_http_request_duration_seconds_count')}`);
    expect(new Set(result.map((sample) => sample.metric.service))).toEqual(new Set(['order-service', 'payment-service', 'product-service']));
  });

  it('./oms verify checks it when it is on', async () => {
    const verify = await run('npx', ['--no-install', 'tsx', 'infra/verify.ts', `--monitoring=${url}`], { env: { ...env, OMS_STATE_DIR: process.env.OMS_STATE_DIR }, timeout: 120_000 }).then(
      ({ stdout }) => stdout,
      (error: { stdout: string }) => error.stdout,
    );
    expect(verify).toMatch(/ok {4}prometheus alert rules .*\(8 alerts\)/);
    expect(verify).toMatch(/ok {4}prometheus scrapes every target \(6 targets up\)/);
    expect(verify).toMatch(/prometheus has the saga metrics/);
  });

  it('start is idempotent and stop leaves nothing running', async () => {
    const pid = Number((await readFile(join(stateDir, 'run', 'prometheus.pid'), 'utf8')).trim());
    const again = await monitoring('start');
    expect(again.stderr).toContain(`already running (pid ${pid}`);
    await monitoring('stop');
    expect(await pidAlive(pid)).toBe(false);
    await expect(fetch(`${url}/-/ready`)).rejects.toThrow();
    const status = await monitoring('status').then(
      () => 'exit 0',
      (error: { stdout: string }) => error.stdout,
    );
    expect(status).toMatch(/prometheus\s+-\s+\d+\s+down/);
  });
});
