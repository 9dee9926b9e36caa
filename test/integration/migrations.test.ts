import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/connection';
import { migrateToLatest, migrationsByService, SERVICE_NAMES } from '../../db/migrator';
import type { ProductDatabase } from '../../db/product/schema';
import { WAKE_UP_CHANNELS } from '../../db/wake-up';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '../helpers/database';

describe('migrations', () => {
  it.each(SERVICE_NAMES)('bring an empty %s database to the latest schema, and a second run changes nothing', async (service) => {
    const empty = await createEmptyDatabase(`migrate_${service}`);
    const db = createDatabase({ connectionString: empty.url });
    try {
      const first = await migrateToLatest(db, service);
      expect(first.results?.map((r) => r.migrationName)).toEqual(Object.keys(migrationsByService[service]));
      expect(first.results?.every((r) => r.status === 'Success')).toBe(true);
      const second = await migrateToLatest(db, service);
      expect(second.results).toEqual([]);
      // Only the order service consumes events, so only order_db keeps a consumer inbox.
      const { rows } = await sql<{ inbox: string | null }>`SELECT to_regclass('processed_events')::text AS inbox`.execute(db);
      expect(rows[0]?.inbox).toBe(service === 'order' ? 'processed_events' : null);
    } finally {
      await db.destroy();
      await empty.drop();
    }
  });

  it('undoes the wake-up moves (0056, 0055): the in-transaction NOTIFY triggers come back as 0001 and 0010 made them', async () => {
    const empty = await createEmptyDatabase('migrate_order_down');
    const db = createDatabase({ connectionString: empty.url });
    const triggers = async () =>
      (await sql<{ tgname: string }>`SELECT tgname FROM pg_trigger WHERE tgname LIKE '%_notify' ORDER BY tgname`.execute(db)).rows.map((r) => r.tgname);
    const listener = new pg.Client({ connectionString: empty.url });
    try {
      // Below 0001's outbox table and 0010's start intents: 0001 and 0010 create the triggers and 0055/0056 drop them.
      const created = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrationsByService.order) } });
      expect((await created.migrateTo('0050_request_correlation')).error).toBeUndefined();
      const asCreated = await triggers();
      expect(asCreated).toEqual(['outbox_events_notify', 'saga_start_intents_notify']);
      const functionsAsCreated = await notifyFunctionSources(db);

      await migrateToLatest(db, 'order');
      expect(await triggers()).toEqual([]);
      expect(await notifyFunctionSources(db)).toEqual([]);

      expect((await created.migrateTo('0050_request_correlation')).error).toBeUndefined();
      expect(await triggers()).toEqual(asCreated);
      expect(await notifyFunctionSources(db)).toEqual(functionsAsCreated);

      // And they work: an insert notifies from inside its transaction again.
      const notifications: string[] = [];
      await listener.connect();
      listener.on('notification', (message) => notifications.push(message.channel));
      await listener.query(`LISTEN ${WAKE_UP_CHANNELS.outbox}`);
      const bare = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: empty.url, max: 1 }) }) });
      try {
        await sql`INSERT INTO outbox_events (event_id, aggregate_type, aggregate_id, event_type, payload) VALUES (gen_random_uuid(), 'ORDER', 'o', 'ORDER_CREATED', '{}')`.execute(bare);
      } finally {
        await bare.destroy();
      }
      await expect.poll(() => notifications, { timeout: 5_000 }).toEqual([WAKE_UP_CHANNELS.outbox]);
    } finally {
      await listener.end().catch(() => undefined);
      await db.destroy();
      await empty.drop();
    }
  });

  it.each(SERVICE_NAMES)("swaps the outbox's unused indexes for the claim's backoff index in %s_db (0060), and back", async (service) => {
    const empty = await createEmptyDatabase(`migrate_${service}_backoff`);
    const db = createDatabase({ connectionString: empty.url });
    const indexes = async () =>
      (await sql<{ indexname: string }>`SELECT indexname FROM pg_indexes WHERE tablename = 'outbox_events' ORDER BY indexname`.execute(db)).rows.map((r) => r.indexname);
    try {
      const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrationsByService[service]) } });
      const before = Object.keys(migrationsByService[service]).filter((name) => name < '0060').at(-1)!;
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      const asBefore = await indexes();
      expect(asBefore).toEqual(expect.arrayContaining(['idx_outbox_aggregate', 'idx_outbox_event_type']));

      await migrateToLatest(db, service);
      const latest = await indexes();
      expect(latest).toContain('idx_outbox_backoff');
      expect(latest).not.toContain('idx_outbox_aggregate');
      expect(latest).not.toContain('idx_outbox_event_type');

      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      expect(await indexes()).toEqual(asBefore);
    } finally {
      await db.destroy();
      await empty.drop();
    }
  });
});

