/**
 * product_db access. Functions that lock rows take a Transaction: the lock is only worth
 * something inside the transaction that acts on what it read.
 *
 * Lock order, everywhere: the order's TRY barrier row, then its reservations, then products by id.
 * The TRY barrier row is the per-order mutex (try inserts it; confirm, cancel, restock and the
 * sweeper lock it first), so two operations on one order never interleave and never deadlock.
 */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { TccPhase } from '../../lib/shared-tables';
import type { ProductDatabase, ProductsTable, StockReservationsTable, StockReservationStatus } from '../../db/product/schema';
import { afterCursor, keysetCreatedAt, keysetDirection, toPage } from '../shared/keyset';
import { insertBarrier as insertBarrier_, tryBarrierWriter } from '../shared/tcc-barrier';
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

// ---- TCC barrier ----

/** The order's TRY barrier row, locked: the per-order mutex (see ../shared/tcc-barrier.ts). */
export const lockTryBarrier = (trx: Transaction<ProductDatabase>, orderId: string) => tryBarrierWriter(trx, STOCK_BRANCH_ID, orderId, { lock: true });
export const insertBarrier = (trx: Transaction<ProductDatabase>, orderId: string, operation: TccPhase, reason: TccPhase) =>
  insertBarrier_(trx, STOCK_BRANCH_ID, orderId, operation, reason);

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
