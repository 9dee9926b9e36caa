import { sql, type Kysely, type Migration } from 'kysely';

export const paymentLedgerMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE customer_accounts (
        customer_id   VARCHAR(100) PRIMARY KEY,
        currency      CHAR(3) NOT NULL,
        balance_minor BIGINT NOT NULL,
        held_minor    BIGINT NOT NULL DEFAULT 0,
        created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        -- The database itself refuses to hold or capture money the customer does not have.
        CONSTRAINT chk_accounts_balance CHECK (balance_minor >= 0),
        CONSTRAINT chk_accounts_held CHECK (held_minor >= 0 AND held_minor <= balance_minor)
      )`.execute(db);
    await sql`
      CREATE TABLE payment_reservations (
        id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        order_id       VARCHAR(100) NOT NULL,
        customer_id    VARCHAR(100) NOT NULL REFERENCES customer_accounts (customer_id),
        amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
        currency       CHAR(3) NOT NULL,
        status         VARCHAR(20) NOT NULL DEFAULT 'RESERVED',
        created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at     TIMESTAMPTZ NOT NULL,
        confirmed_at   TIMESTAMPTZ NULL,
        cancelled_at   TIMESTAMPTZ NULL,
        transaction_id VARCHAR(100) NULL,
        CONSTRAINT chk_payment_reservation_status CHECK (status IN ('RESERVED', 'CONFIRMED', 'CANCELLED', 'EXPIRED')),
        CONSTRAINT uq_payment_reservation_order UNIQUE (order_id)
      )`.execute(db);
    await sql`CREATE INDEX idx_payment_reservation_expiry ON payment_reservations (expires_at) WHERE status = 'RESERVED'`.execute(db);
    await sql`CREATE INDEX idx_payment_reservation_customer ON payment_reservations (customer_id, status)`.execute(db);
    await sql`
      CREATE TABLE payments (
        id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        reservation_id UUID NOT NULL REFERENCES payment_reservations (id),
        order_id       VARCHAR(100) NOT NULL,
        customer_id    VARCHAR(100) NOT NULL REFERENCES customer_accounts (customer_id),
        amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
        refunded_minor BIGINT NOT NULL DEFAULT 0,
        currency       CHAR(3) NOT NULL,
        payment_method VARCHAR(50) NOT NULL,
        transaction_id VARCHAR(100) NOT NULL,
        status         VARCHAR(20) NOT NULL DEFAULT 'COMPLETED',
        created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT uq_payments_reservation UNIQUE (reservation_id),
        CONSTRAINT uq_payments_transaction UNIQUE (transaction_id),
        CONSTRAINT chk_payments_refunded CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
        CONSTRAINT chk_payments_status CHECK (status IN ('COMPLETED', 'PARTIALLY_REFUNDED', 'REFUNDED'))
      )`.execute(db);
    await sql`CREATE INDEX idx_payments_order ON payments (order_id)`.execute(db);
    await sql`
      CREATE TABLE refunds (
        id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        payment_id   UUID NOT NULL REFERENCES payments (id),
        amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
        reason       TEXT NULL,
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
      )`.execute(db);
    await sql`CREATE INDEX idx_refunds_payment ON refunds (payment_id)`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE refunds, payments, payment_reservations, customer_accounts`.execute(db);
  },
};

/**
 * Refunds say where they came from. The order saga refunds a cancelled paid order through
 * POST /payments/refund-by-order/:orderId, which must return the money exactly once however often
 * the saga retries: at most one ORDER refund per payment, enforced by the database.
 */
export const refundSourceMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE refunds ADD COLUMN source VARCHAR(10) NOT NULL DEFAULT 'API'`.execute(db);
    await sql`ALTER TABLE refunds ADD CONSTRAINT chk_refunds_source CHECK (source IN ('API', 'ORDER'))`.execute(db);
    await sql`CREATE UNIQUE INDEX uq_refunds_order_refund ON refunds (payment_id) WHERE source = 'ORDER'`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP INDEX uq_refunds_order_refund`.execute(db);
    await sql`ALTER TABLE refunds DROP CONSTRAINT chk_refunds_source, DROP COLUMN source`.execute(db);
  },
};

/**
 * A refund remembers the Idempotency-Key it was made with. The key's idempotency record is written
 * after the refund commits, so a process that dies (or fails to store the answer) in between would
 * let a retry with the same key refund again; the key on the refund row, unique per payment and
 * checked under the payment's row lock, makes that retry find the refund instead.
 */
export const refundIdempotencyKeyMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE refunds ADD COLUMN idempotency_key VARCHAR(255) NULL`.execute(db);
    await sql`CREATE UNIQUE INDEX uq_refunds_idempotency_key ON refunds (payment_id, idempotency_key) WHERE idempotency_key IS NOT NULL`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP INDEX uq_refunds_idempotency_key`.execute(db);
    await sql`ALTER TABLE refunds DROP COLUMN idempotency_key`.execute(db);
  },
};

/**
 * The balance an account was opened with, recorded by the database whatever path inserts the row,
 * so that conservation can be checked (./oms check): initial + refunded = balance + captured. Rows
 * that predate it get the value their payments and refunds imply.
 */
export const accountInitialBalanceMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE customer_accounts ADD COLUMN initial_balance_minor BIGINT`.execute(db);
    await sql`
      UPDATE customer_accounts a SET initial_balance_minor = a.balance_minor
        + COALESCE((SELECT sum(p.amount_minor) FROM payments p WHERE p.customer_id = a.customer_id), 0)
        - COALESCE((SELECT sum(r.amount_minor) FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.customer_id = a.customer_id), 0)`.execute(db);
    await sql`ALTER TABLE customer_accounts ALTER COLUMN initial_balance_minor SET NOT NULL`.execute(db);
    await sql`
      CREATE FUNCTION record_initial_balance() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.initial_balance_minor := NEW.balance_minor;
        RETURN NEW;
      END $$`.execute(db);
    await sql`CREATE TRIGGER record_initial_balance BEFORE INSERT ON customer_accounts FOR EACH ROW EXECUTE FUNCTION record_initial_balance()`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TRIGGER record_initial_balance ON customer_accounts`.execute(db);
    await sql`DROP FUNCTION record_initial_balance()`.execute(db);
    await sql`ALTER TABLE customer_accounts DROP COLUMN initial_balance_minor`.execute(db);
  },
};
