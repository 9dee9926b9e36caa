/** Payment service (8085): customer accounts, the payment TCC participant, refunds. */
import type { Logger } from 'pino';
import { postgresCheck, redisCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import { createAuthenticator } from '../shared/http/auth';
import { registerIdempotency } from '../shared/http/idempotency-plugin';
import type { ServiceContext } from '../shared/run-service';
import { createTccMetrics } from '../shared/tcc-metrics';
import { countReservedReservations } from './repository';
import { startReservationSweeper } from './reservation-sweeper';
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

  const sweeper = startReservationSweeper({ db, intervalMs: config.RESERVATION_SWEEP_INTERVAL_MS, log: app.log, metrics: tccMetrics });
  app.addHook('onClose', () => sweeper.stop());
  return app;
}
