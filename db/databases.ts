/** Which database each service owns, and how to open it from configuration. */
import type { Kysely } from 'kysely';
import type { Config } from '../services/shared/config';
import { createDatabase } from './connection';
import type { ServiceName } from './migrator';
import type { OrderDatabase } from './order/schema';
import type { PaymentDatabase } from './payment/schema';
import type { ProductDatabase } from './product/schema';

export interface DatabaseByService {
  order: OrderDatabase;
  product: ProductDatabase;
  payment: PaymentDatabase;
}

export function databaseUrl(config: Config, service: ServiceName): string {
  const urls: Record<ServiceName, string> = {
    order: config.ORDER_DATABASE_URL,
    product: config.PRODUCT_DATABASE_URL,
    payment: config.PAYMENT_DATABASE_URL,
  };
  return urls[service];
}

export function openServiceDatabase<S extends ServiceName>(config: Config, service: S, applicationName = `oms-${service}`): Kysely<DatabaseByService[S]> {
  return createDatabase<DatabaseByService[S]>({
    connectionString: databaseUrl(config, service),
    poolMax: config.DATABASE_POOL_MAX,
    applicationName,
  });
}
