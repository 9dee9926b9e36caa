/** Order service (8084): customers and the order API; starts and queries the order sagas on Temporal. */
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { peerServiceCheck, postgresCheck, redisCheck, temporalCheck } from '../shared/health-checks';
import { buildServiceApp } from '../shared/http/app';
import type { ServiceContext } from '../shared/run-service';

export type OrderAppDependencies = Omit<ServiceContext<'order'>, 'logger'> & {
  logger: Logger | false;
  temporal: Client;
};

export async function buildOrderApp({ config, db, redis, logger, metrics, temporal }: OrderAppDependencies) {
  const app = await buildServiceApp({
    service: 'order',
    description: 'Customers and orders. Placing, confirming and cancelling an order runs a saga on Temporal.',
    logger,
    metrics,
    healthChecks: [
      postgresCheck(db),
      redisCheck(redis),
      temporalCheck(temporal),
      peerServiceCheck('product-service', config.PRODUCT_SERVICE_URL),
    ],
  });
  return app;
}
