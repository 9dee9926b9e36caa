/**
 * `./oms bench accept [--duration 10] [--connections 20] [--customers 200] [--record LABEL]`: the
 * accept scenario (accept-scenario.ts) against the running stack (`./oms up`), with the sagas of
 * the accepted orders running on the worker meanwhile. Signs in with the development key pair.
 * --record appends the result, with the machine, commit and date, to docs/benchmarks.md's
 * "Accept path" table.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDevKeyPair, loadDevSigningKey, signAccessToken } from '../../infra/dev-auth';
import { loadConfig } from '../../lib/config';
import { formatAcceptResult, runAcceptScenario, type AcceptScenarioResult } from './accept-scenario';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '20' },
    customers: { type: 'string', default: '200' },
    record: { type: 'string' },
  },
});
const durationSeconds = Number(values.duration);
const connections = Number(values.connections);
const customers = Number(values.customers);
const within = (n: number, low: number, high: number) => Number.isInteger(n) && n >= low && n <= high;
if (!within(durationSeconds, 1, 600) || !within(connections, 1, 500) || !within(customers, 1, 5_000)) {
  console.error('usage: ./oms bench accept [--duration 1..600] [--connections 1..500] [--customers 1..5000] [--record LABEL]');
  process.exit(2);
}

const config = loadConfig();
ensureDevKeyPair();
const signingKey = loadDevSigningKey();
const tokenSettings = { issuer: config.AUTH_JWT_ISSUER, audience: config.AUTH_JWT_AUDIENCE, ttlSeconds: 3_600 };
const machine = `${cpus().length} vCPU (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB`;
console.log(`Accept benchmark on ${machine}`);

const result = await runAcceptScenario({
  orderUrl: config.ORDER_SERVICE_URL,
  productUrl: config.PRODUCT_SERVICE_URL,
  paymentUrl: config.PAYMENT_SERVICE_URL,
  operatorAuthorization: `Bearer ${await signAccessToken(signingKey, { operator: 'oms-bench' }, tokenSettings)}`,
  customerToken: (customerId) => signAccessToken(signingKey, { customerId }, tokenSettings),
  durationSeconds,
  connections,
  customers,
  runDir: join(process.env.OMS_STATE_DIR ?? '.oms', 'run'),
});
console.log(formatAcceptResult(result));

if (values.record !== undefined) record(values.record, result);

/** Appends a row under the "Accept path" table of docs/benchmarks.md (the row after its last one). */
function record(label: string, run: AcceptScenarioResult): void {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const { p50, p95, p99 } = run.latencyMs;
  const refused = Object.entries(run.refused).map(([status, n]) => `${n} x ${status}`).join(', ') || 'none';
  const row = `| ${new Date().toISOString().slice(0, 16).replace('T', ' ')} | ${commit} | ${label} | ${run.connections} / ${run.durationSeconds} s | ${run.acceptedPerSecond.toFixed(0)} | ${p50.toFixed(0)} / ${p95.toFixed(0)} / ${p99.toFixed(0)} ms | ${refused} | ${machine} |`;
  const path = new URL('../../docs/benchmarks.md', import.meta.url);
  const lines = readFileSync(path, 'utf8').split('\n');
  const header = lines.findIndex((line) => line.startsWith('| date | commit | run |'));
  if (header < 0) throw new Error('docs/benchmarks.md has no Accept path table');
  let end = header + 2;
  while (lines[end]?.startsWith('|')) end += 1;
  lines.splice(end, 0, row);
  writeFileSync(path, lines.join('\n'));
  console.log(`recorded in docs/benchmarks.md: ${row}`);
}
