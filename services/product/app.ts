/** Product service (8083): catalogue, stock and the stock TCC participant. */
import type { Logger } from 'pino';
import { postgresCheck, redisCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import { createAuthenticator } from '../shared/http/auth';
import { registerIdempotency } from '../shared/http/idempotency-plugin';
import type { ServiceContext } from '../shared/run-service';
import { startReservationSweeper, type ReservationSweeper } from '../shared/reservation-sweeper';
import { createTccMetrics } from '../shared/tcc-metrics';
import { countReservedOrders } from './repository';
import { productRoutes } from './routes/products';
import { stockRoutes } from './routes/stock';
import { expireStockReservations } from './stock-tcc';

export type ProductAppDependencies = Omit<ServiceContext<'product'>, 'logger'> & { logger: Logger | false };

export async function buildProductApp({ config, db, redis, logger, metrics }: ProductAppDependencies) {
  const app = await buildServiceApp({
    service: 'product',
    description: 'Catalogue and stock; TCC try/confirm/cancel for stock reservations.',
    logger,
    metrics,
    authenticator: await createAuthenticator(config),
    config,
    redis,
    healthChecks: [postgresCheck(db), redisCheck(redis)],
  });
  const tccMetrics = createTccMetrics(metrics, { participant: 'stock', countActiveReservations: () => countReservedOrders(db) });

  await registerIdempotency(app, { namespace: 'product', db, redis, config });
  await app.register(productRoutes, { db });
  await app.register(stockRoutes, { db, reservationTtlSeconds: config.RESERVATION_TTL_SECONDS, metrics: tccMetrics });

  // The sweeper runs only while the app does: it starts when the app is ready (listen or inject)
  // and stops, waiting for a sweep in progress, before the app's dependencies close.
  let sweeper: ReservationSweeper | undefined;
  app.addHook('onReady', async () => {
    sweeper = startReservationSweeper({ expireOverdue: () => expireStockReservations(db), intervalMs: config.RESERVATION_SWEEP_INTERVAL_MS, log: app.log, metrics: tccMetrics });
  });
  app.addHook('onClose', async () => sweeper?.stop());
  return app;
}
