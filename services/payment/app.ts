/** Payment service (8085): customer accounts, the payment TCC participant, refunds. */
import { postgresCheck, redisCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import type { Logger } from 'pino';
import type { ServiceContext } from '../shared/run-service';

export type PaymentAppDependencies = Omit<ServiceContext<'payment'>, 'logger'> & { logger: Logger | false };

export async function buildPaymentApp({ db, redis, logger, metrics }: PaymentAppDependencies) {
  const app = await buildServiceApp({
    service: 'payment',
    description: 'Customer accounts; TCC try/confirm/cancel for payment holds; refunds.',
    logger,
    metrics,
    healthChecks: [postgresCheck(db), redisCheck(redis)],
  });
  return app;
}
