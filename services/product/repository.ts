/**
 * product_db access. Functions that lock rows take a Transaction: the lock is only worth
 * something inside the transaction that acts on what it read.
 *
 * Lock order, everywhere: the order's TRY barrier row, then its reservations, then products by id.
 * The TRY barrier row is the per-order mutex (try inserts it; confirm, cancel, restock and the
 * sweeper lock it first), so two operations on one order never interleave and never deadlock.
 */
import { sql, type Insertable, type Kysely, type RawBuilder, type Selectable, type Transaction } from 'kysely';
import type { OutboxEventsTable, TccPhase } from '../../lib/shared-tables';
import type { ProductDatabase, ProductsTable, StockReservationsTable, StockReservationStatus } from '../../db/product/schema';
import { PREPARED } from '../../db/connection';
import { afterCursor, keysetCreatedAt, keysetDirection, toPage } from '../shared/keyset';
import { insertBarrier as insertBarrier_, insertBarrierStatement, tryBarrierWriter } from '../shared/tcc-barrier';
import { STOCK_BRANCH_ID } from './schemas';

export type ProductRow = Selectable<ProductsTable>;
export type StockReservationRow = Selectable<StockReservationsTable>;
/** A reservation with `due`: whether it has passed its expiry by the database clock. */
export type LockedReservationRow = StockReservationRow & { due: boolean };
type Db = Kysely<ProductDatabase> | Transaction<ProductDatabase>;

// ---- products ----

export interface NewProduct {
  /** Set by the caller only for fixed demo ids (infra/seed-demo.ts); otherwise the database makes one. */
  id?: string;
  sku: string;
  name: string;
  description: string | null;
  priceMinor: number;
  currency: string;
  stockQuantity: number;
}

/** Inserts the product, or returns undefined when its sku is taken. */
export async function insertProduct(trx: Transaction<ProductDatabase>, product: NewProduct): Promise<ProductRow | undefined> {
  return trx
    .insertInto('products')
    .values({
      ...(product.id ? { id: product.id } : {}),
      sku: product.sku,
      name: product.name,
      description: product.description,
      price_minor: product.priceMinor,
      currency: product.currency,
      stock_quantity: product.stockQuantity,
    })
    .onConflict((oc) => oc.constraint('uq_products_sku').doNothing())
    .returningAll()
    .executeTakeFirst();
}

/**
 * Sets a product's price and moves its version on, with the row locked; undefined when there is no
 * such product. The previous price comes back for the event.
 */
