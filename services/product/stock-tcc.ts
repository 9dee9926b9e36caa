/**
 * The stock TCC participant: try reserves units, confirm deducts them, cancel releases them,
 * restock returns confirmed units of a cancelled paid order, and expiry releases what nobody
 * confirmed in time. Each operation runs in one transaction that holds the order's TRY barrier
 * row (the per-order mutex, see repository.ts), changes stock and reservations, and writes exactly
 * one outbox event when something changed. Repeats change nothing and write nothing.
 */
import type { Kysely, Transaction } from 'kysely';
import type { ProductDatabase } from '../../db/product/schema';
import { ApiError, ConflictError } from '../shared/errors';
import type { TccEffected } from '../shared/tcc-metrics';
import { appendOutboxEvent, outboxEventRow } from '../../lib/outbox';
import {
  PRODUCT_ERROR_CODES as CODES,
  type CancelStockResponse,
  type ConfirmStockResponse,
  type RestockResponse,
  type TryStockBody,
  type TryStockResponse,
} from './schemas';
import {
  adjustProductQuantities,
  claimExpiredOrders,
  confirmInOneStatement,
  insertBarrier,
  lockOrderReservations,
  lockProducts,
  lockTryBarrier,
  insertReservations,
  markRestocked,
  reserveInOneStatement,
  setReservationStatus,
  type LockedReservationRow,
  type StockReservationRow,
} from './repository';

type ProductDb = Kysely<ProductDatabase>;
type ProductTrx = Transaction<ProductDatabase>;

/** The answer of a stock operation, with whether it changed state (and wrote its event) or repeated an earlier outcome. */
export interface Outcome<T> extends TccEffected {
  response: T;
}

export class InsufficientStockError extends ConflictError {
  constructor(
    readonly orderId: string,
    readonly shortages: { productId: string; requested: number; available: number }[],
  ) {
    const first = shortages[0]!;
    super(CODES.insufficientStock, `insufficient stock for product ${first.productId}: requested ${first.requested}, available ${first.available}`, {
      ...first,
      shortages,
    });
  }
}

/**
 * A refusal decided inside a transaction whose writes must still commit (an expiry found on the
 * way): the transaction returns it, and it is thrown only after the commit.
 */
class RefuseAfterCommit {
  constructor(readonly error: ApiError) {}
}

async function transact<T>(db: ProductDb, work: (trx: ProductTrx) => Promise<T | RefuseAfterCommit>): Promise<T> {
  const result = await db.transaction().execute(work);
  if (result instanceof RefuseAfterCommit) throw result.error;
  return result;
}

const reservationCancelled = (orderId: string) => new ConflictError(CODES.reservationCancelled, `the stock reservation of order ${orderId} was cancelled`, { orderId });
const reservationExpired = (orderId: string) => new ConflictError(CODES.reservationExpired, `the stock reservation of order ${orderId} expired`, { orderId });
const reservationNotFound = (orderId: string) => new ApiError(404, CODES.reservationNotFound, `order ${orderId} has no stock reservation`, { orderId });

/** All reservations of an order move together, so they share one status. */
function orderStatus(orderId: string, rows: readonly StockReservationRow[]): StockReservationRow['status'] {
  const statuses = new Set(rows.map((row) => row.status));
  if (statuses.size !== 1) throw new Error(`reservations of order ${orderId} disagree on their status: ${[...statuses].join(', ')}`);
  return rows[0]!.status;
}

const lines = (rows: readonly Pick<StockReservationRow, 'product_id' | 'quantity'>[]) => rows.map((row) => ({ productId: row.product_id, quantity: row.quantity }));

/** Frees the reserved units of RESERVED reservations and records why (cancel or expiry). */
async function releaseReservations(trx: ProductTrx, orderId: string, rows: readonly StockReservationRow[], reason: 'CANCELLED' | 'EXPIRED'): Promise<void> {
  await lockProducts(
    trx,
    rows.map((row) => row.product_id),
  );
  for (const row of rows) await adjustProductQuantities(trx, row.product_id, { reserved: -row.quantity });
  await setReservationStatus(
    trx,
    rows.map((row) => row.id),
    reason === 'CANCELLED' ? 'CANCELLED' : 'EXPIRED',
  );
  await appendOutboxEvent(trx, { eventType: 'STOCK_RELEASED', aggregateId: orderId, correlationId: orderId, payload: { orderId, items: lines(rows), reason } });
}

function tryResponse(orderId: string, rows: readonly StockReservationRow[], status: TryStockResponse['status']): TryStockResponse {
  return {
    orderId,
    reservations: rows.map((row) => ({ reservationId: row.id, productId: row.product_id, quantity: row.quantity, expiresAt: row.expires_at.toISOString() })),
    status,
  };
}

