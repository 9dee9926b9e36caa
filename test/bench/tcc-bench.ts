/**
 * `./oms bench tcc [--cycles N] [--clients C]`: the TCC hot path, straight against the two
 * participants (no saga, no Temporal). One cycle is what the createOrder saga asks of them:
 * try stock and try payment in parallel, then confirm both in parallel (4 HTTP calls, 4 short
 * transactions, 4-6 outbox events). C clients run cycles back to back.
 *
 * Each client has its own product and account, so the run measures the cost of a cycle, not the
 * wait on one hot row (product-concurrency.test.ts and payment-concurrency.test.ts cover that).
 * The cycles go through the saga worker's own HTTP client and credential (activities/http.ts), so the
 * load generator costs what the worker would; setup is an operator's.
 * Prints cycles/s, latency per cycle and per call, and the CPU of each stack process per cycle.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ensureDevKeyPair, loadDevSigningKey, signAccessToken } from '../../infra/dev-auth';
import { createJsonHttpClient, type JsonHttpClient } from '../../activities/http';
import { loadConfig } from '../../lib/config';
import { formatCpu, formatLatency, isMain, latencySummary, machineLine, measureCpu, stackProcesses, type CpuSample, type LatencySummary } from './bench-stats';

export interface TccBenchOptions {
  productUrl: string;
  paymentUrl: string;
  /** Authorization header of an operator (creates the products and accounts). */
  operatorAuthorization: string;
  /** The saga worker's credential (the TCC routes): the cycles go through the worker's own client. */
  workerCredential: string;
  cycles: number;
  clients: number;
  /** Processes whose CPU is measured during the cycles (name -> pid). */
  processes?: Record<string, number>;
}

export interface TccBenchResult {
  cycles: number;
  failed: number;
  failures: string[];
  seconds: number;
  cyclesPerSecond: number;
  cycle: LatencySummary;
  calls: Record<'stockTry' | 'paymentTry' | 'stockConfirm' | 'paymentConfirm', LatencySummary>;
  cpu: CpuSample[];
}

