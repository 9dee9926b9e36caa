/**
 * infra/monitoring is checked by Prometheus's own tool (promtool, from Debian's prometheus package,
 * which `./oms test` installs): the configuration and its rule file load, every alert fires on the
 * series shaped like ours in alerts.test.yml and stays quiet on healthy ones, and every OMS metric
 * the alerts and the Grafana dashboard query is one the code really exports.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../../lib/metrics';
import { createConsumerMetrics, createOutboxMetrics } from '../../workers/outbox-relay/metrics';
import { createTccMetrics } from '../../services/shared/tcc-metrics';
import { createSagaMetrics } from '../../workers/saga-metrics';

const monitoring = fileURLToPath(new URL('../../infra/monitoring/', import.meta.url));

function promtool(...args: string[]): string {
  const result = spawnSync('promtool', args, { cwd: monitoring, encoding: 'utf8' });
  if (result.error) throw new Error(`promtool could not run (${result.error.message}); install it with: infra/install.sh prometheus`);
  expect(result.status, `promtool ${args.join(' ')}\n${result.stdout}${result.stderr}`).toBe(0);
  return result.stdout + result.stderr;
}

/** Every metric name our processes register, with the series names a histogram adds. */
function exportedMetricNames(): Set<string> {
  const registry = new Registry();
  createOutboxMetrics(registry);
  createConsumerMetrics(registry);
  createTccMetrics(registry, { participant: 'stock', countActiveReservations: () => Promise.resolve(0) });
  // A lazy client: registering the gauge connects to nothing.
  createSagaMetrics(registry, new Client());
  const http = createMetricsRegistry('names');
  const names = new Set<string>();
  for (const metric of [...registry.getMetricsAsArray(), ...http.getMetricsAsArray()]) {
    names.add(metric.name);
    if (metric.constructor.name === 'Histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
  }
  // The HTTP histogram is created per app by the metrics plugin.
  for (const suffix of ['', '_bucket', '_sum', '_count']) names.add(`oms_http_request_duration_seconds${suffix}`);
  return names;
}

const omsNamesIn = (text: string) => new Set([...text.matchAll(/\boms_[a-z_]+\b/g)].map((m) => m[0]));

describe('infra/monitoring', () => {
  it('promtool is installed (./oms test installs the prometheus package)', () => {
    expect(execFileSync('promtool', ['--version'], { encoding: 'utf8' })).toMatch(/promtool, version \d+\.\d+/);
  });

  it('prometheus.yml is a valid configuration whose rule file loads', () => {
    expect(promtool('check', 'config', 'prometheus.yml')).toMatch(/SUCCESS: 1 rule files found/);
  });

  it('alerts.yml has the eight alerts, each valid', () => {
    expect(promtool('check', 'rules', 'alerts.yml')).toMatch(/SUCCESS: 8 rules found/);
    const alerts = [...readFileSync(`${monitoring}alerts.yml`, 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    expect(alerts.sort()).toEqual(
      ['ConsumerLagHigh', 'ConsumerStalled', 'OutboxBacklog', 'OutboxRelayStalled', 'SagaCompensationFailed', 'SagaHighFailureRate', 'ServiceDown', 'TCCTimeoutSpike'].sort(),
    );
  });

  it('every alert fires on the series in alerts.test.yml, and only when it should', () => {
    expect(promtool('test', 'rules', 'alerts.test.yml')).toMatch(/SUCCESS/);
  });

  it('the alerts and the dashboard only query metrics the code exports', () => {
    const exported = exportedMetricNames();
    for (const file of ['alerts.yml', 'grafana/dashboards/oms.json']) {
      const queried = omsNamesIn(readFileSync(`${monitoring}${file}`, 'utf8'));
      expect(queried.size, file).toBeGreaterThan(5);
      expect([...queried].filter((name) => !exported.has(name)), file).toEqual([]);
    }
  });
});
