/**
 * `./oms bench`: load against the running stack (`./oms up`), through the public API. Scenarios
 * (all by default, in this order, in one run so their ratios are comparable on a noisy machine):
 *
 *   open     `--orders` orders posted by `--concurrency` callers as fast as accepted, then every saga
 *            awaited: POST /orders latency, accepted/s, saga end to end (order timestamps), sagas/s
 *   closed   `--clients` callers, each places an order and waits for its saga to end (PAID) before
 *            placing the next, for `--closed-orders` orders in all: sagas/s and end to end latency
 *            from the POST to the saga's result
 *   ceiling  the same closed loop straight against Temporal, on a task queue of its own served by a
 *            worker in this process that runs the real createOrder/tccPayment code with no-op
 *            activities: what the engine allows for this saga shape here and now
 *   shapes   the same closed loop on two minimal workflows with the saga's seven no-op local
 *            activities, in one workflow and split around a child: what the child itself costs
 *
 * The summary prints closed-loop sagas/s as a fraction of the ceiling, and for each scenario the CPU
 * each process of the stack used (% of one core), which says what saturates.
 *
 * It creates its own product (stock for every order) and customers with accounts (at most 100 orders
 * each, so the per-customer rate limit never refuses the bench), so every
 * order should end PAID; any other outcome is reported and the exit code is 1. Loopback only;
 * bounded in count and time. Signs in with the development key pair (`./oms up` made it).
 */
import { randomUUID } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { ensureDevKeyPair, loadDevSigningKey, signAccessToken } from '../../infra/dev-auth';
import { loadConfig } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import type { createOrder } from '../../workflows/create-order';
import { createOrderWorkflowId } from '../../workflows/order-contract';
import { startEngineCeiling } from './engine-ceiling';
import { ENGINE_SHAPES, startEngineShapes, type EngineShape } from './engine-shapes';
import { cpuBetween, sampleCpu } from './process-cpu';

const SCENARIOS = ['open', 'closed', 'ceiling', 'shapes'] as const;
type Scenario = (typeof SCENARIOS)[number];
const USAGE = `usage: ./oms bench [--scenarios open,closed,ceiling,shapes] [--orders N] [--concurrency C] [--closed-orders N] [--clients K] [--shared-stack]

scenarios (default: all four, in one run):
  open     --orders orders (1..5000, default 200) posted by --concurrency callers (1..200, default 20),
           then every saga awaited: POST /orders latency and accepted/s, saga end to end and sagas/s
  closed   --clients callers (1..200, default 10) each place an order and wait for PAID before the
           next, --closed-orders orders in all (1..5000, default 300): sagas/s, p50/p95 POST to PAID
  ceiling  the closed loop with the same clients and count, straight against Temporal, running the
           real saga workflows with no-op activities on a task queue of its own: the engine's ceiling
  shapes   the same closed loop on two minimal workflows with the saga's seven no-op local activities,
           all in one workflow and split around a child workflow: what the child itself costs
the summary gives closed-loop sagas/s as a fraction of the ceiling, the child's cost as a ratio, and
CPU per process per scenario. Sagas still running from an earlier run (./oms bench accept leaves
them) are waited for first; --shared-stack starts at once (a stack other work is using, as in tests).`;

const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: SCENARIOS.join(',') },
    orders: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '20' },
    'closed-orders': { type: 'string', default: '300' },
    clients: { type: 'string', default: '10' },
    'shared-stack': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const scenarios = values.scenarios.split(',').map((s) => s.trim()) as Scenario[];
const orders = Number(values.orders);
const concurrency = Number(values.concurrency);
const closedOrders = Number(values['closed-orders']);
const clients = Number(values.clients);
const within = (n: number, max: number) => Number.isInteger(n) && n >= 1 && n <= max;
if (!scenarios.every((s) => SCENARIOS.includes(s)) || !within(orders, 5_000) || !within(concurrency, 200) || !within(closedOrders, 5_000) || !within(clients, 200)) {
  console.error(USAGE);
  process.exit(2);
}

const config = loadConfig();
const runDir = join(process.env.OMS_STATE_DIR ?? '.oms', 'run');
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

function latencies(label: string, samplesMs: number[]): string {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const f = (n: number) => `${Math.round(n)} ms`;
  return `${label.padEnd(30)} p50 ${f(percentile(sorted, 50))}  p95 ${f(percentile(sorted, 95))}  p99 ${f(percentile(sorted, 99))}  max ${f(sorted.at(-1) ?? NaN)}`;
}

const line = (label: string, text: string) => console.log(`${label.padEnd(30)} ${text}`);

/** Runs `scenario` (or one part of it), printing the CPU each process used while it ran. */
async function measured<T>(scenario: string, run: () => Promise<T>): Promise<T> {
  console.log(`\n== ${scenario}`);
  const before = sampleCpu(runDir);
  const result = await run();
  const usage = cpuBetween(before, sampleCpu(runDir));
  line('CPU, % of one core', usage.map(({ name, percentOfCore }) => `${name} ${Math.round(percentOfCore)}`).join(', '));
  return result;
}

