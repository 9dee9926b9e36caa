/**
 * A real product service for tests: a freshly migrated product database, the app built by
 * buildProductApp, real Redis. Route tests use `app.inject`; suites that need the service over
 * HTTP (workflows calling the stock TCC) use `startTestProductService`, which listens on a free port.
 */
import { sql, type Kysely } from 'kysely';
import type { Redis } from 'ioredis';
import type { ProductDatabase } from '../../db/product/schema';
import { buildProductApp } from '../../services/product/app';
import type { Config } from '../../lib/config';
import { createMetricsRegistry } from '../../lib/metrics';
import { createRedis } from '../../lib/redis';
import { asOperator, asWorker, type AuthHeaders } from './auth';
import { createTestDatabase, type TestDatabase } from './database';
import { testConfig } from './stack';

export interface TestProductService {
  /** Its database, also as the worker reaches it (oms_worker), e.g. for an outbox relay under test. */
  database: TestDatabase<'product'>;
  app: Awaited<ReturnType<typeof buildProductApp>>;
  /** Base URL when listening (startTestProductService), empty for inject-only services. */
  url: string;
  db: Kysely<ProductDatabase>;
  config: Config;
  redis: Redis;
  /** Authorization of an operator: creating products. */
  operator: AuthHeaders;
  /** Authorization of the saga worker: the stock TCC and restock routes. */
  worker: AuthHeaders;
  /** The authorization the real caller of `url` holds: the worker for /stock/*, an operator otherwise. */
  authFor: (url: string) => AuthHeaders;
  close: () => Promise<void>;
}

export interface TestProductServiceOptions {
  /** Configuration overrides, e.g. RESERVATION_TTL_SECONDS: '1'. */
  overrides?: Record<string, string>;
  /** Listen on 127.0.0.1, port 0 (a free one). */
  listen?: boolean;
  /** Another Redis than the stack's (a closed port simulates Redis being down). */
  redisUrl?: string;
}

export async function createTestProductService({ overrides = {}, listen = false, redisUrl }: TestProductServiceOptions = {}): Promise<TestProductService> {
  const config = testConfig(overrides);
  const database = await createTestDatabase('product');
  const redis = createRedis(redisUrl ? { ...config, REDIS_URL: redisUrl } : config);
  // A test that points at a closed port expects errors; they must not crash the process.
  redis.on('error', () => undefined);
  // The stack's Redis is up: wait for the connection, so the first request does not meet a Redis
  // that is still connecting (commands fail fast instead of queueing).
  if (!redisUrl && redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  const app = await buildProductApp({ config, db: database.db, redis, logger: false, metrics: createMetricsRegistry('product-service') });
  const operator = await asOperator();
  let url = '';
  if (listen) {
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  } else {
    await app.ready();
  }
  return {
    app,
    url,
    database,
    db: database.db,
    config,
    redis,
    operator,
    worker: asWorker(),
    authFor: (path) => (path.startsWith('/stock/') ? asWorker() : operator),
    close: async () => {
      await app.close();
      redis.disconnect();
      await database.destroy();
    },
  };
}

/** The product service listening on a free local port, over a fresh database; close() tears it all down. */
export function startTestProductService(overrides: Record<string, string> = {}): Promise<TestProductService> {
  return createTestProductService({ overrides, listen: true });
}

let skuCounter = 0;

/** Creates a product through the API (as a client would) and returns its id. */
export async function createTestProduct(
  service: TestProductService,
  { stockQuantity, price = '10.00', currency = 'USD' }: { stockQuantity: number; price?: string; currency?: string },
): Promise<string> {
  skuCounter += 1;
  const response = await service.app.inject({
    method: 'POST',
    url: '/products',
    headers: service.operator,
    payload: { sku: `SKU-${process.pid}-${skuCounter}-${Date.now()}`, name: `Test product ${skuCounter}`, price, currency, stockQuantity },
  });
  if (response.statusCode !== 201) throw new Error(`creating a test product answered ${response.statusCode}: ${response.body}`);
  return response.json<{ id: string }>().id;
}

/** The stock figures of one product, straight from the database. */
export async function stockOf(db: Kysely<ProductDatabase>, productId: string): Promise<{ stock: number; reserved: number; available: number }> {
  const row = await db.selectFrom('products').select(['stock_quantity', 'reserved_quantity']).where('id', '=', productId).executeTakeFirstOrThrow();
  return { stock: row.stock_quantity, reserved: row.reserved_quantity, available: row.stock_quantity - row.reserved_quantity };
}

/** Outbox event types written for one aggregate (an order id or a product id), in commit order. */
export async function outboxEventTypes(db: Kysely<ProductDatabase>, aggregateId: string): Promise<string[]> {
  const rows = await db.selectFrom('outbox_events').select('event_type').where('aggregate_id', '=', aggregateId).orderBy('id').execute();
  return rows.map((row) => row.event_type);
}

/**
 * Makes the database refuse the reservation insert of every order whose id starts with "forced-",
 * i.e. fail a try inside its transaction after stock was already adjusted. Returns the undo.
 */
export async function refuseForcedOrderReservations(db: Kysely<ProductDatabase>): Promise<() => Promise<void>> {
  await sql
    .raw(
      `CREATE FUNCTION refuse_forced_order() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.order_id LIKE 'forced-%' THEN RAISE EXCEPTION 'forced failure'; END IF;
         RETURN NEW;
       END $$`,
    )
    .execute(db);
  await sql`CREATE TRIGGER refuse_forced_order BEFORE INSERT ON stock_reservations FOR EACH ROW EXECUTE FUNCTION refuse_forced_order()`.execute(db);
  return async () => {
    await sql`DROP TRIGGER refuse_forced_order ON stock_reservations`.execute(db);
    await sql`DROP FUNCTION refuse_forced_order()`.execute(db);
  };
}