/** The bodies of the NOTIFY trigger functions, by name. */
async function notifyFunctionSources(db: Kysely<unknown>): Promise<{ proname: string; prosrc: string }[]> {
  const { rows } = await sql<{ proname: string; prosrc: string }>`SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'notify_%' ORDER BY proname`.execute(db);
  return rows;
}

describe('product_db constraints', () => {
  let product: TestDatabase<'product'>;
  beforeAll(async () => {
    product = await createTestDatabase('product');
  });
  afterAll(() => product.destroy());

  it('refuses to reserve more than is in stock, whatever the code above it does', async () => {
    const { id } = await product.db
      .insertInto('products')
      .values({ sku: 'C-1', name: 'c', price_minor: 100, currency: 'USD', stock_quantity: 3 })
      .returning('id')
      .executeTakeFirstOrThrow();
    await expect(product.db.updateTable('products').set({ reserved_quantity: 4 }).where('id', '=', id).execute()).rejects.toThrow(/chk_products_reserved/);
    await expect(product.db.updateTable('products').set({ stock_quantity: -1 }).where('id', '=', id).execute()).rejects.toThrow(/chk_products/);
    await expect(
      product.db.insertInto('stock_reservations').values({ order_id: 'o', product_id: id, quantity: 0, expires_at: new Date() }).execute(),
    ).rejects.toThrow(/stock_reservations_quantity_check/);
  });

  it('allows one reservation per order and product', async () => {
    const { id } = await product.db
      .insertInto('products')
      .values({ sku: 'C-2', name: 'c', price_minor: 100, currency: 'USD', stock_quantity: 3 })
      .returning('id')
      .executeTakeFirstOrThrow();
    const reservation = { order_id: 'order-1', product_id: id, quantity: 1, expires_at: new Date() };
    await product.db.insertInto('stock_reservations').values(reservation).execute();
    await expect(product.db.insertInto('stock_reservations').values(reservation).execute()).rejects.toThrow(/uq_stock_reservation_order_product/);
  });

  /** A raw outbox row: these tests check the table itself, below the outbox writer. */
  const outboxRow = (eventId: string) => ({
    event_id: eventId,
    aggregate_type: 'PRODUCT',
    aggregate_id: 'p',
    event_type: 'PRODUCT_CREATED',
    payload: JSON.stringify({}),
    correlation_id: null,
    created_at: new Date(),
    next_attempt_at: new Date(),
  });

  it('keeps outbox event ids unique and published rows stamped', async () => {
    const row = outboxRow('6f1c1f4e-6a51-4a4c-9a55-3d1f0c3b2a10');
    await product.db.insertInto('outbox_events').values(row).execute();
    await expect(product.db.insertInto('outbox_events').values(row).execute()).rejects.toThrow(/uq_outbox_event_id/);
    await expect(product.db.updateTable('outbox_events').set({ status: 'PUBLISHED' }).where('event_id', '=', row.event_id).execute()).rejects.toThrow(
      /chk_outbox_published_at/,
    );
  });

  it('rings the outbox channel after an event commits, never from inside the writing transaction, and not for a rollback', async () => {
    // A database of its own: the rings of the other tests' inserts are sent after their commits, and
    // one still on its way when this test starts listening would be counted here.
    const product = await createTestDatabase('product');
    const listener = new pg.Client({ connectionString: product.url });
    await listener.connect();
    // PostgreSQL delivers notifications in commit order: once our own marker has arrived, anything
    // committed before it would have arrived first.
    const notifications: string[] = [];
    listener.on('notification', (message) => notifications.push(`${message.channel}:${message.payload ?? ''}`));
    const channel = WAKE_UP_CHANNELS.outbox;
    await listener.query(`LISTEN ${channel}`);
    // A bare Kysely (no wake-ups): whatever arrives was sent by the database itself, inside the transaction.
    const bare = new Kysely<ProductDatabase>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: product.url, max: 1 }) }) });
    const marker = async (n: number) => {
      await sql`SELECT pg_notify(${channel}, ${`marker-${n}`})`.execute(bare);
      await expect.poll(() => notifications, { timeout: 5_000 }).toContain(`${channel}:marker-${n}`);
    };
    try {
      const insert = (trx: Kysely<ProductDatabase>, eventId: string) => trx.insertInto('outbox_events').values(outboxRow(eventId)).execute();
      // The database does not notify: a NOTIFY in the writing transaction serialised every commit.
      await bare.transaction().execute((trx) => insert(trx, '0b7e4c8e-2f7e-4d43-8a57-7c0d5f7f2b00'));
      await marker(1);
      expect(notifications).toEqual([`${channel}:marker-1`]);

      // The services' connection rings after commit, and not for a rollback.
      await expect(
        product.db.transaction().execute(async (trx) => {
          await insert(trx, '0b7e4c8e-2f7e-4d43-8a57-7c0d5f7f2b01');
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      await product.db.transaction().execute((trx) => insert(trx, '0b7e4c8e-2f7e-4d43-8a57-7c0d5f7f2b02'));
      await expect.poll(() => notifications, { timeout: 5_000 }).toContain(`${channel}:`);
      await marker(2);
      expect(notifications).toEqual([`${channel}:marker-1`, `${channel}:`, `${channel}:marker-2`]);
    } finally {
      await bare.destroy();
      await listener.end();
      await product.destroy();
    }
  });
});

