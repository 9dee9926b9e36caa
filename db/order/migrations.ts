import { sql, type Kysely, type Migration } from 'kysely';
import { createNotifyTrigger, dropNotifyTrigger, type NotifyTrigger } from '../shared-migrations';
import { WAKE_UP_CHANNELS } from '../wake-up';

const SAGA_START_NOTIFY_TRIGGER: NotifyTrigger = {
  table: 'saga_start_intents',
  trigger: 'saga_start_intents_notify',
  fn: 'notify_saga_start_intent',
  channel: WAKE_UP_CHANNELS.sagaStarts,
};

export const ordersMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE customers (
        id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        name       VARCHAR(200) NOT NULL,
        email      VARCHAR(320) NOT NULL,
        status     VARCHAR(20) NOT NULL DEFAULT 'ACTIVE',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT uq_customers_email UNIQUE (email),
        CONSTRAINT chk_customers_status CHECK (status IN ('ACTIVE', 'INACTIVE'))
      )`.execute(db);
    await sql`
      CREATE TABLE orders (
        id                     UUID PRIMARY KEY,
        customer_id            UUID NOT NULL REFERENCES customers (id),
        status                 VARCHAR(30) NOT NULL DEFAULT 'PENDING',
        total_minor            BIGINT NOT NULL CHECK (total_minor >= 0),
        currency               CHAR(3) NOT NULL,
        payment_method         VARCHAR(50) NOT NULL,
        confirmation_mode      VARCHAR(10) NOT NULL,
        workflow_id            VARCHAR(200) NOT NULL,
        failure_reason         TEXT NULL,
        payment_reservation_id VARCHAR(100) NULL,
        payment_id             VARCHAR(100) NULL,
        cancellation_reason    TEXT NULL,
        created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT uq_orders_workflow UNIQUE (workflow_id),
        CONSTRAINT chk_orders_status CHECK (status IN ('PENDING', 'AWAITING_CONFIRMATION', 'PAID', 'FAILED', 'CANCELLING', 'CANCELLED')),
        CONSTRAINT chk_orders_confirmation CHECK (confirmation_mode IN ('auto', 'manual')),
        CONSTRAINT chk_orders_failure CHECK (status <> 'FAILED' OR failure_reason IS NOT NULL)
      )`.execute(db);
    await sql`CREATE INDEX idx_orders_customer ON orders (customer_id, created_at DESC)`.execute(db);
    await sql`CREATE INDEX idx_orders_status ON orders (status, created_at DESC)`.execute(db);
    // Dropped again by orderInFlightIndexDropMigration: no query filters orders on updated_at.
    await sql`CREATE INDEX idx_orders_in_flight ON orders (updated_at) WHERE status IN ('PENDING', 'AWAITING_CONFIRMATION', 'CANCELLING')`.execute(db);
    await sql`
      CREATE TABLE order_items (
        id               BIGSERIAL PRIMARY KEY,
        order_id         UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        product_id       UUID NOT NULL,
        sku              VARCHAR(64) NOT NULL,
        product_name     VARCHAR(200) NOT NULL,
        quantity         INT NOT NULL CHECK (quantity > 0),
        unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
        line_total_minor BIGINT NOT NULL CHECK (line_total_minor = unit_price_minor * quantity),
        CONSTRAINT uq_order_items_product UNIQUE (order_id, product_id)
      )`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE order_items, orders, customers`.execute(db);
  },
};

export const orderTimelineMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE order_events (
        id          BIGSERIAL PRIMARY KEY,
        order_id    VARCHAR(100) NOT NULL,
        event_id    UUID NOT NULL,
        event_type  VARCHAR(100) NOT NULL,
        topic       VARCHAR(200) NOT NULL,
        payload     JSONB NOT NULL,
        occurred_at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT uq_order_events_event UNIQUE (event_id)
      )`.execute(db);
    await sql`CREATE INDEX idx_order_events_order ON order_events (order_id, occurred_at, id)`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE order_events`.execute(db);
  },
};

