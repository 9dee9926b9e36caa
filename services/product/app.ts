/** Product service (8083): catalogue, stock and the stock TCC participant. */
import { postgresCheck, redisCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import type { Logger } from 'pino';
import type { ServiceContext } from '../shared/run-service';

export type ProductAppDependencies = Omit<ServiceContext<'product'>, 'logger'> & { logger: Logger | false };

export async function buildProductApp({ db, redis, logger, metrics }: ProductAppDependencies) {
  const app = await buildServiceApp({
    service: 'product',
    description: 'Catalogue and stock; TCC try/confirm/cancel for stock reservations.',
    logger,
    metrics,
    healthChecks: [postgresCheck(db), redisCheck(redis)],
  });
  return app;
}
