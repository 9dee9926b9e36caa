/**
 * The fault suite: a whole private OMS (private-stack.ts, started with the project's own scripts at
 * a port offset), loaded through its public API (shop.ts: POST /orders, then GET /orders/:id until
 * each order's end state), one fault injected per scenario while the load runs, the system left to
 * recover, and at the end the invariant checker (infra/ops/invariants.ts, the code of `./oms check`)
 * reading the three databases, Kafka and Temporal must find nothing wrong.
 *
 * Load and fault timing come from a seeded generator: FAULT_SEED (default 1) is the first seed,
 * FAULT_RUNS (default 1) how many seeds each scenario runs, FAULT_ORDERS (default 6) the orders per
 * run. FAULT_SUITE=full runs every scenario and rewrites the results table of docs/reliability.md;
 * otherwise only the short set runs (what `./oms test` includes). `./oms test faults --seed N
 * --runs M --orders K` sets them all.
 */
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkInvariantsSettled, connectInvariantSources, type Violation } from '../../infra/ops/invariants';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import { OUTBOX_DATABASES, OUTBOX_RELAY_WORKFLOW_TYPE, OUTBOX_TASK_QUEUE } from '../../workflows/outbox-relay-contract';
import type { FaultRule } from '../helpers/fault-proxy';
import { eventually } from '../helpers/kafka-probe';
import { seededRandom } from '../helpers/random';
import { startPrivateStack, type App, type PrivateStack } from './private-stack';
import { recordResult, writeResultsSection } from './reliability-report';
import { countStatuses, END_STATUSES, openShop, placeOrdersDuring, type Shop } from './shop';

function positiveIntegerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

const FAULT_SEED = positiveIntegerFromEnv('FAULT_SEED', 1);
const FAULT_RUNS = positiveIntegerFromEnv('FAULT_RUNS', 1);
const FAULT_ORDERS = positiveIntegerFromEnv('FAULT_ORDERS', 6);
/** The seeds each scenario runs with, one test per seed, so a failure names the seed that replays it. */
const FAULT_SEEDS = Array.from({ length: FAULT_RUNS }, (_, index) => FAULT_SEED + index);
const FULL = process.env.FAULT_SUITE === 'full';

/** How long the load's orders may take to reach their end once the fault is over, and the checker to see the system settled. */
const SETTLE_MS = 600_000;
const CHECK_WAIT_SECONDS = 240;
const SCENARIO_TIMEOUT_MS = 1_200_000;
/** How long Kafka stays stopped (the 30 s) and Redis stays stopped. */
const KAFKA_OUTAGE_MS = 30_000;
const REDIS_OUTAGE_MS = 15_000;

const TCC_OR_REFUND = /^\/(stock|payments)\/(try|confirm|cancel|cancel-by-order|restock|refund-by-order)\b/;
const PASS: FaultRule = () => 'pass';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let stack: PrivateStack;

/** `./oms check` on the private stack, waiting for it to settle: the violations it still finds. */
async function invariantViolations(): Promise<Violation[]> {
  const { sources, close } = await connectInvariantSources(stack.config, { graceSeconds: 0, sagaBoundSeconds: 900 });
  try {
    return await checkInvariantsSettled(sources, CHECK_WAIT_SECONDS);
  } finally {
    await close();
  }
}

interface Verdict {
  shop: Shop;
  orderIds: string[];
  statuses: Map<string, string>;
  inFlightAtFault: number;
}

/**
 * Places FAULT_ORDERS orders through the API, runs `fault` once a seeded number of them has been
 * accepted (beside the rest of the load), and waits until every order has reached `wanted`.
 */
async function loadWithFault(
  label: string,
  random: () => number,
  fault: (accepted: readonly string[]) => Promise<void>,
  { balance, wanted }: { balance?: string; wanted?: ReadonlySet<string> } = {},
): Promise<Verdict> {
  const shop = await openShop(stack, label, { units: FAULT_ORDERS * 6, balance });
  const faultAfter = 1 + Math.floor(random() * Math.ceil(FAULT_ORDERS / 2));
  let inFlightAtFault = 0;
  const orderIds = await placeOrdersDuring(shop, random, { count: FAULT_ORDERS, faultAfter }, async (accepted) => {
    const statuses = await shop.statuses(accepted);
    inFlightAtFault = accepted.filter((id) => !END_STATUSES.has(statuses.get(id) ?? 'PENDING')).length;
    await fault(accepted);
  });
  const statuses = await shop.settled(orderIds, SETTLE_MS, wanted).catch(() => shop.statuses(orderIds));
  return { shop, orderIds, statuses, inFlightAtFault };
}