/**
 * Indexes for the abuse limits: the public order list pages by (created_at, id), newest first,
 * with or without its customer and status filters; the open-checkout bound counts a customer's
 * manual checkouts still holding stock.
 */
export const orderListKeysetMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`DROP INDEX idx_orders_customer`.execute(db);
    await sql`DROP INDEX idx_orders_status`.execute(db);
    await sql`CREATE INDEX idx_orders_created ON orders (created_at DESC, id DESC)`.execute(db);
    await sql`CREATE INDEX idx_orders_customer ON orders (customer_id, created_at DESC, id DESC)`.execute(db);
    await sql`CREATE INDEX idx_orders_status ON orders (status, created_at DESC, id DESC)`.execute(db);
    await sql`
      CREATE INDEX idx_orders_open_checkouts ON orders (customer_id)
      WHERE confirmation_mode = 'manual' AND status IN ('PENDING', 'AWAITING_CONFIRMATION')`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP INDEX idx_orders_open_checkouts, idx_orders_status, idx_orders_customer, idx_orders_created`.execute(db);
    await sql`CREATE INDEX idx_orders_customer ON orders (customer_id, created_at DESC)`.execute(db);
    await sql`CREATE INDEX idx_orders_status ON orders (status, created_at DESC)`.execute(db);
  },
};

/** COMPENSATION_FAILED: a failed order whose saga could not undo everything yet (it needs attention). */
export const orderCompensationFailedMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE orders DROP CONSTRAINT chk_orders_status`.execute(db);
    await sql`
      ALTER TABLE orders ADD CONSTRAINT chk_orders_status
        CHECK (status IN ('PENDING', 'AWAITING_CONFIRMATION', 'PAID', 'FAILED', 'COMPENSATION_FAILED', 'CANCELLING', 'CANCELLED'))`.execute(db);
    await sql`ALTER TABLE orders DROP CONSTRAINT chk_orders_failure`.execute(db);
    await sql`ALTER TABLE orders ADD CONSTRAINT chk_orders_failure CHECK (status NOT IN ('FAILED', 'COMPENSATION_FAILED') OR failure_reason IS NOT NULL)`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`ALTER TABLE orders DROP CONSTRAINT chk_orders_failure`.execute(db);
    await sql`ALTER TABLE orders ADD CONSTRAINT chk_orders_failure CHECK (status <> 'FAILED' OR failure_reason IS NOT NULL)`.execute(db);
    await sql`ALTER TABLE orders DROP CONSTRAINT chk_orders_status`.execute(db);
    await sql`
      ALTER TABLE orders ADD CONSTRAINT chk_orders_status
        CHECK (status IN ('PENDING', 'AWAITING_CONFIRMATION', 'PAID', 'FAILED', 'CANCELLING', 'CANCELLED'))`.execute(db);
  },
};


/**
 * The accept path: POST /orders commits the order, its ORDER_CREATED event and a saga start
 * intent in one transaction and answers; the worker's starter turns intents into createOrder
 * runs (workers/saga-starter.ts). Orders are priced from a local read model of the catalogue,
 * fed by the product events; each line keeps the version of the price it was charged. An
 * Idempotency-Key is written with the order it created, so a retry finds that order whatever
 * became of the stored answer. PENDING orders of an older version, whose saga the reconciler used
 * to start, get an intent: a start of a saga that exists is a no-op.
 */
