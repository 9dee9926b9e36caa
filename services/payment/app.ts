/** Payment service (8085): customer accounts, the payment TCC participant, refunds. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { postgresCheck, redisCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import { registerIdempotency } from '../shared/http/idempotency-plugin';
import { requireServiceToken } from '../shared/http/service-auth';
import type { ServiceContext } from '../shared/run-service';
import { createTccMetrics } from '../shared/tcc-metrics';
import { countReservedReservations } from './repository';
import { startReservationSweeper } from './reservation-sweeper';
import { accountRoutes } from './routes/accounts';
import type { PaymentRouteOptions } from './routes/options';
import { paymentRoutes } from './routes/payments';
import { tccRoutes } from './routes/tcc';

export type PaymentAppDependencies = Omit<ServiceContext<'payment'>, 'logger'> & { logger: Logger | false };

/** Every payment route is internal: one encapsulated plugin puts them all behind the service token. */
const internalRoutes: FastifyPluginAsyncZod<PaymentRouteOptions> = async (app, options) => {
  app.addHook('onRequest', requireServiceToken(options.config.SERVICE_TOKEN));
  await app.register(accountRoutes, options);
  await app.register(tccRoutes, options);
  await app.register(paymentRoutes, options);
};

export async function buildPaymentApp({ config, db, redis, logger, metrics }: PaymentAppDependencies) {
  const app = await buildServiceApp({
    service: 'payment',
    description: 'Customer accounts; TCC try/confirm/cancel for payment holds; refunds.',
    logger,
    metrics,
    config,
    redis,
    healthChecks: [postgresCheck(db), redisCheck(redis)],
  });
  const tccMetrics = createTccMetrics(metrics, { participant: 'payment', countActiveReservations: () => countReservedReservations(db) });

  await registerIdempotency(app, { namespace: 'payment', db, redis, config });
  await app.register(internalRoutes, { db, config, metrics: tccMetrics });

  const sweeper = startReservationSweeper({ db, intervalMs: config.RESERVATION_SWEEP_INTERVAL_MS, log: app.log, metrics: tccMetrics });
  app.addHook('onClose', () => sweeper.stop());
  return app;
}