/** Records the scenario's row of the results table, then asserts: every order ended `expected`, and no invariant is violated. */
async function judge(fault: string, seed: number, verdict: Verdict, expected: string): Promise<void> {
  // A checker that cannot read the system at all is recorded as what it found, then fails the scenario.
  const violations = await invariantViolations().catch((error: unknown): Violation[] => [{ check: 'checker-failed', subject: 'the private stack', detail: String(error) }]);
  const counts = countStatuses(verdict.statuses);
  const unfinished = verdict.orderIds.length - (counts[expected] ?? 0);
  recordResult({
    fault,
    seed,
    orders: verdict.orderIds.length,
    inFlightAtFault: verdict.inFlightAtFault,
    statuses: counts,
    clientRetries: verdict.shop.retries.count,
    violations,
    unfinished,
    passed: unfinished === 0 && violations.length === 0,
  });
  expect(counts, `order statuses, seed ${seed}`).toEqual({ [expected]: verdict.orderIds.length });
  expect(violations).toEqual([]);
}

/** A scenario runs in the full suite, and in the short set (`./oms test`) when `inShortRun`. */
const scenario = (name: string, inShortRun: boolean, body: (seed: number) => Promise<void>) => {
  if (!FULL && !inShortRun) return;
  describe.each(FAULT_SEEDS)(`${name} (seed %i)`, (seed) => {
    it('nothing is lost', { timeout: SCENARIO_TIMEOUT_MS }, () => body(seed));
  });
};

beforeAll(async () => {
  stack = await startPrivateStack();
}, 900_000);

afterAll(async () => {
  if (FULL) writeResultsSection(new Date(), `./oms test faults --seed ${FAULT_SEED} --runs ${FAULT_RUNS} --orders ${FAULT_ORDERS}`);
  await stack?.down();
}, 300_000);

const PROCESSES: { app: App; what: string; inShortRun: boolean }[] = [
  { app: 'order-service', what: 'the order service', inShortRun: false },
  { app: 'product-service', what: 'the product service', inShortRun: false },
  { app: 'payment-service', what: 'the payment service', inShortRun: false },
  { app: 'worker', what: 'the worker (sagas, saga starter, outbox relays, consumers)', inShortRun: true },
];

for (const { app, what, inShortRun } of PROCESSES) {
  const fault = `SIGKILL ${what} mid-load; restarted`;
  scenario(fault, inShortRun, async (seed) => {
    const verdict = await loadWithFault(`kill-${app}`, seededRandom(seed * 100 + PROCESSES.findIndex((entry) => entry.app === app)), async () => {
      await stack.crash(app);
      await stack.apps('start', app);
    }).finally(() => stack.apps('start', app));
    await judge(fault, seed, verdict, 'PAID');
  });
}

scenario('SIGKILL the Temporal server mid-saga; restarted on its state file', false, async (seed) => {
  const fault = 'SIGKILL the Temporal server mid-saga; restarted on its state file';
  const verdict = await loadWithFault('kill-temporal', seededRandom(seed * 100 + 10), async () => {
    await stack.crash('temporal');
    await stack.infra('start', 'temporal');
  }).finally(() => stack.infra('start', 'temporal'));
  await judge(fault, seed, verdict, 'PAID');
});

scenario('Kafka stopped for 30 s mid-load', false, async (seed) => {
  const verdict = await loadWithFault('stop-kafka', seededRandom(seed * 100 + 11), async () => {
    await stack.infra('stop', 'kafka');
    await sleep(KAFKA_OUTAGE_MS);
    await stack.infra('start', 'kafka');
  }).finally(() => stack.infra('start', 'kafka'));
  await judge('Kafka stopped for 30 s mid-load', seed, verdict, 'PAID');
});

scenario('Redis stopped for 15 s mid-load', false, async (seed) => {
  const verdict = await loadWithFault('stop-redis', seededRandom(seed * 100 + 12), async () => {
    await stack.infra('stop', 'redis');
    await sleep(REDIS_OUTAGE_MS);
    await stack.infra('start', 'redis');
  }).finally(() => stack.infra('start', 'redis'));
  await judge('Redis stopped for 15 s mid-load', seed, verdict, 'PAID');
});

scenario('PostgreSQL restarted mid-load', false, async (seed) => {
  const verdict = await loadWithFault('restart-postgres', seededRandom(seed * 100 + 13), () => stack.infra('restart', 'postgres')).finally(() =>
    stack.infra('start', 'postgres'),
  );
  await judge('PostgreSQL restarted mid-load', seed, verdict, 'PAID');
});

scenario('PostgreSQL ends every session of the three databases, five times mid-load', false, async (seed) => {
  const random = seededRandom(seed * 100 + 14);
  let ended = 0;
  const verdict = await loadWithFault('terminate-sessions', random, async () => {
    for (let round = 0; round < 5; round++) {
      ended += await stack.terminateDatabaseSessions();
      await sleep(200 + Math.floor(random() * 800));
    }
  });
  expect(ended).toBeGreaterThan(0);
  await judge('PostgreSQL ends every session of the three databases (pg_terminate_backend), five times mid-load', seed, verdict, 'PAID');
});