/**
 * `clients` loops, each running `one` until `total` runs were taken: completed/s and each run's
 * latency. `one` resolves null when its saga ended PAID, else what happened instead.
 */
async function closedLoop(total: number, one: () => Promise<string | null>): Promise<{ perSecond: number; latenciesMs: number[]; failures: Map<string, number> }> {
  const latenciesMs: number[] = [];
  let taken = 0;
  const failures = new Map<string, number>();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (taken < total) {
        taken += 1;
        const t0 = performance.now();
        const failure = await one().catch((error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error)));
        if (failure === null) latenciesMs.push(performance.now() - t0);
        else failures.set(failure, (failures.get(failure) ?? 0) + 1);
      }
    }),
  );
  return { perSecond: latenciesMs.length / ((performance.now() - started) / 1000), latenciesMs, failures };
}

const runId = randomUUID().slice(0, 8);
const needsStack = scenarios.includes('open') || scenarios.includes('closed');
const totalOrders = (scenarios.includes('open') ? orders : 0) + (scenarios.includes('closed') ? closedOrders : 0);
console.log(`Benchmark ${runId}: scenarios ${scenarios.join(', ')} on ${cpus().length} cores (${cpus()[0]?.model}), ${Math.round(totalmem() / 2 ** 30)} GiB, ${new Date().toISOString()}`);

/**
 * The customers the orders are placed as, in turn: at most 100 orders each, so the per-customer rate
 * limit (120 a minute by default) never refuses the bench, whatever its pace.
 */
const ORDERS_PER_CUSTOMER = 100;
const customers: Record<string, string>[] = [];
let productId = '';

