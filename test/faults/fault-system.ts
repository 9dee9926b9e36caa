/**
 * A whole small OMS for the fault suite, all real and all its own: the saga harness (fresh order,
 * product and payment databases, both participant services, each behind a fault proxy), the outbox
 * relay workflows of the three databases on a relay task queue, and a timeline consumer in its own
 * Kafka group. The shared infrastructure is never stopped: faults are injected through the proxies,
 * by killing this system's own processes and database connections, and by pointing the relay at a
 * Kafka that is not there. After each fault the invariant checker (infra/ops/invariants.ts, the code
 * behind `./oms check`) must find nothing wrong.
 *
 * Load and fault timing come from a seeded generator: FAULT_SEED (default 1) picks the first seed,
 * FAULT_RUNS (default 1) how many seeds each scenario runs, FAULT_ORDERS (default 6) the orders per
 * run; FAULT_SUITE=full runs every scenario, not only the short set. `./oms test faults --seed N
 * --runs M --orders K` sets them all (docs/reliability.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { Admin, Kafka } from 'kafkajs';
import type { Kysely } from 'kysely';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { inject } from 'vitest';
import type { SharedTables } from '../../db/shared-tables';
import { checkInvariantsSettled, type InvariantSources, type Violation } from '../../infra/ops/invariants';
import { createKafka } from '../../services/shared/kafka';
import { createConsumerMetrics } from '../../services/shared/outbox-relay-metrics';
import { ORDER_TIMELINE_TOPICS, startOrderTimelineConsumer, type RunningConsumer } from '../../workers/order-events-consumer';
import { buildOutboxRelayDependencies, createOutboxWorker } from '../../workers/outbox-worker';
import { workflowSource } from '../../workers/workflow-bundle';
import type { CreateOrderInput, SagaTimeouts } from '../../workflows/order-contract';
import { OUTBOX_DATABASES } from '../../workflows/outbox-relay-contract';
import { outboxRelayWorkflow } from '../../workflows/outbox-relay';
import { testAuthEnv } from '../helpers/auth';
import type { TestDatabase } from '../helpers/database';
import { terminateConnections } from '../helpers/database';
import { positionGroupAtEnd } from '../helpers/kafka-probe';
import { seededRandom } from '../helpers/random';
import { testConfig } from '../helpers/stack';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';
import { createCustomer, createProduct, orderRow, placeOrder, startCreateOrder, startSagaHarness, type SagaHarness } from '../workflows/saga-harness';

function positiveIntegerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

export const FAULT_SEED = positiveIntegerFromEnv('FAULT_SEED', 1);
export const FAULT_RUNS = positiveIntegerFromEnv('FAULT_RUNS', 1);
export const FAULT_ORDERS = positiveIntegerFromEnv('FAULT_ORDERS', 6);
/** The seeds each scenario runs with, one test per seed, so a failure names the seed that replays it. */
export const FAULT_SEEDS = Array.from({ length: FAULT_RUNS }, (_, index) => FAULT_SEED + index);

/**
 * Retries generous enough that 30% of calls failing never exhausts a forward step (0.3^10), with
 * an activity deadline above the worker's HTTP timeout (5 s) so a late answer fails the attempt
 * by the client's timeout, as in production.
 */
export const FAULT_TIMEOUTS: SagaTimeouts = {
  activityStartToCloseMs: 15_000,
  maximumAttempts: 10,
  compensationMaximumAttempts: 30,
  compensationRetryHorizonMs: 10 * 60_000,
  initialRetryIntervalMs: 100,
  maximumRetryIntervalMs: 1_000,
};

/** Relay runs short and heartbeats tight, so a dead relay's activity moves on within seconds. */
const RELAY_INPUT = { runForMs: 5_000, heartbeatTimeoutMs: 3_000, retryMaxIntervalMs: 1_000 } as const;
const RELAY_CONFIG = { OUTBOX_POLL_INTERVAL_MS: '250', OUTBOX_RETRY_BASE_MS: '100', OUTBOX_RETRY_MAX_MS: '1000' };

export interface RunningProcess {
  /** SIGKILL, and wait until the process is gone. */
  kill: () => Promise<void>;
}

export interface InProcessWorker {
  stop: () => Promise<void>;
}

