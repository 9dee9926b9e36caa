import { sql, type Kysely, type Migration } from 'kysely';

export const productCatalogueMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE products (
        id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        sku               VARCHAR(64) NOT NULL,
        name              VARCHAR(200) NOT NULL,
        description       TEXT NULL,
        price_minor       BIGINT NOT NULL CHECK (price_minor >= 0),
        currency          CHAR(3) NOT NULL,
        stock_quantity    INT NOT NULL,
        reserved_quantity INT NOT NULL DEFAULT 0,
        created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT uq_products_sku UNIQUE (sku),
        -- The database itself refuses to oversell, whatever the code above it does.
        CONSTRAINT chk_products_stock CHECK (stock_quantity >= 0),
        CONSTRAINT chk_products_reserved CHECK (reserved_quantity >= 0 AND reserved_quantity <= stock_quantity)
      )`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE products`.execute(db);
  },
};

export const stockReservationsMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`
      CREATE TABLE stock_reservations (
        id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        order_id     VARCHAR(100) NOT NULL,
        product_id   UUID NOT NULL REFERENCES products (id),
        quantity     INT NOT NULL CHECK (quantity > 0),
        status       VARCHAR(20) NOT NULL DEFAULT 'RESERVED',
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at   TIMESTAMPTZ NOT NULL,
        confirmed_at TIMESTAMPTZ NULL,
        cancelled_at TIMESTAMPTZ NULL,
        restocked_at TIMESTAMPTZ NULL,
        CONSTRAINT chk_stock_reservation_status CHECK (status IN ('RESERVED', 'CONFIRMED', 'CANCELLED', 'EXPIRED')),
        CONSTRAINT chk_stock_reservation_restock CHECK (restocked_at IS NULL OR status = 'CONFIRMED'),
        CONSTRAINT uq_stock_reservation_order_product UNIQUE (order_id, product_id)
      )`.execute(db);
    await sql`CREATE INDEX idx_stock_reservation_expiry ON stock_reservations (expires_at) WHERE status = 'RESERVED'`.execute(db);
    await sql`CREATE INDEX idx_stock_reservation_product_status ON stock_reservations (product_id, status)`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TABLE stock_reservations`.execute(db);
  },
};

/** The public catalogue list pages by (created_at, id), oldest first. */
export const productListKeysetMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`CREATE INDEX idx_products_created ON products (created_at, id)`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP INDEX idx_products_created`.execute(db);
  },
};

/**
 * The stock a product was created with, recorded by the database whatever path inserts the row,
 * so that conservation can be checked (./oms check): initial + restocked = on hand + sold. Rows
 * that predate it get the value their reservations imply.
 */
export const productInitialStockMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE products ADD COLUMN initial_stock_quantity INT`.execute(db);
    await sql`
      UPDATE products p SET initial_stock_quantity = p.stock_quantity
        + COALESCE((SELECT sum(r.quantity) FROM stock_reservations r WHERE r.product_id = p.id AND r.confirmed_at IS NOT NULL), 0)
        - COALESCE((SELECT sum(r.quantity) FROM stock_reservations r WHERE r.product_id = p.id AND r.restocked_at IS NOT NULL), 0)`.execute(db);
    await sql`ALTER TABLE products ALTER COLUMN initial_stock_quantity SET NOT NULL`.execute(db);
    await sql`
      CREATE FUNCTION record_initial_stock() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.initial_stock_quantity := NEW.stock_quantity;
        RETURN NEW;
      END $$`.execute(db);
    await sql`CREATE TRIGGER record_initial_stock BEFORE INSERT ON products FOR EACH ROW EXECUTE FUNCTION record_initial_stock()`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`DROP TRIGGER record_initial_stock ON products`.execute(db);
    await sql`DROP FUNCTION record_initial_stock()`.execute(db);
    await sql`ALTER TABLE products DROP COLUMN initial_stock_quantity`.execute(db);
  },
};

/**
 * Each product's version: 1 when created, one more at each price change. It travels on
 * PRODUCT_CREATED and PRODUCT_PRICE_CHANGED, so the order service's read model of the catalogue
 * keeps the newest it has seen whatever order the events arrive in, and each order line records
 * which price it was charged.
 */
export const productVersionMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE products ADD COLUMN version BIGINT NOT NULL DEFAULT 1 CHECK (version > 0)`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await sql`ALTER TABLE products DROP COLUMN version`.execute(db);
  },
};
