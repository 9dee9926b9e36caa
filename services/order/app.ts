/** Order service (8084): customers and the order API; starts and queries the order sagas on Temporal. */
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { peerServiceCheck, postgresCheck, redisCheck, temporalCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import { createAuthenticator } from '../shared/http/auth';
import { registerIdempotency } from '../shared/http/idempotency-plugin';
import type { ServiceContext } from '../shared/run-service';
import { startAdmissionControl } from './admission';
import { createOrderSagas, type OrderSagas } from './order-sagas';
import { createProductCatalog } from './product-catalog';
import { customerRoutes } from './routes/customers';
import { orderRoutes } from './routes/orders';
import { orderTimelineRoutes } from './timeline';

export type OrderAppDependencies = Omit<ServiceContext<'order'>, 'logger'> & {
  logger: Logger | false;
  temporal: Client;
};

/** The saga client of the order API (cancel, confirm, saga view) and of the worker's saga starter. */
export function orderSagasFor(temporal: Client, config: OrderAppDependencies['config'], { requestEagerStart = false } = {}): OrderSagas {
  return createOrderSagas({
    client: temporal,
    config,
    requestEagerStart,
    callTimeoutMs: config.HTTP_CLIENT_TIMEOUT_MS,
  });
}

export async function buildOrderApp({ config, db, redis, logger, metrics, temporal }: OrderAppDependencies) {
  const app = await buildServiceApp({
    service: 'order',
    description: 'Customers and orders. Placing, confirming and cancelling an order runs a saga on Temporal.',
    logger,
    metrics,
    authenticator: await createAuthenticator(config),
    config,
    redis,
    healthChecks: [
      postgresCheck(db),
      redisCheck(redis),
      temporalCheck(temporal),
      peerServiceCheck('product-service', config.PRODUCT_SERVICE_URL),
    ],
  });

  await registerIdempotency(app, { namespace: 'order', db, redis, config });
  const admission = startAdmissionControl({
    db,
    registry: metrics,
    maxBacklog: config.ORDER_ADMISSION_MAX_BACKLOG,
    retryAfterSeconds: config.ORDER_ADMISSION_RETRY_AFTER_SECONDS,
    refreshMs: config.ORDER_ADMISSION_REFRESH_MS,
    log: app.log,
  });
  app.addHook('onClose', async () => admission.stop());
  await admission.refresh().catch((error: unknown) => app.log.warn({ err: error }, 'counting the saga backlog failed'));
  await app.register(customerRoutes, { db });
  await app.register(orderRoutes, {
    db,
    catalog: createProductCatalog({ db, baseUrl: config.PRODUCT_SERVICE_URL, timeoutMs: config.HTTP_CLIENT_TIMEOUT_MS }),
    sagas: orderSagasFor(temporal, config),
    admission,
    idempotencyTtlHours: config.IDEMPOTENCY_TTL_HOURS,
    maxOpenCheckouts: config.MAX_OPEN_CHECKOUTS_PER_CUSTOMER,
  });
  await app.register(orderTimelineRoutes, { db });
  return app;
}