function sameItems(rows: readonly StockReservationRow[], items: TryStockBody['items']): boolean {
  const key = (productId: string, quantity: number) => `${productId}:${quantity}`;
  const existing = new Set(rows.map((row) => key(row.product_id, row.quantity)));
  return rows.length === items.length && items.every((item) => existing.has(key(item.productId, item.quantity)));
}

/**
 * TRY: reserves every item or nothing. A repeated try for the same order answers with the
 * existing reservation; a try after its order's cancel is refused (the cancel left a barrier).
 *
 * The try is one statement (reserveInOneStatement) when it can reserve everything. When it cannot,
 * the try is decided statement by statement under the product locks: the statement judges a
 * product on its snapshot's row first, so a shortage it sees may already be gone, while one found
 * under the locks is real. That goes on in the same transaction when the statement raised nothing
 * (a single-item try always), and in a new one after a rollback when it raised some items.
 *
 * When stock is short the reservation transaction rolls back and a STOCK_RESERVATION_FAILED event
 * is written in a transaction of its own: the failure changed no stock, but it is a decision other
 * services may act on. If the process dies between the two, the caller still got its 409 and no
 * state is wrong; only the notification is missing. Each refused attempt is its own event.
 */
export async function tryReserveStock(db: ProductDb, request: TryStockBody, ttlSeconds: number): Promise<Outcome<TryStockResponse>> {
  try {
    try {
      return await transact(db, (trx) => tryInOneStatement(trx, request, ttlSeconds));
    } catch (error) {
      if (!(error instanceof NotReservedInOneStatement)) throw error;
      return await transact(db, (trx) => tryStepByStep(trx, request, ttlSeconds));
    }
  } catch (error) {
    if (error instanceof InsufficientStockError) await recordReservationFailure(db, error);
    throw error;
  }
}

/** Thrown to roll back a one-statement try that raised some items but not all (and the barrier row with it). */
class NotReservedInOneStatement extends Error {}

async function tryInOneStatement(trx: ProductTrx, request: TryStockBody, ttlSeconds: number): Promise<Outcome<TryStockResponse> | RefuseAfterCommit> {
  const { orderId, items } = request;
  // The event's reservations are the rows the statement writes: it fills them in.
  const { row: event } = outboxEventRow({ eventType: 'STOCK_RESERVED', aggregateId: orderId, correlationId: orderId, payload: { orderId, reservations: [] } });
  const { first, raised, reservations } = await reserveInOneStatement(trx, { orderId, items, ttlSeconds, event });
  if (!first) return answerRepeatedTry(trx, request);
  if (reservations.length > 0) return { effect: 'applied', response: tryResponse(orderId, reservations, 'reserved') };
  // The barrier row written here is this try's: with nothing raised, the decision goes on here.
  if (raised === 0) return reserveStepByStep(trx, request, ttlSeconds);
  throw new NotReservedInOneStatement(`order ${orderId}: ${raised} of ${items.length} items were raised in one statement`);
}

async function tryStepByStep(trx: ProductTrx, request: TryStockBody, ttlSeconds: number): Promise<Outcome<TryStockResponse> | RefuseAfterCommit> {
  if (!(await insertBarrier(trx, request.orderId, 'try', 'try'))) return answerRepeatedTry(trx, request);
  return reserveStepByStep(trx, request, ttlSeconds);
}