export const orderAcceptPathMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE saga_start_intents (
        order_id        UUID PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
        attempts        INT NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_error      TEXT NULL,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
      )`.execute(db);
    await sql`CREATE INDEX idx_saga_start_intents_due ON saga_start_intents (next_attempt_at)`.execute(db);
    await createNotifyTrigger(db, SAGA_START_NOTIFY_TRIGGER);
    await sql`INSERT INTO saga_start_intents (order_id) SELECT id FROM orders WHERE status = 'PENDING'`.execute(db);

    await sql`
      CREATE TABLE catalogue_products (
        product_id  UUID PRIMARY KEY,
        sku         VARCHAR(64) NOT NULL,
        name        VARCHAR(200) NOT NULL,
        price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
        currency    CHAR(3) NOT NULL,
        version     BIGINT NOT NULL CHECK (version > 0),
        updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
      )`.execute(db);
    // NULL on lines priced before the read model existed (by a direct call to the product service).
    await sql`ALTER TABLE order_items ADD COLUMN price_version BIGINT NULL`.execute(db);

    await sql`
      CREATE TABLE order_request_keys (
        idempotency_key VARCHAR(255) PRIMARY KEY,
        request_hash    VARCHAR(64) NOT NULL,
        order_id        UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
      )`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE order_request_keys, catalogue_products, saga_start_intents`.execute(db);
    await sql`DROP FUNCTION notify_saga_start_intent()`.execute(db);
    await sql`ALTER TABLE order_items DROP COLUMN price_version`.execute(db);
  },
};

/**
 * CONFIRMING: a manual checkout the customer confirmed, whose saga is confirming the stock and
 * capturing the payment. POST /orders/:id/confirm answers with it, so the answer shows the state
 * the order is in, not the AWAITING_CONFIRMATION it left.
 */
export const orderConfirmingMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE orders DROP CONSTRAINT chk_orders_status`.execute(db);
    await sql`
      ALTER TABLE orders ADD CONSTRAINT chk_orders_status
        CHECK (status IN ('PENDING', 'AWAITING_CONFIRMATION', 'CONFIRMING', 'PAID', 'FAILED', 'COMPENSATION_FAILED', 'CANCELLING', 'CANCELLED'))`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`UPDATE orders SET status = 'AWAITING_CONFIRMATION' WHERE status = 'CONFIRMING'`.execute(db);
    await sql`ALTER TABLE orders DROP CONSTRAINT chk_orders_status`.execute(db);
    await sql`
      ALTER TABLE orders ADD CONSTRAINT chk_orders_status
        CHECK (status IN ('PENDING', 'AWAITING_CONFIRMATION', 'PAID', 'FAILED', 'COMPENSATION_FAILED', 'CANCELLING', 'CANCELLED'))`.execute(db);
  },
};

/**
 * idx_orders_in_flight indexed updated_at, which no query filters on (the saga starter reads
 * saga_start_intents, not orders). It only cost a write on every status change.
 */
export const orderInFlightIndexDropMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`DROP INDEX idx_orders_in_flight`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`CREATE INDEX idx_orders_in_flight ON orders (updated_at) WHERE status IN ('PENDING', 'AWAITING_CONFIRMATION', 'CANCELLING')`.execute(db);
  },
};

/**
 * The correlation id (lib/correlation.ts) of the request behind each saga start and each
 * timeline entry: the starter starts the saga with it, and GET /orders/:id/events shows it.
 */
export const requestCorrelationMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE saga_start_intents ADD COLUMN correlation_id VARCHAR(100) NULL`.execute(db);
    await sql`ALTER TABLE order_events ADD COLUMN correlation_id VARCHAR(100) NULL`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`ALTER TABLE saga_start_intents DROP COLUMN correlation_id`.execute(db);
    await sql`ALTER TABLE order_events DROP COLUMN correlation_id`.execute(db);
  },
};

/** Start intents ring the starter after commit too (see outboxNotifyTriggerDropMigration). */
export const sagaStartNotifyTriggerDropMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await dropNotifyTrigger(db, SAGA_START_NOTIFY_TRIGGER);
  },
  async down(db: Kysely<unknown>) {
    await createNotifyTrigger(db, SAGA_START_NOTIFY_TRIGGER);
  },
};
