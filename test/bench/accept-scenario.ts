/**
 * The accept scenario: POST /orders sustained for a fixed time at a fixed number of connections
 * (autocannon), with valid signed tokens of many customers (the per-customer rate limit counts
 * each customer on its own; RATE_LIMIT_PER_CUSTOMER_PER_MINUTE is 120 by default, so the scenario
 * spreads the load over enough customers to stay under it). Sagas run meanwhile: the worker starts
 * each accepted order's saga as it drains the start intents. Reports accepted requests per second
 * and p50 / p95 / p99 of every answer's latency, what else was answered, and (with the stack's run
 * directory) the CPU each process used, per second and per accepted order: what saturates.
 *
 * Used by `./oms bench accept` (accept-bench.ts, against the running stack) and by its smoke test.
 */
import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { cpuBetween, sampleCpu } from './process-cpu';

export interface AcceptScenarioOptions {
  orderUrl: string;
  productUrl: string;
  paymentUrl: string;
  /** Authorization header value of an operator (creates the product, customers and accounts). */
  operatorAuthorization: string;
  /** A signed customer access token. */
  customerToken: (customerId: string) => Promise<string>;
  durationSeconds: number;
  connections: number;
  customers: number;
  /** Where `./oms up` keeps its pid files: the CPU of each process is measured over the run when given. */
  runDir?: string;
}

export interface AcceptScenarioResult {
  durationSeconds: number;
  connections: number;
  customers: number;
  accepted: number;
  acceptedPerSecond: number;
  /** Answers other than 202, by status ("error" for a request that got none). */
  refused: Record<string, number>;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** % of one core each process used during the run, busiest first, and its CPU milliseconds per accepted order. */
  cpu: { name: string; percentOfCore: number; msPerAccepted: number }[];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

async function postJson(url: string, authorization: string, body: unknown): Promise<{ status: number; body: { id?: string } }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: (await response.json()) as { id?: string } };
}

/** One product with stock for every order the run could place, and `customers` customers with money for theirs. */
async function prepare(options: AcceptScenarioOptions): Promise<{ productId: string; tokens: string[] }> {
  const runId = randomUUID().slice(0, 8);
  // Generous: far more than the machine can accept in the time, so no saga fails for stock.
  const ordersAtMost = options.durationSeconds * 5_000;
  const product = await postJson(`${options.productUrl}/products`, options.operatorAuthorization, {
    sku: `ACCEPT-${runId}`,
    name: `Accept benchmark item ${runId}`,
    price: '1.00',
    currency: 'USD',
    stockQuantity: ordersAtMost,
  });
  if (product.status !== 201 || !product.body.id) throw new Error(`could not create the benchmark product: ${product.status}`);
  const tokens: string[] = [];
  const balance = `${Math.ceil(ordersAtMost / options.customers) + 1}.00`;
  for (let first = 0; first < options.customers; first += 20) {
    const batch = Array.from({ length: Math.min(20, options.customers - first) }, async (_, index) => {
      const customer = await postJson(`${options.orderUrl}/customers`, options.operatorAuthorization, { name: `Accept ${runId}`, email: `accept-${runId}-${first + index}@example.com` });
      if (customer.status !== 201 || !customer.body.id) throw new Error(`could not create a benchmark customer: ${customer.status}`);
      const account = await postJson(`${options.paymentUrl}/accounts`, options.operatorAuthorization, { customerId: customer.body.id, balance, currency: 'USD' });
      if (account.status !== 201) throw new Error(`could not open a benchmark account: ${account.status}`);
      return options.customerToken(customer.body.id);
    });
    tokens.push(...(await Promise.all(batch)));
  }
  return { productId: product.body.id, tokens };
}

export async function runAcceptScenario(options: AcceptScenarioOptions): Promise<AcceptScenarioResult> {
  const { productId, tokens } = await prepare(options);
  const body = JSON.stringify({ items: [{ productId, quantity: 1 }] });
  const latencies: number[] = [];
  const refused: Record<string, number> = {};
  let accepted = 0;
  let next = 0;

  const cpuBefore = options.runDir === undefined ? undefined : sampleCpu(options.runDir);
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.orderUrl,
        connections: options.connections,
        duration: options.durationSeconds,
        requests: [
          {
            method: 'POST',
            path: '/orders',
            // Each request as the next customer in turn, so no customer comes near its rate limit.
            setupRequest: (request) => ({
              ...request,
              headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[next++ % tokens.length]}` },
              body,
            }),
          },
        ],
      },
      (error: unknown, done: autocannon.Result) => (error ? reject(error instanceof Error ? error : new Error('autocannon failed', { cause: error })) : resolve(done)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      latencies.push(responseTime);
      if (statusCode === 202) accepted += 1;
      else refused[String(statusCode)] = (refused[String(statusCode)] ?? 0) + 1;
    });
  });
  const cpu = cpuBefore && options.runDir !== undefined ? cpuBetween(cpuBefore, sampleCpu(options.runDir)) : [];
  if (result.errors > 0) refused.error = result.errors;
  if (result.timeouts > 0) refused.timeout = result.timeouts;
  const sorted = latencies.sort((a, b) => a - b);
  return {
    durationSeconds: options.durationSeconds,
    connections: options.connections,
    customers: options.customers,
    accepted,
    acceptedPerSecond: accepted / result.duration,
    refused,
    latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN },
    cpu: cpu.map(({ name, percentOfCore }) => ({ name, percentOfCore, msPerAccepted: accepted > 0 ? (10 * percentOfCore * result.duration) / accepted : NaN })),
  };
}

export function formatAcceptResult(result: AcceptScenarioResult): string {
  const { p50, p95, p99, max } = result.latencyMs;
  const f = (ms: number) => `${ms.toFixed(1)} ms`;
  const refused = Object.entries(result.refused);
  return [
    `POST /orders, ${result.connections} connections, ${result.durationSeconds} s, ${result.customers} customers`,
    `  accepted        ${result.acceptedPerSecond.toFixed(1)} req/s (${result.accepted} orders)`,
    `  latency         p50 ${f(p50)}  p95 ${f(p95)}  p99 ${f(p99)}  max ${f(max)}`,
    `  not accepted    ${refused.length === 0 ? 'none' : refused.map(([status, n]) => `${n} x ${status}`).join(', ')}`,
    ...(result.cpu.length === 0 ? [] : ['  CPU during the run (% of one core; CPU ms per accepted order):']),
    ...result.cpu.map(({ name, percentOfCore, msPerAccepted }) => `    ${name.padEnd(30)} ${percentOfCore.toFixed(0).padStart(4)}%  ${msPerAccepted.toFixed(2).padStart(7)} ms`),
  ].join('\n');
}
