/**
 * A real order service for tests: its own freshly migrated order database, the real Redis and
 * Temporal, listening on a free port, pricing orders from the product service at `productUrl`, and
 * a saga starter draining its start intents into sagas on `taskQueue` (a worker for that queue runs
 * them; without one they wait), as the worker process does for the real service.
 */
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { OrderDatabase } from '../../db/order/schema';
import { buildOrderApp, orderSagasFor } from '../../services/order/app';
import type { OrderSagas } from '../../services/order/order-sagas';
import type { Config } from '../../lib/config';
import type { ServiceApp } from '../../services/shared/http/app';
import { createMetricsRegistry } from '../../lib/metrics';
import { connectRedis } from '../../lib/redis';
import { databaseOptions } from '../../db/databases';
import { createSagaStartRound, startSagaStarter, type SagaStarter, type StartOutcome } from '../../workers/saga-starter';
import { asCustomer, asOperator, type AuthHeaders } from './auth';
import { createTestDatabase } from './database';
import { testConfig } from './stack';
import type { TestTemporal } from './temporal';

export interface TestOrderService {
  url: string;
  app: ServiceApp;
  db: Kysely<OrderDatabase>;
  databaseUrl: string;
  /** The same database as the worker reaches it (oms_worker), for a saga worker under test. */
  workerDb: Kysely<OrderDatabase>;
  /** Authorization of an operator: creating customers, and every order. */
  operator: AuthHeaders;
  /** Authorization of a signed-in customer: their own orders only. */
  asCustomer: (customerId: string) => Promise<AuthHeaders>;
  config: Config;
  sagas: OrderSagas;
  /** One claim-and-start round of a saga starter over this service's database (whether or not one runs). */
  drainSagaStarts: () => Promise<Record<StartOutcome, number>>;
  close: () => Promise<void>;
}

export interface TestOrderServiceOptions {
  productUrl: string;
  temporal: Pick<TestTemporal, 'client'>;
  taskQueue: string;
  /** Extra configuration (e.g. CHECKOUT_HOLD_TTL_SECONDS for hold-expiry tests). */
  config?: Record<string, string>;
  /** A second instance of a running service: same database (left to that service to drop). */
  sharedDatabaseOf?: Pick<TestOrderService, 'db' | 'databaseUrl' | 'workerDb'>;
  /** Run a saga starter as the worker process does (default); false: intents wait for drainSagaStarts(). */
  sagaStarter?: boolean;
}

export async function startTestOrderService({
  productUrl,
  temporal,
  taskQueue,
  config: overrides = {},
  sharedDatabaseOf,
  sagaStarter = true,
}: TestOrderServiceOptions): Promise<TestOrderService> {
  const database = sharedDatabaseOf
    ? { db: sharedDatabaseOf.db, url: sharedDatabaseOf.databaseUrl, worker: sharedDatabaseOf.workerDb, destroy: () => Promise.resolve() }
    : await createTestDatabase('order');
  const config = testConfig({
    PRODUCT_SERVICE_URL: productUrl,
    TEMPORAL_TASK_QUEUE: taskQueue,
    ORDER_DATABASE_URL: database.url,
    IDEMPOTENCY_CLEANUP_INTERVAL_MS: '3600000',
    ...overrides,
  });
  let redis: Redis | undefined;
  let app: ServiceApp | undefined;
  try {
    redis = await connectRedis(config);
    app = await buildOrderApp({ config, db: database.db, redis, logger: false, metrics: createMetricsRegistry('order-service-test'), temporal: temporal.client });
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const sagas = orderSagasFor(temporal.client, config);
    const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const starterOptions = { db: database.db, listener: databaseOptions(config, database.url, 'oms-test-saga-starter'), sagas, config, log: silent };
    const starter: SagaStarter | undefined = sagaStarter ? startSagaStarter(starterOptions) : undefined;
    const started = { app, redis };
    return {
      url: address,
      app,
      db: database.db,
      databaseUrl: database.url,
      workerDb: database.worker,
      operator: await asOperator(),
      asCustomer,
      config,
      sagas,
      drainSagaStarts: createSagaStartRound(starterOptions),
      close: async () => {
        await starter?.stop();
        await started.app.close();
        await started.redis.quit();
        await database.destroy();
      },
    };
  } catch (error) {
    await app?.close();
    redis?.disconnect();
    await database.destroy();
    throw error;
  }
}