/** PENDING orders whose saga has not finished, as the order service's admission control last counted them (its /metrics). */
async function sagaBacklog(): Promise<number> {
  const text = await (await fetch(`${config.ORDER_SERVICE_URL}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  let total = 0;
  for (const match of text.matchAll(/^oms_order_saga_backlog\{[^}]*\} (\d+)$/gm)) total += Number(match[1]);
  return total;
}

/**
 * Sagas left running by an earlier run (`./oms bench accept` does not wait for its orders' sagas)
 * would share the worker and Temporal with this one's and make its figures meaningless: wait for
 * them first, up to ten minutes.
 */
async function waitForEarlierSagas(): Promise<void> {
  const deadline = Date.now() + 600_000;
  let backlog = await sagaBacklog();
  if (backlog === 0) return;
  console.log(`waiting for ${backlog} sagas of an earlier run to finish first`);
  while (backlog > 0) {
    if (Date.now() > deadline) {
      console.error(`${backlog} sagas of an earlier run still unfinished after ten minutes; see ./oms status and the Web UI`);
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    backlog = await sagaBacklog();
  }
}

if (needsStack) {
  if (!values['shared-stack']) await waitForEarlierSagas();
  const product = await post<{ id: string }>(`${config.PRODUCT_SERVICE_URL}/products`, {
    sku: `BENCH-${runId}`,
    name: `Benchmark item ${runId}`,
    price: '1.00',
    currency: 'USD',
    stockQuantity: totalOrders,
  });
  if (product.status !== 201) {
    console.error('could not create the benchmark product:', product);
    process.exit(1);
  }
  productId = product.body.id;
  for (let i = 0; i < Math.ceil(totalOrders / ORDERS_PER_CUSTOMER); i++) {
    const customer = await post<{ id: string }>(`${config.ORDER_SERVICE_URL}/customers`, { name: `Bench ${runId} ${i}`, email: `bench-${runId}-${i}@example.com` });
    const account = await post(`${config.PAYMENT_SERVICE_URL}/accounts`, { customerId: customer.body.id, balance: `${ORDERS_PER_CUSTOMER}.00`, currency: 'USD' });
    if (customer.status !== 201 || account.status !== 201) {
      console.error('could not create a benchmark customer and account:', customer, account);
      process.exit(1);
    }
    customers.push({ authorization: `Bearer ${await signAccessToken(signingKey, { customerId: customer.body.id }, tokenSettings)}` });
  }
}

let ordersPlaced = 0;
/** Places one order as the next customer in turn; `asOwner` reads it back (another customer's order is a 404). */
async function placeOrder(): Promise<{ status: number; id?: string; asOwner: Record<string, string> }> {
  const asOwner = customers[Math.floor(ordersPlaced++ / ORDERS_PER_CUSTOMER) % customers.length]!;
  const response = await post<{ id: string }>(
    `${config.ORDER_SERVICE_URL}/orders`,
    { items: [{ productId, quantity: 1 }] },
    { ...asOwner, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
  );
  return response.status === 202 ? { status: response.status, id: response.body.id, asOwner } : { status: response.status, asOwner };
}

let allPaid = true;
const results: Partial<Record<Scenario, number>> = {};

if (scenarios.includes('open')) {
  await measured('open', async () => {
    const requestLatencies: number[] = [];
    const orderIds: string[] = [];
    const owners = new Map<string, Record<string, string>>();
    const refused: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < orders) {
          next += 1;
          const t0 = performance.now();
          const placed = await placeOrder();
          requestLatencies.push(performance.now() - t0);
          if (placed.id) {
            orderIds.push(placed.id);
            owners.set(placed.id, placed.asOwner);
          }
          else refused.push(placed.status);
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
          const response = await fetch(`${config.ORDER_SERVICE_URL}/orders/${id}`, { headers: owners.get(id) });
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
    results.open = finals.size / allDoneSeconds;

    console.log(latencies('POST /orders latency', requestLatencies));
    line('POST /orders throughput', `${(orderIds.length / acceptedSeconds).toFixed(1)} accepted/s (${refused.length} refused${refused.length ? `: ${refused.join(',')}` : ''})`);
    console.log(latencies('createOrder saga end to end', [...finals.values()].map((f) => f.sagaMs)));
    line('saga throughput', `${results.open.toFixed(1)} completed/s over ${allDoneSeconds.toFixed(1)} s`);
    line('outcomes', `${JSON.stringify(outcomes)}${finals.size < orderIds.length ? `, ${orderIds.length - finals.size} unfinished after 10 min` : ''}`);
    if (outcomes.PAID !== orders) allPaid = false;
  });
}

if (scenarios.includes('closed')) {
  const connection = await Connection.connect(temporalConnectionOptions(config));
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  /** The saga's result; its start may trail the 202 (a starter draining intents), so "not found yet" is waited out. */
  async function sagaResult(orderId: string): Promise<{ status: string }> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        return await temporal.workflow.getHandle<typeof createOrder>(createOrderWorkflowId(orderId)).result();
      } catch (error) {
        if (!(error instanceof WorkflowNotFoundError) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }
  await measured('closed', async () => {
    const outcome = await closedLoop(closedOrders, async () => {
      const placed = await placeOrder();
      if (!placed.id) return `POST /orders answered ${placed.status}`;
      const { status } = await sagaResult(placed.id);
      return status === 'PAID' ? null : `ended ${status}`;
    });
    results.closed = outcome.perSecond;
    const notPaid = [...outcome.failures.values()].reduce((a, b) => a + b, 0);
    line('closed loop', `${clients} clients, ${closedOrders} orders, ${notPaid} not PAID${notPaid ? ` ${JSON.stringify(Object.fromEntries(outcome.failures))}` : ''}`);
    console.log(latencies('POST to PAID', outcome.latenciesMs));
    line('saga throughput', `${outcome.perSecond.toFixed(1)} completed/s`);
    if (notPaid > 0) allPaid = false;
  });
  await connection.close();
}

if (scenarios.includes('ceiling')) {
  const ceiling = await startEngineCeiling(config);
  try {
    await measured('ceiling', async () => {
      const outcome = await closedLoop(closedOrders, () => ceiling.runOneSaga().then(() => null));
      results.ceiling = outcome.perSecond;
      line('closed loop, no-op activities', `${clients} clients, ${closedOrders} sagas${outcome.failures.size ? `, failed: ${JSON.stringify(Object.fromEntries(outcome.failures))}` : ''}`);
      console.log(latencies('start to result', outcome.latenciesMs));
      line('engine ceiling', `${outcome.perSecond.toFixed(1)} completed/s`);
    });
  } finally {
    await ceiling.close();
  }
}

const shapeRates: Partial<Record<EngineShape, number>> = {};
if (scenarios.includes('shapes')) {
  const shapes = await startEngineShapes(config);
  try {
    for (const shape of Object.keys(ENGINE_SHAPES) as EngineShape[]) {
      await measured(`shapes: ${shape}`, async () => {
        const outcome = await closedLoop(closedOrders, () => shapes.runOne(shape).then(() => null));
        shapeRates[shape] = outcome.perSecond;
        line('closed loop, 7 no-op local', `${clients} clients, ${closedOrders} workflows${outcome.failures.size ? `, failed: ${JSON.stringify(Object.fromEntries(outcome.failures))}` : ''}`);
        console.log(latencies('start to result', outcome.latenciesMs));
        line('engine rate', `${outcome.perSecond.toFixed(1)} completed/s`);
      });
    }
  } finally {
    await shapes.close();
  }
}

console.log('\n== summary');
for (const scenario of SCENARIOS) if (results[scenario] !== undefined) line(`${scenario} sagas/s`, results[scenario].toFixed(1));
if (results.closed !== undefined && results.ceiling !== undefined) line('closed / ceiling', (results.closed / results.ceiling).toFixed(2));
const { 'one workflow': flat, 'parent + child': split } = shapeRates;
if (flat !== undefined && split !== undefined) line('parent + child / one workflow', `${(split / flat).toFixed(2)} (${split.toFixed(1)} vs ${flat.toFixed(1)} workflows/s)`);
line('all orders PAID', allPaid ? 'yes' : 'NO');
process.exit(allPaid ? 0 : 1);
