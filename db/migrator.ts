/**
 * One migration list per service database. Migrations are listed in code (not discovered on disk)
 * so their order is explicit and they run the same under tsx, vitest and a bundler.
 */
import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import {
  unusedInboxDropMigration,
  idempotencyMigration,
  inboxMigration,
  outboxMigration,
  outboxBackoffIndexMigration,
  outboxNotifyTriggerDropMigration,
  tccBarrierLowercaseMigration,
  tccBarrierMigration,
} from './shared-migrations';
import {
  orderAcceptPathMigration,
  orderCompensationFailedMigration,
  orderConfirmingMigration,
  orderInFlightIndexDropMigration,
  orderListKeysetMigration,
  ordersMigration,
  orderTimelineMigration,
  requestCorrelationMigration,
  sagaStartNotifyTriggerDropMigration,
} from './order/migrations';
import { productCatalogueMigration, productInitialStockMigration, productListKeysetMigration, productVersionMigration, stockReservationsMigration } from './product/migrations';
import { accountInitialBalanceMigration, paymentLedgerMigration, refundIdempotencyKeyMigration, refundSourceMigration } from './payment/migrations';
import { applyDatabasePrivileges, type PrivilegesOutcome } from './roles';

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
    '0010_order_accept_path': orderAcceptPathMigration,
    '0030_drop_orders_in_flight_index': orderInFlightIndexDropMigration,
    '0040_order_confirming': orderConfirmingMigration,
    '0050_request_correlation': requestCorrelationMigration,
    '0055_outbox_wake_up_after_commit': outboxNotifyTriggerDropMigration,
    '0056_saga_start_wake_up_after_commit': sagaStartNotifyTriggerDropMigration,
    '0060_outbox_backoff_index': outboxBackoffIndexMigration,
  },
  product: {
    '0001_outbox_events': outboxMigration,
    '0002_idempotency_records': idempotencyMigration,
    '0003_processed_events': inboxMigration,
    '0004_tcc_barriers': tccBarrierMigration,
    '0005_products': productCatalogueMigration,
    '0006_stock_reservations': stockReservationsMigration,
    '0007_product_list_keyset': productListKeysetMigration,
    '0008_product_initial_stock': productInitialStockMigration,
    '0010_product_version': productVersionMigration,
    '0030_drop_processed_events': unusedInboxDropMigration,
    '0041_tcc_barrier_lowercase': tccBarrierLowercaseMigration,
    '0055_outbox_wake_up_after_commit': outboxNotifyTriggerDropMigration,
    '0060_outbox_backoff_index': outboxBackoffIndexMigration,
  },
  payment: {
    '0001_outbox_events': outboxMigration,
    '0002_idempotency_records': idempotencyMigration,
    '0003_processed_events': inboxMigration,
    '0004_tcc_barriers': tccBarrierMigration,
    '0005_payment_ledger': paymentLedgerMigration,
    '0006_refund_source': refundSourceMigration,
    '0007_refund_idempotency_key': refundIdempotencyKeyMigration,
    '0008_account_initial_balance': accountInitialBalanceMigration,
    '0030_drop_processed_events': unusedInboxDropMigration,
    '0041_tcc_barrier_lowercase': tccBarrierLowercaseMigration,
    '0055_outbox_wake_up_after_commit': outboxNotifyTriggerDropMigration,
    '0060_outbox_backoff_index': outboxBackoffIndexMigration,
  },
};

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Brings a service database to the latest schema, then sets the worker's privileges on it
 * (db/roles.ts). Run as the database's owner; concurrent callers are serialised by Kysely's lock.
 */
export async function migrateToLatest<DB>(db: Kysely<DB>, service: ServiceName): Promise<MigrationResultSet & { privileges: PrivilegesOutcome }> {
  const migrations = migrationsByService[service];
  const migrator = new Migrator({ db: db as Kysely<unknown>, provider: { getMigrations: () => Promise.resolve(migrations) } });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(`${service}_db: migration ${failed} failed: ${result.error instanceof Error ? result.error.message : JSON.stringify(result.error)}`, { cause: result.error });
  }
  return { ...result, privileges: await applyDatabasePrivileges(db, service) };
}