export async function updateProductPrice(
  trx: Transaction<ProductDatabase>,
  id: string,
  price: { priceMinor: number; currency: string },
): Promise<{ row: ProductRow; previousPriceMinor: number } | undefined> {
  const before = await trx.selectFrom('products').select('price_minor').where('id', '=', id).forUpdate().executeTakeFirst();
  if (!before) return undefined;
  const row = await trx
    .updateTable('products')
    .set({ price_minor: price.priceMinor, currency: price.currency, version: sql<number>`version + 1`, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return { row, previousPriceMinor: before.price_minor };
}

export async function findProductById(db: Db, id: string): Promise<ProductRow | undefined> {
  return db.selectFrom('products').selectAll().where('id', '=', id).executeTakeFirst();
}

/** One page of the catalogue, oldest first (see ../shared/keyset.ts). */
export async function listProducts(db: Db, page: { limit: number; cursor?: string | undefined }): Promise<{ rows: ProductRow[]; nextCursor: string | null }> {
  let query = db.selectFrom('products').selectAll().select(keysetCreatedAt);
  const after = afterCursor(page.cursor, 'oldest-first');
  if (after) query = query.where(after);
  const direction = keysetDirection('oldest-first');
  const fetched = await query.orderBy('created_at', direction).orderBy('id', direction).limit(page.limit + 1).execute();
  const { rows, nextCursor } = toPage(fetched, page.limit);
  return { rows: rows.map(({ keyset_created_at: _key, ...row }) => row), nextCursor };
}

/** Locks the products in id order (one order for every caller, so concurrent tries cannot deadlock). */
export async function lockProducts(trx: Transaction<ProductDatabase>, ids: readonly string[]): Promise<ProductRow[]> {
  if (ids.length === 0) return [];
  return trx.selectFrom('products').selectAll().where('id', 'in', ids).orderBy('id').forUpdate().execute();
}

/** Applies deltas to locked products; the table's CHECKs still refuse negative or over-reserved stock. */
export async function adjustProductQuantities(
  trx: Transaction<ProductDatabase>,
  productId: string,
  deltas: { stock?: number; reserved?: number },
): Promise<void> {
  await trx
    .updateTable('products')
    .set((eb) => ({
      stock_quantity: eb('stock_quantity', '+', deltas.stock ?? 0),
      reserved_quantity: eb('reserved_quantity', '+', deltas.reserved ?? 0),
      updated_at: sql<Date>`now()`,
    }))
    .where('id', '=', productId)
    .execute();
}

// ---- stock reservations ----

export async function insertReservations(
  trx: Transaction<ProductDatabase>,
  orderId: string,
  items: readonly { productId: string; quantity: number }[],
  ttlSeconds: number,
): Promise<StockReservationRow[]> {
  // The database clock decides expiry, so the sweeper and confirm judge it by the same clock.
  const expiresAt = sql<Date>`now() + make_interval(secs => ${ttlSeconds})`;
  const rows = await trx
    .insertInto('stock_reservations')
    .values(items.map((item) => ({ order_id: orderId, product_id: item.productId, quantity: item.quantity, status: 'RESERVED' as const, expires_at: expiresAt })))
    .returningAll()
    .execute();
  return rows.sort((a, b) => (a.product_id < b.product_id ? -1 : 1));
}

/** Orders whose stock is held (RESERVED): the stock participant's open TCC transactions. */
export async function countReservedOrders(db: Db): Promise<number> {
  const row = await db
    .selectFrom('stock_reservations')
    .select((eb) => eb.fn.count<string>('order_id').distinct().as('count'))
    .where('status', '=', 'RESERVED')
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** The order's reservations, locked (the caller already holds the order's TRY barrier row). */
export async function lockOrderReservations(trx: Transaction<ProductDatabase>, orderId: string): Promise<LockedReservationRow[]> {
  return trx
    .selectFrom('stock_reservations')
    .selectAll()
    .select(sql<boolean>`expires_at <= now()`.as('due'))
    .where('order_id', '=', orderId)
    .orderBy('product_id')
    .forUpdate()
    .execute();
}

export async function setReservationStatus(
  trx: Transaction<ProductDatabase>,
  reservationIds: readonly string[],
  status: Exclude<StockReservationStatus, 'RESERVED'>,
): Promise<void> {
  if (reservationIds.length === 0) return;
  const now = sql<Date>`now()`;
  await trx
    .updateTable('stock_reservations')
    .set({ status, ...(status === 'CONFIRMED' ? { confirmed_at: now } : { cancelled_at: now }) })
    .where('id', 'in', reservationIds)
    .execute();
}

export async function markRestocked(trx: Transaction<ProductDatabase>, reservationIds: readonly string[]): Promise<void> {
  if (reservationIds.length === 0) return;
  await trx.updateTable('stock_reservations').set({ restocked_at: sql<Date>`now()` }).where('id', 'in', reservationIds).execute();
}

// ---- TCC barrier and the two hot statements ----

/** The order's TRY barrier row, locked: the per-order mutex (see ../shared/tcc-barrier.ts). */
export const lockTryBarrier = (trx: Transaction<ProductDatabase>, orderId: string) => tryBarrierWriter(trx, STOCK_BRANCH_ID, orderId, { lock: true });
export const insertBarrier = (trx: Transaction<ProductDatabase>, orderId: string, operation: TccPhase, reason: TccPhase) =>
  insertBarrier_(trx, STOCK_BRANCH_ID, orderId, operation, reason);

/**
 * The outbox row of an event as a data-modifying CTE of a hot statement, written only `when` its
 * change was: `row` is outboxEventRow's (envelope made and its payload checked in JS), and the part
 * of the payload at `path` that only the statement knows (the rows it wrote) is set from `value`.
 */
function insertEventStatement(row: Insertable<OutboxEventsTable>, path: readonly string[], value: RawBuilder<unknown>, when: RawBuilder<boolean>): RawBuilder<unknown> {
  return sql`
    INSERT INTO outbox_events (event_id, aggregate_type, aggregate_id, event_type, payload, correlation_id, created_at, next_attempt_at)
    SELECT ${row.event_id}::uuid, ${row.aggregate_type}, ${row.aggregate_id}, ${row.event_type}, jsonb_set(${row.payload}::jsonb, ${['payload', ...path]}::text[], ${value}),
      ${row.correlation_id}, ${row.created_at}::timestamptz, ${row.next_attempt_at}::timestamptz
    WHERE ${when}`;
}

/** A timestamptz as JavaScript's toISOString writes it (the stored values are whole milliseconds). */
const isoTime = (column: RawBuilder<Date>) => sql<string>`to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * A try's writes in one statement, in the lock order above: the TRY barrier row (written, or the
 * statement does nothing more), then the products in id order, each raised by its quantity only if
 * it has the units available. That condition sits in the UPDATE's own WHERE, so a row changed since
 * the statement's snapshot is raised only if its newest version still has the units: two tries
 * never both take the last units. Only when every item was raised are the reservations and the
 * STOCK_RESERVED event (`event`, its reservations filled in here) inserted. The UPDATE changes only
 * rows the locking CTE has returned, so products are locked in id order and concurrent tries of
 * overlapping items cannot deadlock.
 *
 * `first` is false when the barrier row was already there (a repeat, or a cancel came first): then
 * nothing was written. `first` without reservations means some item was not raised (`raised` says
 * how many were, which the caller must roll back): its product is unknown or short, or only looks
 * short. PostgreSQL re-reads the newest version of a row only for rows whose snapshot version
 * matched the WHERE, so units freed by a transaction that committed while this statement ran are
 * not seen.
 */
export async function reserveInOneStatement(
  trx: Transaction<ProductDatabase>,
  reservation: { orderId: string; items: readonly { productId: string; quantity: number }[]; ttlSeconds: number; event: Insertable<OutboxEventsTable> },
): Promise<{ first: boolean; raised: number; reservations: StockReservationRow[] }> {
  const { orderId, items, ttlSeconds, event } = reservation;
  const productIds = items.map((item) => item.productId);
  const quantities = items.map((item) => item.quantity);
  const reservationsJson = sql`(SELECT jsonb_agg(jsonb_build_object('reservationId', id, 'productId', product_id, 'quantity', quantity, 'expiresAt', ${isoTime(sql`expires_at`)}) ORDER BY product_id) FROM reserved)`;
  const { rows } = await sql<{ first: boolean; raised: number } & { [K in keyof StockReservationRow]: StockReservationRow[K] | null }>`${PREPARED}
    WITH barrier AS (${insertBarrierStatement(STOCK_BRANCH_ID, orderId, 'try', 'try')}),
    item AS (SELECT * FROM unnest(${productIds}::uuid[], ${quantities}::int[]) AS i(product_id, quantity)),
    locked AS MATERIALIZED (
      SELECT id FROM products WHERE id = ANY(${productIds}::uuid[]) AND EXISTS (SELECT FROM barrier) ORDER BY id FOR UPDATE),
    raised AS (
      UPDATE products p SET reserved_quantity = p.reserved_quantity + item.quantity, updated_at = now()
      FROM item JOIN locked ON locked.id = item.product_id
      WHERE p.id = item.product_id AND p.stock_quantity - p.reserved_quantity >= item.quantity
      RETURNING p.id),
    reserved AS (
      -- Whole milliseconds, so the event's expiresAt and the answer's (a JavaScript Date) are the same instant.
      INSERT INTO stock_reservations (order_id, product_id, quantity, status, expires_at)
      SELECT ${orderId}, item.product_id, item.quantity, 'RESERVED', date_trunc('milliseconds', now() + make_interval(secs => ${ttlSeconds}))
      FROM item WHERE (SELECT count(*) FROM raised) = ${items.length}
      RETURNING *),
    event AS (${insertEventStatement(event, ['reservations'], reservationsJson, sql<boolean>`EXISTS (SELECT FROM reserved)`)})
    SELECT EXISTS (SELECT FROM barrier) AS first, (SELECT count(*)::int FROM raised) AS raised, reserved.*
    FROM (SELECT) AS one LEFT JOIN reserved ON true
    ORDER BY reserved.product_id`.execute(trx);
  const reservations = rows.filter((row) => row.id !== null).map(({ first: _first, raised: _raised, ...row }) => row as StockReservationRow);
  return { first: rows[0]!.first, raised: rows[0]!.raised, reservations };
}

/**
 * A confirm's writes in one statement, in the lock order above: the TRY barrier row (the per-order
 * mutex), the order's reservations marked CONFIRMED only if they are RESERVED and within their TTL
 * (checked in the UPDATE's WHERE, on the newest row), then their products in id order (stock and
 * reserved both drop), the CONFIRM barrier row and the STOCK_CONFIRMED event (`event`, its items
 * filled here). Returns the confirmed lines; none when nothing was written: the caller then decides
 * under the locks (the order may be unknown, cancelled, confirmed or expired, or its try may have
 * committed after this statement's snapshot was taken).
 */
export async function confirmInOneStatement(
  trx: Transaction<ProductDatabase>,
  orderId: string,
  event: Insertable<OutboxEventsTable>,
): Promise<{ product_id: string; quantity: number }[]> {
  const itemsJson = sql`(SELECT jsonb_agg(jsonb_build_object('productId', product_id, 'quantity', quantity) ORDER BY product_id) FROM marked)`;
  const { rows } = await sql<{ product_id: string; quantity: number }>`${PREPARED}
    WITH writer AS MATERIALIZED (
      SELECT reason FROM tcc_barriers WHERE transaction_id = ${orderId} AND branch_id = ${STOCK_BRANCH_ID} AND operation = 'try' FOR UPDATE),
    marked AS (
      UPDATE stock_reservations SET status = 'CONFIRMED', confirmed_at = now()
      WHERE order_id = ${orderId} AND status = 'RESERVED' AND expires_at > now() AND EXISTS (SELECT FROM writer WHERE reason = 'try')
      RETURNING product_id, quantity),
    locked AS MATERIALIZED (
      SELECT id FROM products WHERE id IN (SELECT product_id FROM marked) ORDER BY id FOR UPDATE),
    taken AS (
      UPDATE products p SET stock_quantity = p.stock_quantity - marked.quantity, reserved_quantity = p.reserved_quantity - marked.quantity, updated_at = now()
      FROM marked JOIN locked ON locked.id = marked.product_id
      WHERE p.id = marked.product_id),
    barrier AS (${insertBarrierStatement(STOCK_BRANCH_ID, orderId, 'confirm', 'confirm', sql<boolean>`EXISTS (SELECT FROM marked)`)}),
    event AS (${insertEventStatement(event, ['items'], itemsJson, sql<boolean>`EXISTS (SELECT FROM marked)`)})
    SELECT product_id, quantity FROM marked ORDER BY product_id`.execute(trx);
  return rows;
}

/**
 * Claims up to `limit` orders with RESERVED reservations past their expiry, by locking their TRY
 * barrier rows with SKIP LOCKED: an order another transaction is working on is left to it (or to
 * the next sweep), and several sweepers never wait on each other.
 */
export async function claimExpiredOrders(trx: Transaction<ProductDatabase>, limit: number): Promise<string[]> {
  const rows = await trx
    .selectFrom('tcc_barriers')
    .select('transaction_id')
    .where('branch_id', '=', STOCK_BRANCH_ID)
    .where('operation', '=', 'try')
    .where('transaction_id', 'in', (eb) =>
      eb
        .selectFrom('stock_reservations')
        .select('order_id')
        .where('status', '=', 'RESERVED')
        .where('expires_at', '<=', sql<Date>`now()`)
        .orderBy('expires_at')
        .limit(limit),
    )
    .forUpdate()
    .skipLocked()
    .execute();
  return rows.map((row) => row.transaction_id);
}
