/**
 * One migration list per service database. Migrations are listed in code (not discovered on disk)
 * so their order is explicit and they run the same under tsx, vitest and a bundler.
 */
import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import { idempotencyMigration, inboxMigration, outboxMigration, tccBarrierMigration } from './shared-migrations';
import { orderCompensationFailedMigration, orderListKeysetMigration, ordersMigration, orderTimelineMigration } from './order/migrations';
import { productCatalogueMigration, productListKeysetMigration, stockReservationsMigration } from './product/migrations';
import { paymentLedgerMigration, refundIdempotencyKeyMigration, refundSourceMigration } from './payment/migrations';

export type ServiceName = 'order' | 'product' | 'payment';
export const SERVICE_NAMES: readonly ServiceName[] = ['order', 'product', 'payment'];

export const migrationsByService: Record<ServiceName, Record<string, Migration>> = {
  order: {
    '0001_outbox_events': outboxMigration,
    '0002_idempotency_records': idempotencyMigration,
    '0003_processed_events': inboxMigration,
    '0004_customers_orders': ordersMigration,
    '0005_order_events': orderTimelineMigration,
    '0006_order_list_keyset': orderListKeysetMigration,
    '0007_order_compensation_failed': orderCompensationFailedMigration,
  },
  product: {
    '0001_outbox_events': outboxMigration,
    '0002_idempotency_records': idempotencyMigration,
    '0003_processed_events': inboxMigration,
    '0004_tcc_barriers': tccBarrierMigration,
    '0005_products': productCatalogueMigration,
    '0006_stock_reservations': stockReservationsMigration,
    '0007_product_list_keyset': productListKeysetMigration,
  },
  payment: {
    '0001_outbox_events': outboxMigration,
    '0002_idempotency_records': idempotencyMigration,
    '0003_processed_events': inboxMigration,
    '0004_tcc_barriers': tccBarrierMigration,
    '0005_payment_ledger': paymentLedgerMigration,
    '0006_refund_source': refundSourceMigration,
    '0007_refund_idempotency_key': refundIdempotencyKeyMigration,
  },
};

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Brings a service database to the latest schema; concurrent callers are serialised by Kysely's lock table. */
export async function migrateToLatest<DB>(db: Kysely<DB>, service: ServiceName): Promise<MigrationResultSet> {
  const migrations = migrationsByService[service];
  const migrator = new Migrator({ db: db as Kysely<unknown>, provider: { getMigrations: () => Promise.resolve(migrations) } });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(`${service}_db: migration ${failed} failed: ${result.error instanceof Error ? result.error.message : JSON.stringify(result.error)}`, { cause: result.error });
  }
  return result;
}