export interface FaultSystem {
  harness: SagaHarness;
  temporal: TestTemporal;
  sources: InvariantSources;
  /** The saga worker in this process; scenarios stop it to run a killable one instead. */
  sagaWorker: InProcessWorker | undefined;
  startSagaWorker: () => Promise<void>;
  stopSagaWorker: () => Promise<void>;
  /** A saga worker in a child process on the same task queue. */
  spawnSagaWorker: () => Promise<RunningProcess>;
  /** The relay worker in this process; `kafka` defaults to the real broker. */
  startRelayWorker: (kafka?: Kafka) => Promise<InProcessWorker>;
  stopRelayWorker: () => Promise<void>;
  hasRelayWorker: () => boolean;
  /** A relay worker for the three databases in a child process on the relay task queue. */
  spawnRelayWorker: () => Promise<RunningProcess>;
  /** The names of this system's three databases (for pg_terminate_backend). */
  databaseNames: string[];
  killDatabaseConnections: () => Promise<number>;
  close: () => Promise<void>;
}

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/**
 * The workflow code, bundled once by this process and written where child workers load it
 * (OMS_WORKFLOW_BUNDLE): bundling in each child would cost every kill scenario many seconds.
 */
let bundlePath: Promise<string> | undefined;
function sharedWorkflowBundle(): Promise<string> {
  bundlePath ??= (async () => {
    const { workflowBundle } = await workflowSource(undefined);
    const path = join(mkdtempSync(join(tmpdir(), 'oms-faults-')), 'workflow-bundle.js');
    writeFileSync(path, (workflowBundle as { code: string }).code);
    return path;
  })();
  return bundlePath;
}

