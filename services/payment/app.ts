/** Payment service (8085): customer accounts, the payment TCC participant, refunds. */
import type { Logger } from 'pino';
import { postgresCheck, redisCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import { createAuthenticator } from '../shared/http/auth';
import { registerIdempotency } from '../shared/http/idempotency-plugin';
import type { ServiceContext } from '../shared/run-service';
import { startReservationSweeper, type ReservationSweeper } from '../shared/reservation-sweeper';
import { createTccMetrics } from '../shared/tcc-metrics';
import { expirePaymentReservations } from './ledger';
import { countReservedReservations } from './repository';
import { accountRoutes } from './routes/accounts';
import { paymentRoutes } from './routes/payments';
import { tccRoutes } from './routes/tcc';

export type PaymentAppDependencies = Omit<ServiceContext<'payment'>, 'logger'> & { logger: Logger | false };

export async function buildPaymentApp({ config, db, redis, logger, metrics }: PaymentAppDependencies) {
  const app = await buildServiceApp({
    service: 'payment',
    description: 'Customer accounts; TCC try/confirm/cancel for payment holds; refunds.',
    logger,
    metrics,
    authenticator: await createAuthenticator(config),
    config,
    redis,
    healthChecks: [postgresCheck(db), redisCheck(redis)],
  });
  const tccMetrics = createTccMetrics(metrics, { participant: 'payment', countActiveReservations: () => countReservedReservations(db) });

  await registerIdempotency(app, { namespace: 'payment', db, redis, config });
  // No public route here: each declares who may call it (operator, the worker's scopes, a customer reading their account).
  const routeOptions = { db, config, metrics: tccMetrics };
  await app.register(accountRoutes, routeOptions);
  await app.register(tccRoutes, routeOptions);
  await app.register(paymentRoutes, routeOptions);

  // The sweeper runs only while the app does: it starts when the app is ready (listen or inject)
  // and stops, waiting for a sweep in progress, before the app's dependencies close.
  let sweeper: ReservationSweeper | undefined;
  app.addHook('onReady', async () => {
    sweeper = startReservationSweeper({ expireOverdue: () => expirePaymentReservations(db), intervalMs: config.RESERVATION_SWEEP_INTERVAL_MS, log: app.log, metrics: tccMetrics });
  });
  app.addHook('onClose', async () => sweeper?.stop());
  return app;
}