/** Reserves every item or refuses, with the order's TRY barrier row written and the products locked here. */
async function reserveStepByStep(trx: ProductTrx, request: TryStockBody, ttlSeconds: number): Promise<Outcome<TryStockResponse>> {
  const { orderId, items } = request;
  const products = await lockProducts(
    trx,
    items.map((item) => item.productId),
  );
  const byId = new Map(products.map((product) => [product.id, product]));
  const missing = items.filter((item) => !byId.has(item.productId)).map((item) => item.productId);
  if (missing.length > 0) {
    throw new ApiError(404, CODES.productNotFound, `unknown product${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, { productIds: missing });
  }
  const shortages = items.flatMap((item) => {
    const product = byId.get(item.productId)!;
    const available = product.stock_quantity - product.reserved_quantity;
    return available < item.quantity ? [{ productId: item.productId, requested: item.quantity, available }] : [];
  });
  if (shortages.length > 0) throw new InsufficientStockError(orderId, shortages);

  for (const item of items) await adjustProductQuantities(trx, item.productId, { reserved: item.quantity });
  const rows = await insertReservations(trx, orderId, items, ttlSeconds);
  const response = tryResponse(orderId, rows, 'reserved');
  await appendOutboxEvent(trx, {
    eventType: 'STOCK_RESERVED',
    aggregateId: orderId,
    correlationId: orderId,
    payload: { orderId, reservations: response.reservations },
  });
  return { effect: 'applied', response };
}

/** The TRY barrier row was already there: a cancel came first, or this try repeats an earlier one. */
async function answerRepeatedTry(trx: ProductTrx, request: TryStockBody): Promise<Outcome<TryStockResponse> | RefuseAfterCommit> {
  const { orderId } = request;
  if ((await lockTryBarrier(trx, orderId)) === 'cancel') {
    throw new ConflictError(CODES.tryAfterCancel, `order ${orderId} was cancelled before its try arrived; nothing is reserved`, { orderId });
  }
  return repeatedTry(trx, request);
}

async function repeatedTry(trx: ProductTrx, request: TryStockBody): Promise<Outcome<TryStockResponse> | RefuseAfterCommit> {
  const { orderId } = request;
  const rows = await lockOrderReservations(trx, orderId);
  if (!sameItems(rows, request.items)) {
    throw new ConflictError(CODES.tryConflict, `order ${orderId} already reserved different items`, { orderId, reserved: lines(rows) });
  }
  switch (orderStatus(orderId, rows)) {
    case 'RESERVED':
      if (rows.some((row) => row.due)) {
        await releaseReservations(trx, orderId, rows, 'EXPIRED');
        return new RefuseAfterCommit(reservationExpired(orderId));
      }
      return { effect: 'noop', response: tryResponse(orderId, rows, 'reserved') };
    case 'CONFIRMED':
      return { effect: 'noop', response: tryResponse(orderId, rows, 'confirmed') };
    case 'CANCELLED':
      throw reservationCancelled(orderId);
    case 'EXPIRED':
      throw reservationExpired(orderId);
  }
}

async function recordReservationFailure(db: ProductDb, error: InsufficientStockError): Promise<void> {
  const first = error.shortages[0]!;
  await db.transaction().execute((trx) =>
    appendOutboxEvent(trx, {
      eventType: 'STOCK_RESERVATION_FAILED',
      aggregateId: error.orderId,
      correlationId: error.orderId,
      payload: { orderId: error.orderId, productId: first.productId, reason: CODES.insufficientStock, requestedQuantity: first.requested, availableQuantity: first.available },
    }),
  );
}

/**
 * CONFIRM: the reserved units leave stock for good, in one statement (confirmInOneStatement) when
 * the reservations are RESERVED and within their TTL. Confirming twice is a no-op; confirming a
 * cancelled or expired reservation is refused. A reservation past its expiry that the sweeper has
 * not reached yet is expired here (and that commits) before the refusal.
 */
export async function confirmStock(db: ProductDb, orderId: string): Promise<Outcome<ConfirmStockResponse>> {
  // The event's items are the reservations the statement confirms: it fills them in.
  const { row: event } = outboxEventRow({ eventType: 'STOCK_CONFIRMED', aggregateId: orderId, correlationId: orderId, payload: { orderId, items: [] } });
  return transact(db, async (trx) => {
    const confirmed = await confirmInOneStatement(trx, orderId, event);
    if (confirmed.length > 0) return { effect: 'applied' as const, response: { orderId, items: lines(confirmed), status: 'confirmed' as const } };
    // Nothing confirmed in one statement: decided here under the locks. The order may be unknown,
    // cancelled, already confirmed or past its TTL, or its try committed after the statement began.
    const writer = await lockTryBarrier(trx, orderId);
    if (writer === undefined) throw reservationNotFound(orderId);
    if (writer === 'cancel') throw reservationCancelled(orderId);
    const rows = await lockOrderReservations(trx, orderId);
    const response: ConfirmStockResponse = { orderId, items: lines(rows), status: 'confirmed' };
    switch (orderStatus(orderId, rows)) {
      case 'CONFIRMED':
        return { effect: 'noop' as const, response };
      case 'CANCELLED':
        throw reservationCancelled(orderId);
      case 'EXPIRED':
        throw reservationExpired(orderId);
      case 'RESERVED':
        break;
    }
    if (rows.some((row) => row.due)) {
      await releaseReservations(trx, orderId, rows, 'EXPIRED');
      return new RefuseAfterCommit(reservationExpired(orderId));
    }
    await lockProducts(
      trx,
      rows.map((row) => row.product_id),
    );
    for (const row of rows) await adjustProductQuantities(trx, row.product_id, { stock: -row.quantity, reserved: -row.quantity });
    await setReservationStatus(
      trx,
      rows.map((row) => row.id),
      'CONFIRMED',
    );
    await insertBarrier(trx, orderId, 'confirm', 'confirm');
    await appendOutboxEvent(trx, { eventType: 'STOCK_CONFIRMED', aggregateId: orderId, correlationId: orderId, payload: { orderId, items: response.items } });
    return { effect: 'applied' as const, response };
  });
}

/**
 * CANCEL: releases the reserved units. Cancelling twice, or cancelling what already expired, is a
 * no-op that answers with the released items; cancelling a confirmed reservation is refused (use
 * restock). A cancel that arrives before its try writes the try's barrier row itself, so the late
 * try is refused instead of reserving units nobody will release.
 */
export async function cancelStock(db: ProductDb, orderId: string): Promise<Outcome<CancelStockResponse>> {
  return transact(db, async (trx) => {
    if (await insertBarrier(trx, orderId, 'try', 'cancel')) {
      // Nothing was reserved, so nothing changes but the barrier: no event.
      await insertBarrier(trx, orderId, 'cancel', 'cancel');
      return { effect: 'barrier' as const, response: { orderId, releasedItems: [], status: 'released' as const } };
    }
    const writer = await lockTryBarrier(trx, orderId);
    const rows: LockedReservationRow[] = writer === 'cancel' ? [] : await lockOrderReservations(trx, orderId);
    const response: CancelStockResponse = { orderId, releasedItems: lines(rows), status: 'released' };
    if (rows.length === 0) return { effect: 'noop' as const, response };
    switch (orderStatus(orderId, rows)) {
      case 'CANCELLED':
      case 'EXPIRED':
        return { effect: 'noop' as const, response };
      case 'CONFIRMED':
        throw new ConflictError(CODES.reservationAlreadyConfirmed, `the stock of order ${orderId} is already confirmed; restock it instead`, { orderId });
      case 'RESERVED':
        break;
    }
    await releaseReservations(trx, orderId, rows, 'CANCELLED');
    await insertBarrier(trx, orderId, 'cancel', 'cancel');
    return { effect: 'applied' as const, response };
  });
}

/**
 * RESTOCK: a cancelled paid order's confirmed units go back on the shelf, exactly once
 * (restocked_at marks them). Only confirmed reservations can be restocked.
 */
export async function restockOrder(db: ProductDb, orderId: string): Promise<Outcome<RestockResponse>> {
  return transact(db, async (trx) => {
    const writer = await lockTryBarrier(trx, orderId);
    const rows = writer === 'try' ? await lockOrderReservations(trx, orderId) : [];
    if (rows.length === 0) throw reservationNotFound(orderId);
    const status = orderStatus(orderId, rows);
    if (status !== 'CONFIRMED') {
      throw new ConflictError(CODES.reservationNotConfirmed, `the stock of order ${orderId} is ${status.toLowerCase()}, not confirmed: nothing to restock`, { orderId, status });
    }
    const response: RestockResponse = { orderId, restockedItems: lines(rows), status: 'restocked' };
    if (rows.every((row) => row.restocked_at !== null)) return { effect: 'noop' as const, response };
    await lockProducts(
      trx,
      rows.map((row) => row.product_id),
    );
    for (const row of rows) await adjustProductQuantities(trx, row.product_id, { stock: row.quantity });
    await markRestocked(
      trx,
      rows.map((row) => row.id),
    );
    await appendOutboxEvent(trx, { eventType: 'STOCK_RELEASED', aggregateId: orderId, correlationId: orderId, payload: { orderId, items: response.restockedItems, reason: 'RESTOCKED' } });
    return { effect: 'applied' as const, response };
  });
}

/**
 * Expires every RESERVED reservation past its expiry: frees the units, marks the rows EXPIRED and
 * writes one STOCK_RELEASED (reason EXPIRED) per order. Orders another transaction holds are
 * skipped (SKIP LOCKED) and left to it or the next sweep. Returns how many orders it expired.
 */
export async function expireStockReservations(db: ProductDb, { batchSize = 100 }: { batchSize?: number } = {}): Promise<number> {
  let expired = 0;
  for (;;) {
    const { claimed, released } = await db.transaction().execute(async (trx) => {
      const orderIds = await claimExpiredOrders(trx, batchSize);
      const due: { orderId: string; rows: LockedReservationRow[] }[] = [];
      for (const orderId of orderIds) {
        // Re-read under the lock: a confirm or cancel may have committed since the claim's snapshot.
        const rows = await lockOrderReservations(trx, orderId);
        if (rows.length > 0 && orderStatus(orderId, rows) === 'RESERVED' && rows.some((row) => row.due)) due.push({ orderId, rows });
      }
      // Lock every product of the batch at once, in id order: locking order by order would take
      // product locks out of order and could deadlock with a concurrent try.
      await lockProducts(trx, [...new Set(due.flatMap(({ rows }) => rows.map((row) => row.product_id)))]);
      for (const { orderId, rows } of due) await releaseReservations(trx, orderId, rows, 'EXPIRED');
      return { claimed: orderIds.length, released: due.length };
    });
    expired += released;
    if (claimed < batchSize) return expired;
  }
}
