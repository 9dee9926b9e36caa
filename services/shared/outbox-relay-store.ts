/**
 * The outbox relay's SQL: claim a batch, record what happened to each row, count, purge, requeue.
 * Every service database has the same outbox_events table, so these take Kysely<SharedTables>.
 */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { OUTBOX_NOTIFY_CHANNEL } from '../../db/shared-migrations';
import type { OutboxEventsTable, OutboxStatus, SharedTables } from '../../db/shared-tables';

export type OutboxRow = Selectable<OutboxEventsTable>;

/**
 * Only one relay publishes from a database at a time: the claim runs under this transaction-level
 * advisory lock (advisory locks are per database), so a second relay is a hot standby that takes
 * over as soon as the first one's transaction ends, including when its process is killed.
 * Row locks alone (SKIP LOCKED) would let relay B publish an aggregate's event 2 while relay A
 * still holds event 1 uncommitted, reordering the aggregate on its partition.
 */
export const OUTBOX_RELAY_LOCK_KEY = 0x6f6d735f6f7574; // "oms_out"

/** Takes the publisher lock for the current transaction; false when another relay holds it. */
export async function tryTakeRelayLock(trx: Transaction<SharedTables>): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`SELECT pg_try_advisory_xact_lock(${OUTBOX_RELAY_LOCK_KEY}::bigint) AS locked`.execute(trx);
  return rows[0]?.locked === true;
}

/**
 * Locks up to `limit` due PENDING rows in id (commit) order. A row whose aggregate has an earlier
 * PENDING row still waiting out its backoff is left alone, so a failed event is never overtaken by
 * its aggregate's later events. SKIP LOCKED keeps concurrent claimers (an operator's requeue, a
 * relay that lost the advisory lock race) from blocking on or double-taking rows.
 */
export async function claimDueEvents(trx: Transaction<SharedTables>, limit: number): Promise<OutboxRow[]> {
  const { rows } = await sql<OutboxRow>`
    SELECT o.* FROM outbox_events o
    WHERE o.status = 'PENDING' AND o.next_attempt_at <= now()
      AND NOT EXISTS (
        SELECT 1 FROM outbox_events earlier
        WHERE earlier.aggregate_type = o.aggregate_type AND earlier.aggregate_id = o.aggregate_id
          AND earlier.status = 'PENDING' AND earlier.id < o.id AND earlier.next_attempt_at > now())
    ORDER BY o.id
    LIMIT ${limit}
    FOR UPDATE OF o SKIP LOCKED`.execute(trx);
  return rows;
}

export async function markPublished(trx: Transaction<SharedTables>, id: number): Promise<void> {
  await trx
    .updateTable('outbox_events')
    .set({ status: 'PUBLISHED', published_at: sql<Date>`now()`, error_message: null })
    .where('id', '=', id)
    .execute();
}

/** A failed attempt: the row stays PENDING and is not tried again before `delayMs` has passed. */
export async function markRetry(trx: Transaction<SharedTables>, id: number, retryCount: number, error: string, delayMs: number): Promise<void> {
  await trx
    .updateTable('outbox_events')
    .set({
      retry_count: retryCount,
      error_message: error,
      next_attempt_at: sql<Date>`now() + make_interval(secs => ${delayMs / 1000})`,
    })
    .where('id', '=', id)
    .execute();
}

/** Retries exhausted and the event is on oms.dlq: the row is kept (cleanup never deletes FAILED rows) for requeue. */
export async function markFailed(trx: Transaction<SharedTables>, id: number, retryCount: number, error: string): Promise<void> {
  await trx.updateTable('outbox_events').set({ status: 'FAILED', retry_count: retryCount, error_message: error }).where('id', '=', id).execute();
}

export async function countPending(db: Kysely<SharedTables>): Promise<number> {
  const row = await db
    .selectFrom('outbox_events')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('status', '=', 'PENDING')
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function countByStatus(db: Kysely<SharedTables>): Promise<Record<OutboxStatus, number>> {
  const rows = await db
    .selectFrom('outbox_events')
    .select(['status', (eb) => eb.fn.countAll<number>().as('count')])
    .groupBy('status')
    .execute();
  const counts: Record<OutboxStatus, number> = { PENDING: 0, PUBLISHED: 0, FAILED: 0 };
  for (const row of rows) counts[row.status] = Number(row.count);
  return counts;
}

/**
 * Deletes PUBLISHED rows published more than `retentionHours` ago, `chunk` rows per statement so a
 * large backlog never holds one long transaction. Returns how many rows went.
 */
export async function purgePublished(db: Kysely<SharedTables>, retentionHours: number, chunk = 5_000): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await sql`
      DELETE FROM outbox_events WHERE id IN (
        SELECT id FROM outbox_events
        WHERE status = 'PUBLISHED' AND published_at < now() - make_interval(hours => ${retentionHours})
        LIMIT ${chunk})`.execute(db);
    const deleted = Number(result.numAffectedRows ?? 0);
    total += deleted;
    if (deleted < chunk) return total;
  }
}

/**
 * Operator action: FAILED rows (all, or one by id) go back to PENDING with a fresh retry budget.
 * Returns the ids requeued. A requeued event is published after its aggregate's later events,
 * which already went out: consumers must treat it as late.
 */
export async function requeueFailed(db: Kysely<SharedTables>, options: { id?: number } = {}): Promise<number[]> {
  let query = db
    .updateTable('outbox_events')
    .set({ status: 'PENDING', retry_count: 0, next_attempt_at: sql<Date>`now()`, error_message: null })
    .where('status', '=', 'FAILED');
  if (options.id !== undefined) query = query.where('id', '=', options.id);
  const rows = await query.returning('id').execute();
  // The notify trigger fires on INSERT only; wake the relays so requeued rows leave without waiting for a poll.
  if (rows.length > 0) await sql`SELECT pg_notify(${OUTBOX_NOTIFY_CHANNEL}, '')`.execute(db);
  return rows.map((row) => row.id);
}
