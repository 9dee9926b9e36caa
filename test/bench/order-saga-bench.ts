/**
 * `./oms bench [--orders N] [--concurrency C]`: load against the running stack (`./oms up`), through
 * the public API, measuring what the targets in docs/design.md are stated in:
 *
 *   - POST /orders: request latency (p50/p95/p99) and accepted requests per second
 *   - the createOrder saga (draft -> customer check -> TCC stock + payment -> PAID): end-to-end latency
 *     from the order's creation to its final status, and completed sagas per second
 *
 * It creates its own product (stock = N) and customer account (enough money for N orders), so every
 * order should end PAID; any other outcome is reported. Loopback only; bounded in count and time.
 * Signs in with the development key pair (`./oms up` made it): an operator sets up, the customer orders.
 */
import { randomUUID } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureDevKeyPair, loadDevSigningKey, signAccessToken } from '../../infra/dev-auth';
import { loadConfig } from '../../services/shared/config';

const { values } = parseArgs({ options: { orders: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '20' } } });
const orders = Number(values.orders);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(orders) || orders < 1 || orders > 5_000 || !Number.isInteger(concurrency) || concurrency < 1 || concurrency > 200) {
  console.error('usage: ./oms bench [--orders 1..5000] [--concurrency 1..200]');
  process.exit(2);
}

const config = loadConfig();
ensureDevKeyPair();
const signingKey = loadDevSigningKey();
const tokenSettings = { issuer: config.AUTH_JWT_ISSUER, audience: config.AUTH_JWT_AUDIENCE, ttlSeconds: 3_600 };
const asOperator = { authorization: `Bearer ${await signAccessToken(signingKey, { operator: 'oms-bench' }, tokenSettings)}`, 'content-type': 'application/json' };

async function post<T>(url: string, body: unknown, headers: Record<string, string> = asOperator): Promise<{ status: number; body: T }> {
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  return { status: response.status, body: (await response.json()) as T };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function summary(label: string, samplesMs: number[]): string {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const f = (n: number) => `${Math.round(n)} ms`;
  return `${label.padEnd(28)} p50 ${f(percentile(sorted, 50))}  p95 ${f(percentile(sorted, 95))}  p99 ${f(percentile(sorted, 99))}  max ${f(sorted.at(-1) ?? NaN)}`;
}

const runId = randomUUID().slice(0, 8);
const product = await post<{ id: string }>(`${config.PRODUCT_SERVICE_URL}/products`, {
  sku: `BENCH-${runId}`,
  name: `Benchmark item ${runId}`,
  price: '1.00',
  currency: 'USD',
  stockQuantity: orders,
});
const customer = await post<{ id: string }>(`${config.ORDER_SERVICE_URL}/customers`, { name: `Bench ${runId}`, email: `bench-${runId}@example.com` });
const account = await post(`${config.PAYMENT_SERVICE_URL}/accounts`, { customerId: customer.body.id, balance: `${orders}.00`, currency: 'USD' });
if (product.status !== 201 || customer.status !== 201 || account.status !== 201) {
  console.error('could not create the benchmark product, customer and account:', product, customer, account);
  process.exit(1);
}

const asCustomer = { authorization: `Bearer ${await signAccessToken(signingKey, { customerId: customer.body.id }, tokenSettings)}` };

console.log(`Benchmark ${runId}: ${orders} orders, concurrency ${concurrency}, on ${cpus().length} cores (${cpus()[0]?.model}), ${Math.round(totalmem() / 2 ** 30)} GiB`);
const requestLatencies: number[] = [];
const orderIds: string[] = [];
const refused: number[] = [];
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < orders) {
      next += 1;
      const t0 = performance.now();
      const response = await post<{ id: string }>(
        `${config.ORDER_SERVICE_URL}/orders`,
        { items: [{ productId: product.body.id, quantity: 1 }] },
        { ...asCustomer, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      );
      requestLatencies.push(performance.now() - t0);
      if (response.status === 202) orderIds.push(response.body.id);
      else refused.push(response.status);
    }
  }),
);
const acceptedSeconds = (performance.now() - started) / 1000;

// Wait for every saga to finish (bounded), then read each order's end-to-end time.
const deadline = Date.now() + 10 * 60_000;
const finals = new Map<string, { status: string; sagaMs: number }>();
while (finals.size < orderIds.length && Date.now() < deadline) {
  const pending = orderIds.filter((id) => !finals.has(id));
  await Promise.all(
    pending.slice(0, 100).map(async (id) => {
      const response = await fetch(`${config.ORDER_SERVICE_URL}/orders/${id}`, { headers: asCustomer });
      const order = (await response.json()) as { status: string; createdAt: string; updatedAt: string };
      if (['PAID', 'FAILED', 'CANCELLED'].includes(order.status)) {
        finals.set(id, { status: order.status, sagaMs: Date.parse(order.updatedAt) - Date.parse(order.createdAt) });
      }
    }),
  );
  if (finals.size < orderIds.length) await new Promise((resolve) => setTimeout(resolve, 250));
}
const allDoneSeconds = (performance.now() - started) / 1000;
const outcomes = [...finals.values()].reduce<Record<string, number>>((acc, { status }) => ({ ...acc, [status]: (acc[status] ?? 0) + 1 }), {});

console.log(summary('POST /orders latency', requestLatencies));
console.log(`POST /orders throughput       ${(orderIds.length / acceptedSeconds).toFixed(1)} accepted/s (${refused.length} refused${refused.length ? `: ${refused.join(',')}` : ''})`);
console.log(summary('createOrder saga end to end', [...finals.values()].map((f) => f.sagaMs)));
console.log(`saga throughput               ${(finals.size / allDoneSeconds).toFixed(1)} completed/s over ${allDoneSeconds.toFixed(1)} s`);
console.log(`outcomes                      ${JSON.stringify(outcomes)}${finals.size < orderIds.length ? `, ${orderIds.length - finals.size} unfinished after 10 min` : ''}`);
process.exit(outcomes.PAID === orders ? 0 : 1);
