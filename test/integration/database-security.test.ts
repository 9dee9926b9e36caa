/**
 * Least privilege and session bounds against the real PostgreSQL, on per-suite databases that, like
 * the real ones, belong to their service's role and are reached by the worker as oms_worker.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, DEFAULT_SESSION_TIMEOUTS, type SessionTimeouts } from '../../db/connection';
import { openMigrationDatabase, openServiceDatabase } from '../../db/databases';
import type { ProductDatabase } from '../../db/product/schema';
import { buildProductApp } from '../../services/product/app';
import { createMetricsRegistry } from '../../lib/metrics';
import { createRedis } from '../../lib/redis';
import { createTestDatabase, urlForDatabase, type TestDatabase } from '../helpers/database';
import { testConfig } from '../helpers/stack';

/** The SQLSTATE a statement fails with (undefined when it succeeds). */
async function sqlState(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code ?? (error as Error).message;
  }
}

describe('least privilege in PostgreSQL', () => {
  let order: TestDatabase<'order'>;
  let payment: TestDatabase<'payment'>;
  let product: TestDatabase<'product'>;
  beforeAll(async () => {
    [order, payment, product] = await Promise.all([createTestDatabase('order'), createTestDatabase('payment'), createTestDatabase('product')]);
  });
  afterAll(async () => {
    await Promise.all([order?.destroy(), payment?.destroy(), product?.destroy()]);
  });

  async function orderRow(): Promise<{ orderId: string; customerId: string }> {
    const customer = await order.db.insertInto('customers').values({ name: 'Ada', email: `${randomUUID()}@example.test` }).returning('id').executeTakeFirstOrThrow();
    const orderId = randomUUID();
    await order.db
      .insertInto('orders')
      .values({ id: orderId, customer_id: customer.id, total_minor: 100, currency: 'USD', payment_method: 'CARD', confirmation_mode: 'auto', workflow_id: `order-${orderId}` })
      .execute();
    return { orderId, customerId: customer.id };
  }

  it('ran the migrations as the owner: every table belongs to the service role', async () => {
    for (const [database, owner] of [
      [order, 'oms_order'],
      [payment, 'oms_payment'],
      [product, 'oms_product'],
    ] as const) {
      const { rows } = await sql<{ tableowner: string }>`SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'`.execute(database.db);
      expect(rows).toEqual([{ tableowner: owner }]);
    }
  });

  it('lets the worker do what its activities do on order_db, and nothing else', async () => {
    const { orderId, customerId } = await orderRow();
    // Allowed: read the customer and the order, move the status, write the outbox and the timeline.
    await expect(order.worker.selectFrom('customers').select('status').where('id', '=', customerId).executeTakeFirstOrThrow()).resolves.toEqual({ status: 'ACTIVE' });
    await order.worker.updateTable('orders').set({ status: 'FAILED', failure_reason: 'test' }).where('id', '=', orderId).execute();
    // Refused (42501 insufficient_privilege): customers are the order service's to create.
    expect(await sqlState(() => order.worker.insertInto('customers').values({ name: 'Eve', email: `${randomUUID()}@example.test` }).execute())).toBe('42501');
    expect(await sqlState(() => order.worker.updateTable('customers').set({ status: 'INACTIVE' }).where('id', '=', customerId).execute())).toBe('42501');
    expect(await sqlState(() => order.worker.deleteFrom('orders').where('id', '=', orderId).execute())).toBe('42501');
    // Only the columns a transition sets: not the amount.
    expect(await sqlState(() => order.worker.updateTable('orders').set({ total_minor: 1 }).where('id', '=', orderId).execute())).toBe('42501');
    // The items are read (the saga starter builds the saga's input from them), never written.
    await expect(order.worker.selectFrom('order_items').select(['product_id', 'unit_price_minor']).where('order_id', '=', orderId).execute()).resolves.toEqual([]);
    expect(await sqlState(() => order.worker.insertInto('order_items').values({ order_id: orderId, product_id: randomUUID(), sku: 'X', product_name: 'X', quantity: 1, unit_price_minor: 1, line_total_minor: 1 }).execute())).toBe('42501');
    expect(await sqlState(() => order.worker.selectFrom('idempotency_records').selectAll().execute())).toBe('42501');
    expect(await sqlState(() => sql`CREATE TABLE worker_was_here (id int)`.execute(order.worker))).toBe('42501');
    expect(await sqlState(() => sql`TRUNCATE outbox_events`.execute(order.worker))).toBe('42501');
  });

  it('lets the worker touch only the outbox on payment_db and product_db', async () => {
    await expect(sql`SELECT count(*) FROM outbox_events`.execute(payment.worker)).resolves.toBeDefined();
    expect(await sqlState(() => payment.worker.selectFrom('customer_accounts').selectAll().execute())).toBe('42501');
    expect(await sqlState(() => payment.worker.insertInto('customer_accounts').values({ customer_id: randomUUID(), currency: 'USD', balance_minor: 1_000_000 }).execute())).toBe('42501');
    expect(await sqlState(() => payment.worker.selectFrom('payments').selectAll().execute())).toBe('42501');
    // The relay never inserts: it may not forge an event either.
    expect(await sqlState(() => sql`INSERT INTO outbox_events (event_id, aggregate_type, aggregate_id, event_type, payload) VALUES (gen_random_uuid(), 'x', 'x', 'x', '{}')`.execute(payment.worker))).toBe('42501');
    expect(await sqlState(() => product.worker.updateTable('products').set({ stock_quantity: 0 }).execute())).toBe('42501');
  });

  it('keeps each service role out of the other services\' databases', async () => {
    const config = testConfig();
    // The product service's role, its own password, pointed at the payment database.
    const client = new pg.Client({ connectionString: urlForDatabase(config.PRODUCT_DATABASE_URL, payment.name) });
    const refused = await client.connect().then(
      () => undefined,
      (error: { code?: string; message: string }) => error,
    );
    await client.end().catch(() => undefined);
    expect(refused?.code).toBe('42501');
    expect(refused?.message).toContain(`permission denied for database "${payment.name}"`);
  });
});

