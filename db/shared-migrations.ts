/** Migrations the service databases share: outbox, idempotency records, consumer inbox, TCC barriers. */
import { sql, type Kysely, type Migration } from 'kysely';

import { WAKE_UP_CHANNELS, type WakeUpChannel } from './wake-up';

/**
 * A statement-level trigger that NOTIFYs a wake-up channel from inside the inserting transaction.
 * Migrations 0001/0010 created the two such triggers and 0055/0056 dropped them (writers now ring
 * after commit, db/wake-up.ts); the drops' down() re-creates exactly what the creates made.
 */
export interface NotifyTrigger {
  table: string;
  trigger: string;
  fn: string;
  channel: WakeUpChannel;
}

const OUTBOX_NOTIFY_TRIGGER: NotifyTrigger = {
  table: 'outbox_events',
  trigger: 'outbox_events_notify',
  fn: 'notify_outbox_event',
  channel: WAKE_UP_CHANNELS.outbox,
};

export async function createNotifyTrigger(db: Kysely<unknown>, { table, trigger, fn, channel }: NotifyTrigger): Promise<void> {
  await sql
    .raw(
      `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           PERFORM pg_notify('${channel}', '');
           RETURN NULL;
         END $$`,
    )
    .execute(db);
  await sql
    .raw(
      `CREATE TRIGGER ${trigger} AFTER INSERT ON ${table}
      FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
    )
    .execute(db);
}

export async function dropNotifyTrigger(db: Kysely<unknown>, { table, trigger, fn }: NotifyTrigger): Promise<void> {
  await sql.raw(`DROP TRIGGER ${trigger} ON ${table}`).execute(db);
  await sql.raw(`DROP FUNCTION ${fn}()`).execute(db);
}

export const outboxMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE outbox_events (
        id              BIGSERIAL PRIMARY KEY,
        event_id        UUID NOT NULL,
        aggregate_type  VARCHAR(100) NOT NULL,
        aggregate_id    VARCHAR(100) NOT NULL,
        event_type      VARCHAR(100) NOT NULL,
        payload         JSONB NOT NULL,
        correlation_id  VARCHAR(100) NULL,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        published_at    TIMESTAMPTZ NULL,
        retry_count     INT NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
        next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        status          VARCHAR(20) NOT NULL DEFAULT 'PENDING',
        error_message   TEXT NULL,
        CONSTRAINT uq_outbox_event_id UNIQUE (event_id),
        CONSTRAINT chk_outbox_status CHECK (status IN ('PENDING', 'PUBLISHED', 'FAILED')),
        CONSTRAINT chk_outbox_published_at CHECK ((status = 'PUBLISHED') = (published_at IS NOT NULL))
      )`.execute(db);
    // The relay claims pending rows in id (commit) order: an index on created_at could not order
    // rows inserted in the same millisecond.
    await sql`CREATE INDEX idx_outbox_pending ON outbox_events (id) WHERE status = 'PENDING'`.execute(db);
    await sql`CREATE INDEX idx_outbox_aggregate ON outbox_events (aggregate_type, aggregate_id)`.execute(db);
    await sql`CREATE INDEX idx_outbox_event_type ON outbox_events (event_type, created_at)`.execute(db);
    await sql`CREATE INDEX idx_outbox_cleanup ON outbox_events (published_at) WHERE status = 'PUBLISHED'`.execute(db);
    await sql`CREATE INDEX idx_outbox_failed ON outbox_events (id) WHERE status = 'FAILED'`.execute(db);
    await sql`COMMENT ON TABLE outbox_events IS 'Transactional outbox: domain events written with the change, relayed to Kafka'`.execute(db);
    // One notification per inserting statement, delivered only when the transaction commits.
    await createNotifyTrigger(db, OUTBOX_NOTIFY_TRIGGER);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE outbox_events`.execute(db);
    await sql`DROP FUNCTION notify_outbox_event()`.execute(db);
  },
};

export const idempotencyMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE idempotency_records (
        idempotency_key VARCHAR(255) PRIMARY KEY,
        request_hash    VARCHAR(64) NOT NULL,
        request_method  VARCHAR(10) NOT NULL,
        request_path    VARCHAR(500) NOT NULL,
        status          VARCHAR(20) NOT NULL DEFAULT 'PROCESSING',
        response_status INT NULL,
        response_data   JSONB NULL,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        completed_at    TIMESTAMPTZ NULL,
        locked_until    TIMESTAMPTZ NOT NULL,
        expires_at      TIMESTAMPTZ NOT NULL,
        error_message   TEXT NULL,
        CONSTRAINT chk_idempotency_status CHECK (status IN ('PROCESSING', 'COMPLETED', 'FAILED')),
        CONSTRAINT chk_idempotency_completed CHECK (status <> 'COMPLETED' OR (response_status IS NOT NULL AND completed_at IS NOT NULL))
      )`.execute(db);
    await sql`CREATE INDEX idx_idempotency_expires ON idempotency_records (expires_at)`.execute(db);
    await sql`CREATE INDEX idx_idempotency_processing ON idempotency_records (created_at) WHERE status = 'PROCESSING'`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE idempotency_records`.execute(db);
  },
};

export const inboxMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE processed_events (
        consumer     VARCHAR(100) NOT NULL,
        event_id     UUID NOT NULL,
        event_type   VARCHAR(100) NOT NULL,
        processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
      )`.execute(db);
    await sql`CREATE INDEX idx_processed_events_age ON processed_events (processed_at)`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE processed_events`.execute(db);
  },
};

/**
 * Every database once got the inbox; only order_db's timeline consumer uses it. product_db and
 * payment_db drop theirs, so no table suggests that those services consume events.
 */
export const unusedInboxDropMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`DROP TABLE processed_events`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await inboxMigration.up(db);
  },
};

export const tccBarrierMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE tcc_barriers (
        transaction_id VARCHAR(100) NOT NULL,
        branch_id      VARCHAR(100) NOT NULL,
        operation      VARCHAR(10) NOT NULL,
        reason         VARCHAR(10) NOT NULL,
        created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (transaction_id, branch_id, operation),
        CONSTRAINT chk_tcc_barrier_operation CHECK (operation IN ('TRY', 'CONFIRM', 'CANCEL')),
        CONSTRAINT chk_tcc_barrier_reason CHECK (reason IN ('TRY', 'CONFIRM', 'CANCEL'))
      )`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE tcc_barriers`.execute(db);
  },
};

/**
 * Barrier rows name their phase as the code and the metrics do ('try', 'confirm', 'cancel'), so one
 * spelling of a TCC phase runs from the route to the row.
 */
export const tccBarrierLowercaseMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE tcc_barriers DROP CONSTRAINT chk_tcc_barrier_operation, DROP CONSTRAINT chk_tcc_barrier_reason`.execute(db);
    await sql`UPDATE tcc_barriers SET operation = lower(operation), reason = lower(reason)`.execute(db);
    await sql`
      ALTER TABLE tcc_barriers
        ADD CONSTRAINT chk_tcc_barrier_operation CHECK (operation IN ('try', 'confirm', 'cancel')),
        ADD CONSTRAINT chk_tcc_barrier_reason CHECK (reason IN ('try', 'confirm', 'cancel'))`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`ALTER TABLE tcc_barriers DROP CONSTRAINT chk_tcc_barrier_operation, DROP CONSTRAINT chk_tcc_barrier_reason`.execute(db);
    await sql`UPDATE tcc_barriers SET operation = upper(operation), reason = upper(reason)`.execute(db);
    await sql`
      ALTER TABLE tcc_barriers
        ADD CONSTRAINT chk_tcc_barrier_operation CHECK (operation IN ('TRY', 'CONFIRM', 'CANCEL')),
        ADD CONSTRAINT chk_tcc_barrier_reason CHECK (reason IN ('TRY', 'CONFIRM', 'CANCEL'))`.execute(db);
  },
};

