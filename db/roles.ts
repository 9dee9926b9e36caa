/**
 * Least privilege in PostgreSQL. Each service database is owned by its service's role, which the
 * service connects as and migrates with; the worker connects to all three as oms_worker and may do
 * exactly what its activities, outbox relay and timeline consumer do, nothing else. No other role
 * may even connect. db/provision.ts creates the roles; the privileges below are (re)applied after
 * every migration run, so they follow the tables and converge when the roles appear later.
 */
import { sql, type Kysely } from 'kysely';
import type { ServiceName } from './migrator';

/** The worker's role on every service database (the user of the WORKER_*_DATABASE_URL variables). */
export const WORKER_ROLE = 'oms_worker';

// What the outbox relay does on every database (workers/outbox-relay/store.ts): claim and
// count rows, record each attempt's outcome, purge published rows. It never inserts.
const outboxRelayPrivileges = [
  'SELECT, DELETE ON outbox_events',
  'UPDATE (status, published_at, retry_count, next_attempt_at, error_message) ON outbox_events',
];

/** Every privilege oms_worker holds, per database, as `GRANT <entry> TO oms_worker`. */
export const WORKER_PRIVILEGES: Readonly<Record<ServiceName, readonly string[]>> = {
  order: [
    ...outboxRelayPrivileges,
    // Order activities (activities/order.ts): validate the customer, move the order's status and
    // set the columns that go with it, append the transition's outbox event; a failure reason is
    // worded for the customer from the order's product ids.
    'SELECT ON customers',
    'SELECT ON orders',
    'SELECT ON order_items',
    'UPDATE (status, payment_id, payment_reservation_id, failure_reason, cancellation_reason, updated_at) ON orders',
    'INSERT ON outbox_events',
    'USAGE ON SEQUENCE outbox_events_id_seq',
    // Timeline consumer (services/order/timeline.ts): inbox row and timeline row, once per event.
    'SELECT, INSERT ON processed_events',
    'SELECT, INSERT ON order_events',
    'USAGE ON SEQUENCE order_events_id_seq',
    // Saga starter (workers/saga-starter.ts): claim intents, record a failed attempt, delete a started one.
    'SELECT, DELETE ON saga_start_intents',
    'UPDATE (attempts, next_attempt_at, last_error) ON saga_start_intents',
    // Catalogue consumer (services/order/catalogue-read-model.ts): the newest version of each product.
    'SELECT, INSERT, UPDATE ON catalogue_products',
  ],
  product: outboxRelayPrivileges,
  payment: outboxRelayPrivileges,
};

// Serialises concurrent appliers (two instances of a service starting at once): concurrent GRANTs
// on one object fail with "tuple concurrently updated".
const PRIVILEGES_LOCK_KEY = 0x6f6d7370; // "omsp"

export type PrivilegesOutcome = 'applied' | 'worker-role-missing';

/**
 * Run as the database's owner after migrating. Closes the database to PUBLIC (by default every role
 * may connect to every database) and sets oms_worker's privileges to exactly WORKER_PRIVILEGES, in
 * one transaction: revoking everything first drops privileges a later version no longer lists.
 * Without the role (a cluster not provisioned yet) it only closes the database and says so.
 */
export async function applyDatabasePrivileges<DB>(db: Kysely<DB>, service: ServiceName): Promise<PrivilegesOutcome> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(${PRIVILEGES_LOCK_KEY}::bigint)`.execute(trx);
    await sql`DO $$ BEGIN EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END $$`.execute(trx);
    const { rows } = await sql<{ exists: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${WORKER_ROLE}) AS exists`.execute(trx);
    if (!rows[0]?.exists) return 'worker-role-missing';
    await sql.raw(`DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO ${WORKER_ROLE}', current_database()); END $$`).execute(trx);
    await sql.raw(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${WORKER_ROLE}`).execute(trx);
    await sql.raw(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ${WORKER_ROLE}`).execute(trx);
    await sql.raw(`GRANT USAGE ON SCHEMA public TO ${WORKER_ROLE}`).execute(trx);
    for (const privilege of WORKER_PRIVILEGES[service]) await sql.raw(`GRANT ${privilege} TO ${WORKER_ROLE}`).execute(trx);
    return 'applied';
  });
}