async function spawnReady(script: string, env: Record<string, string>): Promise<RunningProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      TEMPORAL_ADDRESS: inject('stack').TEMPORAL_ADDRESS,
      WORKER_SERVICE_TOKEN: testAuthEnv.WORKER_SERVICE_TOKEN,
      OMS_WORKFLOW_BUNDLE: await sharedWorkflowBundle(),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/^READY$/m.test(output)) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`${script} exited (${code ?? signal}) before READY`)));
  });
  return {
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function runInProcess(worker: Worker): InProcessWorker {
  const running = worker.run();
  return {
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

export async function startFaultSystem(suite: string): Promise<FaultSystem> {
  const harness = await startSagaHarness(suite, { runWorker: false, faultyPayments: true, faultyProducts: true });
  const config = testConfig(RELAY_CONFIG);
  const kafka = createKafka(config, `test-${suite}`);
  const logger = pino({ level: 'silent' });
  const temporal = await connectTestTemporal(`${suite}-relay`);
  const databases: Record<(typeof OUTBOX_DATABASES)[number], TestDatabase<'order'> | TestDatabase<'product'> | TestDatabase<'payment'>> = {
    order: harness.order,
    product: harness.product.database,
    payment: harness.payment.database,
  };
  const outbox = (database: { worker: unknown; workerUrl: string }) => ({ db: database.worker as Kysely<SharedTables>, listener: { connectionString: database.workerUrl } });
  const relayDependencies = (relayKafka: Kafka) =>
    buildOutboxRelayDependencies(config, {
      sources: { order: outbox(databases.order), product: outbox(databases.product), payment: outbox(databases.payment) },
      kafka: relayKafka,
      logger,
      registry: new Registry(),
    });

  let relayWorker: InProcessWorker | undefined;
  const system: FaultSystem = {
    harness,
    temporal,
    sources: undefined as unknown as InvariantSources,
    sagaWorker: undefined,
    startSagaWorker: async () => {
      const { stop } = await harness.startWorker();
      system.sagaWorker = { stop };
    },
    stopSagaWorker: async () => {
      await system.sagaWorker?.stop();
      system.sagaWorker = undefined;
    },
    spawnSagaWorker: () =>
      spawnReady(fixture('saga-worker.ts'), {
        OMS_TEST_TASK_QUEUE: harness.temporal.taskQueue,
        WORKER_ORDER_DATABASE_URL: harness.order.workerUrl,
        PRODUCT_SERVICE_URL: harness.productProxy!.url,
        PAYMENT_SERVICE_URL: harness.paymentProxy!.url,
      }),
    startRelayWorker: async (relayKafka = kafka) => {
      const worker = await createOutboxWorker({
        connection: temporal.workerConnection,
        config,
        identity: `fault-relay-${randomUUID()}`,
        dependencies: relayDependencies(relayKafka),
        taskQueue: temporal.taskQueue,
      });
      relayWorker = runInProcess(worker);
      return relayWorker;
    },
    stopRelayWorker: async () => {
      await relayWorker?.stop();
      relayWorker = undefined;
    },
    hasRelayWorker: () => relayWorker !== undefined,
    spawnRelayWorker: () =>
      spawnReady(fixture('outbox-worker.ts'), {
        ...RELAY_CONFIG,
        OMS_TEST_TASK_QUEUE: temporal.taskQueue,
        OMS_TEST_OUTBOX_DATABASES: OUTBOX_DATABASES.join(','),
        WORKER_ORDER_DATABASE_URL: databases.order.workerUrl,
        WORKER_PRODUCT_DATABASE_URL: databases.product.workerUrl,
        WORKER_PAYMENT_DATABASE_URL: databases.payment.workerUrl,
      }),
    databaseNames: Object.values(databases).map((database) => database.name),
    killDatabaseConnections: () => terminateConnections(system.databaseNames),
    close: async () => undefined,
  };

  await system.startRelayWorker();

  const relayIds: string[] = [];
  for (const database of OUTBOX_DATABASES) {
    const workflowId = `test-${suite}-relay-${database}-${randomUUID()}`;
    await temporal.client.workflow.start(outboxRelayWorkflow, { workflowId, taskQueue: temporal.taskQueue, args: [{ database, ...RELAY_INPUT }] });
    relayIds.push(workflowId);
  }

  // The timeline consumer of this system: its own group, from the topics' current end.
  const groupId = `test-${suite}-timeline-${randomUUID()}`;
  await positionGroupAtEnd(kafka, groupId, ORDER_TIMELINE_TOPICS);
  const consumer: RunningConsumer = await startOrderTimelineConsumer({
    kafka,
    db: harness.order.worker,
    logger,
    metrics: createConsumerMetrics(new Registry()),
    groupId,
    fromBeginning: false,
    retryDelayMs: 50,
  });
  const admin: Admin = kafka.admin();
  await admin.connect();
  system.sources = {
    orderDb: harness.order.db,
    productDb: harness.product.db,
    paymentDb: harness.payment.db,
    temporal: harness.temporal.client,
    kafka: admin,
    timeline: { groupId, topics: ORDER_TIMELINE_TOPICS },
    graceSeconds: 0,
    sagaBoundSeconds: 600,
  };
  await system.startSagaWorker();

  system.close = async () => {
    await admin.disconnect();
    await consumer.stop();
    for (const id of relayIds) await temporal.client.workflow.getHandle(id).terminate('fault suite over').catch(() => undefined);
    await system.stopRelayWorker();
    await system.stopSagaWorker();
    await temporal.close();
    await harness.close();
  };
  return system;
}

export interface Load {
  customerId: string;
  orders: CreateOrderInput[];
  handles: WorkflowHandle[];
}

/**
 * Places `orders` orders (one or two lines over three products, one to three units each) for one
 * customer and starts their sagas together. `balance` decides the outcome: enough for every order
 * (the default), or too little for any (every saga declines at the payment try and compensates).
 */
export async function placeLoad(system: FaultSystem, random: () => number, { orders = FAULT_ORDERS, balance }: { orders?: number; balance?: string } = {}): Promise<Load> {
  const { harness } = system;
  const customerId = await createCustomer(harness, { balance: balance ?? `${orders * 100}.00` });
  const products = await Promise.all([0, 1, 2].map(() => createProduct(harness, orders * 6, '5.00')));
  const inputs: CreateOrderInput[] = [];
  for (let index = 0; index < orders; index++) {
    const chosen = random() < 0.5 ? [products[Math.floor(random() * 3)]!] : [products[0]!, products[1 + Math.floor(random() * 2)]!];
    const lines = chosen.map((productId) => ({ productId, quantity: 1 + Math.floor(random() * 3), unitPriceMinor: 500 }));
    const input = await placeOrder(harness, { customerId, lines });
    inputs.push({ ...input, timeouts: FAULT_TIMEOUTS });
  }
  const handles = await Promise.all(inputs.map((input) => startCreateOrder(harness, input)));
  return { customerId, orders: inputs, handles };
}

/** Waits for every saga of the load to close and returns the orders' statuses, counted. */
export async function settleLoad(system: FaultSystem, load: Load): Promise<Record<string, number>> {
  await Promise.all(load.handles.map((handle) => handle.result().catch(() => undefined)));
  const counts: Record<string, number> = {};
  for (const input of load.orders) {
    const { status } = await orderRow(system.harness, input.orderId);
    counts[status] = (counts[status] ?? 0) + 1;
  }
  return counts;
}

/** The invariant checker once the system has had time to finish its retries, backlog and lag. */
export function invariantViolations(system: FaultSystem): Promise<Violation[]> {
  return checkInvariantsSettled(system.sources, 120);
}

/** Resolves once `count` requests after the first `from` of a proxy's log match, or throws after `timeoutMs`. */
export async function waitForRequests(
  log: readonly { method: string; path: string; fault: string }[],
  { from = 0, count, matches = () => true, what }: { from?: number; count: number; matches?: (entry: { method: string; path: string; fault: string }) => boolean; what: string },
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const seen = () => log.slice(from).filter(matches).length;
  while (seen() < count) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${count} ${what}; saw ${seen()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export { seededRandom };
