/**
 * Which database each service owns, and how each process opens it from configuration: a service as
 * its database's owner role, the worker as oms_worker (db/roles.ts says what each may do).
 */
import type { Kysely } from 'kysely';
import type { Config } from '../lib/config';
import { createDatabase, MIGRATION_SESSION_TIMEOUTS, type DatabaseOptions, type SessionTimeouts } from './connection';
import type { ServiceName } from './migrator';
import type { OrderDatabase } from './order/schema';
import type { PaymentDatabase } from './payment/schema';
import type { ProductDatabase } from './product/schema';

export interface DatabaseByService {
  order: OrderDatabase;
  product: ProductDatabase;
  payment: PaymentDatabase;
}

/** The service's own URL: its owner role, which also runs its migrations. */
export function databaseUrl(config: Config, service: ServiceName): string {
  const urls: Record<ServiceName, string> = {
    order: config.ORDER_DATABASE_URL,
    product: config.PRODUCT_DATABASE_URL,
    payment: config.PAYMENT_DATABASE_URL,
  };
  return urls[service];
}

/** The worker's URL for a service database: the oms_worker role. */
export function workerDatabaseUrl(config: Config, service: ServiceName): string {
  const urls: Record<ServiceName, string> = {
    order: config.WORKER_ORDER_DATABASE_URL,
    product: config.WORKER_PRODUCT_DATABASE_URL,
    payment: config.WORKER_PAYMENT_DATABASE_URL,
  };
  return urls[service];
}

export function sessionTimeouts(config: Config): SessionTimeouts {
  return {
    acquireMs: config.DATABASE_ACQUIRE_TIMEOUT_MS,
    statementMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
    lockMs: config.DATABASE_LOCK_TIMEOUT_MS,
    idleInTransactionMs: config.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
  };
}

/** Pool options for `connectionString` with the configured pool size, timeouts and TLS. */
export function databaseOptions(config: Config, connectionString: string, applicationName: string): DatabaseOptions {
  return {
    connectionString,
    poolMax: config.DATABASE_POOL_MAX,
    applicationName,
    timeouts: sessionTimeouts(config),
    sslCaFile: config.DATABASE_SSL_CA_FILE,
  };
}

export function openServiceDatabase<S extends ServiceName>(config: Config, service: S, applicationName = `oms-${service}`): Kysely<DatabaseByService[S]> {
  return createDatabase<DatabaseByService[S]>(databaseOptions(config, databaseUrl(config, service), applicationName));
}

/** The owner's connection for migrating: no statement or lock timeout. */
export function openMigrationDatabase<S extends ServiceName>(config: Config, service: S, applicationName = 'oms-migrate'): Kysely<DatabaseByService[S]> {
  const options = databaseOptions(config, databaseUrl(config, service), applicationName);
  return createDatabase<DatabaseByService[S]>({ ...options, timeouts: { ...MIGRATION_SESSION_TIMEOUTS, acquireMs: config.DATABASE_ACQUIRE_TIMEOUT_MS } });
}

export function openWorkerDatabase<S extends ServiceName>(config: Config, service: S, applicationName: string): Kysely<DatabaseByService[S]> {
  return createDatabase<DatabaseByService[S]>(databaseOptions(config, workerDatabaseUrl(config, service), applicationName));
}
