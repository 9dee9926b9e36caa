/**
 * The outbox relay's SQL: take the publisher lock, claim a batch, record what happened to its rows, count, purge, requeue.
 * Every service database has the same outbox_events table, so these take Kysely<SharedTables>.
 */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type pg from 'pg';
import { ringWakeUp, WAKE_UP_CHANNELS } from '../../db/wake-up';
import type { OutboxEventsTable, OutboxStatus, SharedTables } from '../../lib/shared-tables';

/** An outbox row as the relay reads it: the payload as the JSON text PostgreSQL stored, sent as it is. */
export type OutboxRow = Omit<Selectable<OutboxEventsTable>, 'payload'> & { payload_json: string };

/**
 * Only one relay publishes from a database at a time: it holds this advisory lock (advisory locks
 * are per database) on its own session for as long as it relays, so a second relay is a hot standby
 * that takes over as soon as the first one's session ends, including when its process is killed.
 * Row locks alone (SKIP LOCKED) would let relay B publish an aggregate's event 2 while relay A
 * still holds event 1 unpublished, reordering the aggregate on its partition.
 */
export const OUTBOX_RELAY_LOCK_KEY = 0x6f6d735f6f7574; // "oms_out"

/** Takes the publisher lock for the session of `client`; false when another relay holds it. */
export async function tryTakeRelayLock(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [OUTBOX_RELAY_LOCK_KEY]);
  return rows[0]?.locked === true;
}

/**
 * Up to `limit` due PENDING rows in id (commit) order, leaving out `inFlight` (the batch being
 * published while this one is claimed). A row that never failed is due at once, whatever clock
 * stamped its next_attempt_at; a row that failed is due when its backoff is over. A row whose
 * aggregate has an earlier row still waiting out its backoff is left alone, so a failed event is
 * never overtaken by its aggregate's later events; that check is worded to match idx_outbox_backoff,
 * which holds only rows that failed (db/shared-migrations.ts says why the wording matters). No row
 * locks: only the lock holder claims (see OUTBOX_RELAY_LOCK_KEY).
 *
 * The plan must walk idx_outbox_pending in id order and stop after `limit` rows. PostgreSQL picks a
 * bitmap scan and a sort of every PENDING row instead when its statistics say there are few, which
 * they do right after a backlog built up (an outage of Kafka is the usual cause, and autovacuum
 * re-analyzes a large table only after a tenth of it changed): every claim then costs the whole
 * backlog, and the relay drains slowest exactly when it has most to do. Bitmap scans are therefore
 * off for the claim's transaction, which leaves the ordered index scan as the cheap plan at any size.
 */
export async function claimDueEvents(db: Kysely<SharedTables>, limit: number, inFlight: readonly number[] = []): Promise<OutboxRow[]> {
  return inClaimPlan(db, async (trx) => (await claimStatement(limit, inFlight).execute(trx)).rows);
}

/** The claim's plan as EXPLAIN prints it, under the claim's planner settings: for tests and diagnosis. */
export async function explainClaim(db: Kysely<SharedTables>, limit: number, inFlight: readonly number[] = []): Promise<string> {
  return inClaimPlan(db, async (trx) => {
    const { rows } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN ${claimStatement(limit, inFlight)}`.execute(trx);
    return rows.map((row) => row['QUERY PLAN']).join('\n');
  });
}

function inClaimPlan<T>(db: Kysely<SharedTables>, claim: (trx: Transaction<SharedTables>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`SET LOCAL enable_bitmapscan = off`.execute(trx);
    return claim(trx);
  });
}

function claimStatement(limit: number, inFlight: readonly number[]) {
  return sql<OutboxRow>`
    SELECT o.id, o.event_id, o.aggregate_type, o.aggregate_id, o.event_type, o.payload::text AS payload_json,
           o.correlation_id, o.created_at, o.published_at, o.retry_count, o.next_attempt_at, o.status, o.error_message
    FROM outbox_events o
    WHERE o.status = 'PENDING' AND (o.retry_count = 0 OR o.next_attempt_at <= now())
      AND o.id <> ALL(${inFlight}::bigint[])
      AND NOT EXISTS (
        SELECT 1 FROM outbox_events earlier
        WHERE earlier.status NOT IN ('PUBLISHED', 'FAILED') AND earlier.retry_count > 0
          AND earlier.aggregate_type = o.aggregate_type AND earlier.aggregate_id = o.aggregate_id
          AND earlier.id < o.id AND earlier.next_attempt_at > now())
    ORDER BY o.id
    LIMIT ${limit}`;
}

/** One statement for a whole published batch. */
export async function markPublished(db: Kysely<SharedTables> | Transaction<SharedTables>, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('outbox_events')
    .set({ status: 'PUBLISHED', published_at: sql<Date>`now()`, error_message: null })
    .where(sql<boolean>`id = ANY(${ids}::bigint[])`)
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
  // Only inserts ring by themselves (db/wake-up.ts); wake the relays so requeued rows leave without waiting for a poll.
  if (rows.length > 0) await ringWakeUp(db, WAKE_UP_CHANNELS.outbox);
  return rows.map((row) => row.id);
}
