/**
 * The saga worker: order workflows (createOrder, cancelOrder, tccPayment) and the activities they
 * call, on the orders task queue. Dependencies are built by the caller (workers/main.ts or a test);
 * the participants' HTTP clients are built here from configuration unless passed in.
 */
import { Client } from '@temporalio/client';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import type { Kysely } from 'kysely';
import { Registry } from 'prom-client';
import { openWorkerDatabase } from '../db/databases';
import type { OrderDatabase } from '../db/order/schema';
import { createDiagnosticsActivities } from '../activities/diagnostics';
import { createJsonHttpClient, type JsonHttpClient } from '../activities/http';
import { createOrderActivities } from '../activities/order';
import { createPaymentActivities } from '../activities/payment';
import { createSagaPolicyActivities } from '../activities/saga-policy';
import { createStockActivities } from '../activities/stock';
import type { Config } from '../lib/config';
import { createSagaMetrics, type SagaMetrics } from './saga-metrics';
import { baseWorkerOptions } from './worker-options';

export interface SagaWorkerDependencies {
  orderDb: Kysely<OrderDatabase>;
  products: JsonHttpClient;
  payments: JsonHttpClient;
}

export interface SagaWorkerOptions {
  connection: NativeConnection;
  config: Config;
  identity: string;
  /** Overrides the configured task queue (tests use one per suite). */
  taskQueue?: string;
  /** Overrides any dependency built from config (tests point at their own databases and services). */
  dependencies?: Partial<SagaWorkerDependencies>;
  /** Where the saga metrics go; without it they are kept in a registry nobody serves. */
  sagaMetrics?: SagaMetrics;
}

/**
 * Slots of the saga worker. The sagas' calls are local activities now, so they take the activity
 * budget (WORKER_MAX_CONCURRENT_ACTIVITIES) as local activity slots; the cache, pollers and the
 * remaining slots keep the SDK's defaults, which no setting we measured beat (docs/benchmarks.md).
 */
export function sagaWorkerTuning(config: Config): Partial<WorkerOptions> {
  return {
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    maxConcurrentLocalActivityExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
  };
}

export async function createSagaWorker({
  connection,
  config,
  identity,
  taskQueue = config.TEMPORAL_TASK_QUEUE,
  dependencies = {},
  sagaMetrics = createSagaMetrics(new Registry(), new Client({ connection, namespace: config.TEMPORAL_NAMESPACE })),
}: SagaWorkerOptions): Promise<Worker> {
  // The worker's own credential: TCC, restock and order refunds, nothing else.
  const http = { credential: config.WORKER_SERVICE_TOKEN, timeoutMs: config.HTTP_CLIENT_TIMEOUT_MS };
  const orderDb = dependencies.orderDb ?? openWorkerDatabase(config, 'order', 'oms-saga-worker');
  const products = dependencies.products ?? createJsonHttpClient({ ...http, baseUrl: config.PRODUCT_SERVICE_URL });
  const payments = dependencies.payments ?? createJsonHttpClient({ ...http, baseUrl: config.PAYMENT_SERVICE_URL });
  return Worker.create({
    ...(await baseWorkerOptions({ connection, config, identity, taskQueue })),
    ...sagaWorkerTuning(config),
    activities: {
      ...createSagaPolicyActivities(config),
      ...createDiagnosticsActivities({ workerIdentity: identity }),
      ...createOrderActivities({ db: orderDb }),
      ...createStockActivities({ products }),
      ...createPaymentActivities({ payments }),
    },
    sinks: sagaMetrics.sinks,
  });
}