/**
 * The outbox's wake-up moves out of the writing transaction: a NOTIFY there serialised the commits
 * of every writer in the cluster. Writers now ring after commit (db/wake-up.ts).
 */
export const outboxNotifyTriggerDropMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await dropNotifyTrigger(db, OUTBOX_NOTIFY_TRIGGER);
  },
  async down(db: Kysely<unknown>) {
    await createNotifyTrigger(db, OUTBOX_NOTIFY_TRIGGER);
  },
};

/**
 * The relay's claim asks one question per candidate row: has an earlier event of its aggregate
 * failed and still to wait out its backoff? Only rows that failed at least once can be waiting
 * (a row that never failed is due at once, see claimDueEvents), so that question is answered from
 * an index of those rows alone, which is empty in normal running, instead of every row the
 * aggregate ever had. The two indexes dropped served no query: each made every event's insert and
 * every PUBLISHED update write one more index entry.
 *
 * The predicate says "neither PUBLISHED nor FAILED" rather than "PENDING" on purpose: a query for
 * PENDING rows can also be served by idx_outbox_pending, and with statistics from before a backlog
 * PostgreSQL then scans that whole index once for every row the claim looks at. Written this way,
 * only this index (or the table) can answer the claim's question.
 *
 * On a large outbox the build scans the table while holding its writers: an operator can build the
 * index beforehand with CREATE INDEX CONCURRENTLY under the same name (docs/runbook.md), which makes
 * this step a no-op.
 */
export const outboxBackoffIndexMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE INDEX IF NOT EXISTS idx_outbox_backoff ON outbox_events (aggregate_type, aggregate_id, id)
      WHERE status NOT IN ('PUBLISHED', 'FAILED') AND retry_count > 0`.execute(db);
    await sql`DROP INDEX idx_outbox_aggregate`.execute(db);
    await sql`DROP INDEX idx_outbox_event_type`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`CREATE INDEX idx_outbox_aggregate ON outbox_events (aggregate_type, aggregate_id)`.execute(db);
    await sql`CREATE INDEX idx_outbox_event_type ON outbox_events (event_type, created_at)`.execute(db);
    await sql`DROP INDEX idx_outbox_backoff`.execute(db);
  },
};
