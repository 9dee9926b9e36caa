/**
 * A real payment service for tests: its own freshly migrated database, the real Redis, listening
 * on a free port of 127.0.0.1. Workflow and activity tests call it over HTTP like the worker does.
 */
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { PaymentDatabase } from '../../db/payment/schema';
import { buildPaymentApp } from '../../services/payment/app';
import type { Config } from '../../lib/config';
import type { ServiceApp } from '../../services/shared/http/app';
import { createMetricsRegistry } from '../../lib/metrics';
import { connectRedis } from '../../lib/redis';
import { asOperator, asWorker, type AuthHeaders } from './auth';
import { createTestDatabase, type TestDatabase } from './database';
import { testConfig } from './stack';

export interface TestPaymentService {
  /** Its database, also as the worker reaches it (oms_worker), e.g. for an outbox relay under test. */
  database: TestDatabase<'payment'>;
  app: ServiceApp;
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  db: Kysely<PaymentDatabase>;
  redis: Redis;
  config: Config;
  /** Authorization of an operator: accounts, payments, API refunds. */
  operator: AuthHeaders;
  /** Authorization of the saga worker: the payment TCC and the order refund. */
  worker: AuthHeaders;
  /** The authorization the real caller of `url` holds: the worker for the TCC and order-refund routes, an operator otherwise. */
  authFor: (url: string) => AuthHeaders;
  close: () => Promise<void>;
}

/** The routes the saga worker calls (activities/payment.ts). */
const WORKER_ROUTES = /^\/payments\/(try$|confirm\/|cancel\/|cancel-by-order\/|refund-by-order\/)/;

/** `overrides` are configuration variables, e.g. { RESERVATION_TTL_SECONDS: '1' }. */
export async function startTestPaymentService(overrides: Record<string, string> = {}): Promise<TestPaymentService> {
  const config = testConfig(overrides);
  const database = await createTestDatabase('payment');
  const redis = await connectRedis(config);
  const app = await buildPaymentApp({ config, db: database.db, redis, logger: false, metrics: createMetricsRegistry('payment-service-test') });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const operator = await asOperator();
  return {
    app,
    url,
    database,
    db: database.db,
    redis,
    config,
    operator,
    worker: asWorker(),
    authFor: (path) => (WORKER_ROUTES.test(path) ? asWorker() : operator),
    close: async () => {
      await app.close();
      await redis.quit();
      await database.destroy();
    },
  };
}