describe('payment_db and order_db constraints', () => {
  let payment: TestDatabase<'payment'>;
  let order: TestDatabase<'order'>;
  beforeAll(async () => {
    [payment, order] = await Promise.all([createTestDatabase('payment'), createTestDatabase('order')]);
  });
  afterAll(() => Promise.all([payment.destroy(), order.destroy()]));

  it('refuses to hold more money than the account has', async () => {
    await payment.db.insertInto('customer_accounts').values({ customer_id: 'c1', currency: 'USD', balance_minor: 1_000 }).execute();
    await expect(payment.db.updateTable('customer_accounts').set({ held_minor: 1_001 }).where('customer_id', '=', 'c1').execute()).rejects.toThrow(
      /chk_accounts_held/,
    );
  });

  it('refuses an order item whose line total does not match price times quantity', async () => {
    const { id: customerId } = await order.db.insertInto('customers').values({ name: 'n', email: 'n@example.com' }).returning('id').executeTakeFirstOrThrow();
    const orderId = '3d7c2a8e-1b8f-4f4e-9a2b-5c6d7e8f9a01';
    await order.db
      .insertInto('orders')
      .values({ id: orderId, customer_id: customerId, total_minor: 300, currency: 'USD', payment_method: 'account', confirmation_mode: 'auto', workflow_id: `order-${orderId}` })
      .execute();
    await expect(
      order.db
        .insertInto('order_items')
        .values({ order_id: orderId, product_id: orderId, sku: 's', product_name: 'p', quantity: 3, unit_price_minor: 100, line_total_minor: 299 })
        .execute(),
    ).rejects.toThrow(/order_items_check|line_total/);
    await expect(order.db.updateTable('orders').set({ status: 'FAILED' }).where('id', '=', orderId).execute()).rejects.toThrow(/chk_orders_failure/);
  });
});