scenario('the participants refuse, lose the answer of, or answer late 30% of TCC and refund calls', true, async (seed) => {
  const random = seededRandom(seed * 100 + 15);
  const faults = ['refuse', 'lose-answer', 'late'] as const;
  const rule: FaultRule = ({ method, path }) => (method === 'POST' && TCC_OR_REFUND.test(path) && random() < 0.3 ? faults[Math.floor(random() * faults.length)]! : 'pass');
  const { productProxy, paymentProxy } = stack;
  const seen = productProxy.log.length + paymentProxy.log.length;
  let verdict: Verdict;
  try {
    verdict = await loadWithFault('participant-faults', random, async () => {
      productProxy.setRule(rule);
      paymentProxy.setRule(rule);
    });
  } finally {
    productProxy.setRule(PASS);
    paymentProxy.setRule(PASS);
  }
  // The faults really were injected.
  const injected = [...productProxy.log, ...paymentProxy.log].slice(seen).filter((entry) => entry.fault !== 'pass').length;
  expect(injected).toBeGreaterThan(0);
  await judge('30% of TCC and refund calls refused, answered late (after the 5 s client timeout) or with their answer lost', seed, verdict, 'PAID');
});

scenario('SIGKILL the worker while it compensates declined orders', false, async (seed) => {
  const { productProxy } = stack;
  const seen = productProxy.log.length;
  // Stock cannot be released for now: the compensations keep retrying when the worker dies.
  productProxy.setRule(({ path }) => (path.startsWith('/stock/cancel/') ? 'refuse' : 'pass'));
  let verdict: Verdict;
  try {
    // Too little money for any order: each saga reserves stock, is declined at the payment try, and compensates.
    verdict = await loadWithFault(
      'kill-while-compensating',
      seededRandom(seed * 100 + 16),
      async () => {
        await eventually(() => (productProxy.log.slice(seen).some((entry) => entry.fault === 'refuse') ? true : undefined), 300_000, 'a refused stock release', 100);
        await stack.crash('worker');
        productProxy.setRule(PASS);
        await stack.apps('start', 'worker');
      },
      { balance: '1.00' },
    );
  } finally {
    productProxy.setRule(PASS);
    await stack.apps('start', 'worker');
  }
  await judge('SIGKILL the worker while it compensates declined orders (stock releases refused until then)', seed, verdict, 'FAILED');
});

scenario('SIGKILL the worker in the middle of cancels of paid orders', false, async (seed) => {
  const { paymentProxy } = stack;
  const paid = await loadWithFault('kill-while-cancelling', seededRandom(seed * 100 + 17), async () => undefined);
  expect(countStatuses(paid.statuses)).toEqual({ PAID: paid.orderIds.length });
  const seen = paymentProxy.log.length;
  // Refunds are refused for now: every cancel stops after its stock step, retrying its refund.
  paymentProxy.setRule(({ path }) => (path.startsWith('/payments/refund-by-order/') ? 'refuse' : 'pass'));
  let statuses: Map<string, string>;
  try {
    for (const orderId of paid.orderIds) await paid.shop.cancelOrder(orderId);
    await eventually(() => (paymentProxy.log.slice(seen).filter((entry) => entry.fault === 'refuse').length >= paid.orderIds.length ? true : undefined), 300_000, 'a refused refund per order', 100);
    await stack.crash('worker');
    paymentProxy.setRule(PASS);
    await stack.apps('start', 'worker');
    statuses = await paid.shop.settled(paid.orderIds, SETTLE_MS, new Set(['CANCELLED'])).catch(() => paid.shop.statuses(paid.orderIds));
  } finally {
    paymentProxy.setRule(PASS);
    await stack.apps('start', 'worker');
  }
  await judge('SIGKILL the worker in the middle of cancels of paid orders (refunds refused until then)', seed, { ...paid, statuses, inFlightAtFault: paid.orderIds.length }, 'CANCELLED');
});

scenario('two workers on the same task queues and two relays per database', false, async (seed) => {
  const connection = await Connection.connect(temporalConnectionOptions(stack.config));
  const client = new Client({ connection, namespace: stack.config.TEMPORAL_NAMESPACE });
  const secondRelays = OUTBOX_DATABASES.map((database) => `fault-suite-second-relay-${database}_db-${seed}`);
  try {
    await stack.startSecondWorker();
    // Beside each database's own relay workflow (started by the workers): a second one on the same outbox.
    for (const [index, database] of OUTBOX_DATABASES.entries()) {
      await client.workflow.start(OUTBOX_RELAY_WORKFLOW_TYPE, { workflowId: secondRelays[index]!, taskQueue: OUTBOX_TASK_QUEUE, args: [{ database }] });
    }
    const verdict = await loadWithFault('two-of-each', seededRandom(seed * 100 + 18), async () => undefined);
    await judge('none: two workers on the same task queues and two relays per database under the same load', seed, verdict, 'PAID');
  } finally {
    for (const workflowId of secondRelays) await client.workflow.getHandle(workflowId).terminate('fault suite scenario over').catch(() => undefined);
    await connection.close();
    await stack.stopSecondWorker();
  }
});
