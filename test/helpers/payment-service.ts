/**
 * A real payment service for tests: its own freshly migrated database, the real Redis, listening
 * on a free port of 127.0.0.1. Workflow and activity tests call it over HTTP like the worker does.
 */
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { PaymentDatabase } from '../../db/payment/schema';
import { buildPaymentApp } from '../../services/payment/app';
import type { Config } from '../../services/shared/config';
import type { ServiceApp } from '../../services/shared/http/app';
import { createMetricsRegistry } from '../../services/shared/metrics';
import { connectRedis } from '../../services/shared/redis';
import { createTestDatabase } from './database';
import { testConfig } from './stack';

export interface TestPaymentService {
  app: ServiceApp;
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  db: Kysely<PaymentDatabase>;
  redis: Redis;
  config: Config;
  /** The service token its internal routes require. */
  token: string;
  close: () => Promise<void>;
}

/** `overrides` are configuration variables, e.g. { RESERVATION_TTL_SECONDS: '1' }. */
export async function startTestPaymentService(overrides: Record<string, string> = {}): Promise<TestPaymentService> {
  const config = testConfig(overrides);
  const database = await createTestDatabase('payment');
  const redis = await connectRedis(config);
  const app = await buildPaymentApp({ config, db: database.db, redis, logger: false, metrics: createMetricsRegistry('payment-service-test') });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    app,
    url,
    db: database.db,
    redis,
    config,
    token: config.SERVICE_TOKEN,
    close: async () => {
      await app.close();
      await redis.quit();
      await database.destroy();
    },
  };
}