describe('session bounds', () => {
  let product: TestDatabase<'product'>;
  const opened: { destroy: () => Promise<void> }[] = [];
  /** A pool on the product test database, as its owner, with `timeouts` overriding the defaults. */
  const pool = (timeouts: Partial<SessionTimeouts>, poolMax = 5) => {
    const db = createDatabase<unknown>({ connectionString: product.url, poolMax, timeouts: { ...DEFAULT_SESSION_TIMEOUTS, ...timeouts } });
    opened.push(db);
    return db;
  };
  beforeAll(async () => {
    product = await createTestDatabase('product');
  });
  afterAll(async () => {
    await Promise.all(opened.map((db) => db.destroy()));
    await product?.destroy();
  });

  it('cancels a statement that runs past statement_timeout (57014)', async () => {
    const started = Date.now();
    expect(await sqlState(() => sql`SELECT pg_sleep(5)`.execute(pool({ statementMs: 300 })))).toBe('57014');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('fails a lock wait past lock_timeout (55P03) instead of queueing behind the holder', async () => {
    const holder = pool({});
    const waiter = pool({ lockMs: 300 });
    const { id } = await product.db
      .insertInto('products')
      .values({ sku: `LOCK-${randomUUID()}`, name: 'Locked', price_minor: 100, currency: 'USD', stock_quantity: 5 })
      .returning('id')
      .executeTakeFirstOrThrow();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holding = holder.transaction().execute(async (trx) => {
      await sql`SELECT id FROM products WHERE id = ${id} FOR UPDATE`.execute(trx);
      locked();
      await released;
    });
    await isLocked;
    const started = Date.now();
    expect(await sqlState(() => sql`UPDATE products SET stock_quantity = 6 WHERE id = ${id}`.execute(waiter))).toBe('55P03');
    expect(Date.now() - started).toBeLessThan(3_000);
    release();
    await holding;
  });

  it('fails a pool acquire after the bound when every connection is busy, instead of hanging', async () => {
    const busy = pool({ acquireMs: 300 }, 1);
    const holding = sql`SELECT pg_sleep(2)`.execute(busy);
    const started = Date.now();
    const error = await sql`SELECT 1`.execute(busy).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).toBe('timeout exceeded when trying to connect');
    expect(Date.now() - started).toBeLessThan(1_500);
    await holding;
  });

  it('answers 503 DATABASE_TIMEOUT without the database\'s text when a request meets a bound', async () => {
    const config = testConfig();
    const db = createDatabase<ProductDatabase>({ connectionString: product.url, timeouts: { ...DEFAULT_SESSION_TIMEOUTS, lockMs: 300 } });
    opened.push(db);
    const redis = createRedis(config);
    redis.on('error', () => undefined);
    const app = await buildProductApp({ config, db, redis, logger: false, metrics: createMetricsRegistry('product-timeout-test') });
    const holder = pool({});
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    // A migration or an operator holding the table: the listing waits for it, then gives up.
    const holding = holder.transaction().execute(async (trx) => {
      await sql`LOCK TABLE products IN ACCESS EXCLUSIVE MODE`.execute(trx);
      locked();
      await released;
    });
    try {
      await isLocked;
      const response = await app.inject({ method: 'GET', url: '/products' });
      expect(response.statusCode).toBe(503);
      expect(response.headers['retry-after']).toBe('1');
      expect(response.json()).toMatchObject({ error: { code: 'DATABASE_TIMEOUT', message: 'the database did not answer in time; try again' } });
      expect(response.body).not.toMatch(/lock|products|canceling/i);
    } finally {
      release();
      await holding;
      await app.close();
      redis.disconnect();
    }
  });

  it('bounds the services\' sessions but not the migrations\' (a long migration is not cut short)', async () => {
    const config = testConfig({ PRODUCT_DATABASE_URL: product.url });
    const service = openServiceDatabase(config, 'product');
    const migration = openMigrationDatabase(config, 'product');
    opened.push(service, migration);
    const settings = async (db: Kysely<unknown>) =>
      (await sql<{ statement: string; lock: string }>`SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock`.execute(db)).rows[0];
    expect(await settings(service as Kysely<unknown>)).toEqual({ statement: '10s', lock: '5s' });
    expect(await settings(migration as Kysely<unknown>)).toEqual({ statement: '0', lock: '0' });
  });
});