export async function runTccBench(options: TccBenchOptions): Promise<TccBenchResult> {
  const { productUrl, paymentUrl, cycles, clients } = options;
  async function post(url: string, body: unknown, authorization: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const headers = { authorization, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const response = await fetch(url, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  // One product and one account per client, each with enough for every cycle that client may run.
  const runId = randomUUID().slice(0, 8);
  const perClient = cycles;
  const owners = await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const product = await post(`${productUrl}/products`, { sku: `TCC-BENCH-${runId}-${i}`, name: `TCC bench ${runId} ${i}`, price: '1.00', currency: 'USD', stockQuantity: perClient }, options.operatorAuthorization);
      const customerId = randomUUID();
      const account = await post(`${paymentUrl}/accounts`, { customerId, balance: `${perClient}.00`, currency: 'USD' }, options.operatorAuthorization);
      if (product.status !== 201 || account.status !== 201) throw new Error(`TCC bench setup failed: product ${product.status} ${JSON.stringify(product.body)}, account ${account.status} ${JSON.stringify(account.body)}`);
      return { productId: product.body.id as string, customerId };
    }),
  );

  const samples = { cycle: [] as number[], stockTry: [] as number[], paymentTry: [] as number[], stockConfirm: [] as number[], paymentConfirm: [] as number[] };
  const failures: string[] = [];
  const timed = async <T>(into: number[], call: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const result = await call();
    into.push(performance.now() - t0);
    return result;
  };
  const clientOptions = { credential: options.workerCredential, timeoutMs: 30_000 };
  const stockService = createJsonHttpClient({ ...clientOptions, baseUrl: productUrl });
  const paymentService = createJsonHttpClient({ ...clientOptions, baseUrl: paymentUrl });
  type Answer = { status: number; body: Record<string, unknown> };
  const call = (client: JsonHttpClient, path: string, body?: unknown) => client.post(path, body) as Promise<Answer>;

  async function cycle(owner: { productId: string; customerId: string }): Promise<void> {
    const orderId = randomUUID();
    const t0 = performance.now();
    const [stock, payment] = await Promise.all([
      timed(samples.stockTry, () => call(stockService, '/stock/try', { orderId, items: [{ productId: owner.productId, quantity: 1 }] })),
      timed(samples.paymentTry, () => call(paymentService, '/payments/try', { orderId, customerId: owner.customerId, amount: '1.00', currency: 'USD' })),
    ]);
    if (stock.status !== 201 || payment.status !== 201) {
      failures.push(`try: stock ${stock.status}, payment ${payment.status}`);
      return;
    }
    const [stockConfirmed, paymentConfirmed] = await Promise.all([
      timed(samples.stockConfirm, () => call(stockService, `/stock/confirm/${orderId}`)),
      timed(samples.paymentConfirm, () => call(paymentService, `/payments/confirm/${payment.body.reservationId as string}`, { paymentMethod: 'card' })),
    ]);
    if (stockConfirmed.status !== 200 || (paymentConfirmed.status !== 200 && paymentConfirmed.status !== 201)) {
      failures.push(`confirm: stock ${stockConfirmed.status}, payment ${paymentConfirmed.status}`);
      return;
    }
    samples.cycle.push(performance.now() - t0);
  }

  let started = 0;
  const cpu = measureCpu(options.processes ?? {});
  const t0 = performance.now();
  await Promise.all(
    owners.map(async (owner) => {
      while (started < cycles) {
        started += 1;
        await cycle(owner);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return {
    cycles: samples.cycle.length,
    failed: failures.length,
    failures: failures.slice(0, 5),
    seconds,
    cyclesPerSecond: samples.cycle.length / seconds,
    cycle: latencySummary(samples.cycle),
    calls: {
      stockTry: latencySummary(samples.stockTry),
      paymentTry: latencySummary(samples.paymentTry),
      stockConfirm: latencySummary(samples.stockConfirm),
      paymentConfirm: latencySummary(samples.paymentConfirm),
    },
    cpu: cpu.stop(),
  };
}

export function formatTccResult(result: TccBenchResult, clients: number): string[] {
  return [
    `TCC cycles (try stock + try payment, confirm both), ${clients} clients: ${result.cycles} done, ${result.failed} failed, in ${result.seconds.toFixed(1)} s`,
    `  throughput                        ${result.cyclesPerSecond.toFixed(1)} cycles/s`,
    formatLatency('  cycle', result.cycle),
    formatLatency('  POST /stock/try', result.calls.stockTry),
    formatLatency('  POST /payments/try', result.calls.paymentTry),
    formatLatency('  POST /stock/confirm/:orderId', result.calls.stockConfirm),
    formatLatency('  POST /payments/confirm/:id', result.calls.paymentConfirm),
    ...formatCpu(result.cpu, { count: result.cycles, unit: 'cycle' }),
    ...(result.failures.length > 0 ? [`  first failures: ${result.failures.join('; ')}`] : []),
  ];
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { cycles: { type: 'string', default: '2000' }, clients: { type: 'string', default: '20' } } });
  const cycles = Number(values.cycles);
  const clients = Number(values.clients);
  if (!Number.isInteger(cycles) || cycles < 1 || cycles > 1_000_000 || !Number.isInteger(clients) || clients < 1 || clients > 500) {
    console.error('usage: ./oms bench tcc [--cycles 1..1000000] [--clients 1..500]');
    process.exit(2);
  }
  const config = loadConfig();
  ensureDevKeyPair();
  const operator = await signAccessToken(loadDevSigningKey(), { operator: 'oms-bench' }, { issuer: config.AUTH_JWT_ISSUER, audience: config.AUTH_JWT_AUDIENCE, ttlSeconds: 3_600 });
  console.log(`TCC bench on ${machineLine()}`);
  const result = await runTccBench({
    productUrl: config.PRODUCT_SERVICE_URL,
    paymentUrl: config.PAYMENT_SERVICE_URL,
    operatorAuthorization: `Bearer ${operator}`,
    workerCredential: config.WORKER_SERVICE_TOKEN,
    cycles,
    clients,
    processes: { ...stackProcesses(['product-service', 'payment-service', 'worker', 'postgres', 'kafka']), 'load generator': process.pid },
  });
  for (const line of formatTccResult(result, clients)) console.log(line);
  process.exit(result.failed === 0 ? 0 : 1);
}
