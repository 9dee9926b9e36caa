/**
 * order_db access for the order service's HTTP side: customers, and orders as placed. Status
 * changes after creation belong to the saga's activities (activities/order.ts), but for one: the
 * customer's confirmation of a manual checkout (markOrderConfirming), a decision the API takes.
 */
import { sql, type Insertable, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { CustomerStatus, OrderDatabase, OrderItemsTable, OrderStatus, OrdersTable, CustomersTable } from '../../db/order/schema';
import type { OutboxEventsTable, SharedTables } from '../../lib/shared-tables';
import { appendOutboxEvent } from '../../lib/outbox';
import { afterCursor, keysetCreatedAt, keysetDirection, toPage } from '../shared/keyset';

export type OrderDb = Kysely<OrderDatabase>;
export type OrderTrx = Transaction<OrderDatabase>;
export type CustomerRow = Selectable<CustomersTable>;
export type OrderRow = Selectable<OrdersTable>;
export type OrderItemRow = Selectable<OrderItemsTable>;
export interface OrderWithItems {
  order: OrderRow;
  items: OrderItemRow[];
}

// ---- customers ----

export interface NewCustomer {
  name: string;
  email: string;
  status: CustomerStatus;
}

export async function insertCustomer(trx: OrderTrx, customer: NewCustomer, id?: string): Promise<CustomerRow> {
  return trx
    .insertInto('customers')
    .values({ ...customer, ...(id === undefined ? {} : { id }) })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findCustomer(db: OrderDb | OrderTrx, id: string): Promise<CustomerRow | undefined> {
  return db.selectFrom('customers').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Locks the customer's row for the rest of the transaction, so two requests that decide on the
 * customer's open orders (the open-checkout bound) decide one after the other. NO KEY UPDATE does
 * not wait for, or block, the key-share locks that inserting the customer's other orders takes.
 */
export async function lockCustomer(trx: OrderTrx, id: string): Promise<void> {
  await trx.selectFrom('customers').select('id').where('id', '=', id).forNoKeyUpdate().execute();
}

/** Manual checkouts of the customer still holding (or about to hold) stock and money. */
export async function countOpenCheckouts(trx: OrderTrx, customerId: string): Promise<number> {
  const row = await trx
    .selectFrom('orders')
    .select((eb) => eb.fn.countAll<string>().as('open'))
    .where('customer_id', '=', customerId)
    .where('confirmation_mode', '=', 'manual')
    .where('status', 'in', ['PENDING', 'AWAITING_CONFIRMATION', 'CONFIRMING'])
    .executeTakeFirstOrThrow();
  return Number(row.open);
}

export async function updateCustomerStatus(db: OrderDb, id: string, status: CustomerStatus): Promise<CustomerRow | undefined> {
  return db
    .updateTable('customers')
    .set({ status, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

// ---- orders ----

export interface NewOrder {
  id: string;
  customerId: string;
  totalMinor: number;
  currency: string;
  paymentMethod: string;
  confirmation: 'auto' | 'manual';
  workflowId: string;
  items: { productId: string; sku: string; productName: string; quantity: number; unitPriceMinor: number; lineTotalMinor: number; priceVersion: number }[];
}

/** An Idempotency-Key of POST /orders as it is stored with the order it created. */
export interface OrderRequestKey {
  requestHash: string;
  orderId: string;
}

export interface AcceptedOrder {
  order: NewOrder;
  /** ORDER_CREATED, as outboxEventRow made it. */
  event: Insertable<OutboxEventsTable>;
  /** The caller-scoped Idempotency-Key, when the client sent one. */
  requestKey?: { key: string; requestHash: string } | undefined;
}

/**
 * Writes an accepted order in ONE statement: the order (PENDING), its items, its ORDER_CREATED
 * event, its saga start intent and, when sent, its Idempotency-Key. One statement is atomic on its
 * own, so the common case needs no BEGIN and COMMIT and costs one round trip instead of seven;
 * foreign keys are checked at its end, so every part refers to the order it inserts. Fails with
 * PostgreSQL's 23503 on orders_customer_id_fkey for an unknown customer and 23505 on
 * order_request_keys_pkey for a key already recorded (see isUnknownCustomer, isUsedRequestKey):
 * either way nothing is written.
 */
export async function insertAcceptedOrder(db: OrderDb | OrderTrx, { order, event, requestKey }: AcceptedOrder): Promise<void> {
  const writes = db
    .with('new_order', (qb) =>
      qb.insertInto('orders').values({
        id: order.id,
        customer_id: order.customerId,
        total_minor: order.totalMinor,
        currency: order.currency,
        payment_method: order.paymentMethod,
        confirmation_mode: order.confirmation,
        workflow_id: order.workflowId,
        failure_reason: null,
        payment_reservation_id: null,
        payment_id: null,
        cancellation_reason: null,
      }),
    )
    .with('new_items', (qb) =>
      qb.insertInto('order_items').values(
        order.items.map((item) => ({
          order_id: order.id,
          product_id: item.productId,
          sku: item.sku,
          product_name: item.productName,
          quantity: item.quantity,
          unit_price_minor: item.unitPriceMinor,
          line_total_minor: item.lineTotalMinor,
          price_version: item.priceVersion,
        })),
      ),
    )
    .with('new_event', (qb) => (qb as unknown as Kysely<SharedTables>).insertInto('outbox_events').values(event))
    // The saga starts with the correlation id its ORDER_CREATED carries: the request's (lib/correlation.ts).
    .with('new_intent', (qb) => qb.insertInto('saga_start_intents').values({ order_id: order.id, last_error: null, correlation_id: event.correlation_id ?? null }));
  const written = sql<number>`1`.as('written');
  if (!requestKey) {
    await writes.selectNoFrom(written).execute();
    return;
  }
  await writes
    .with('new_request_key', (qb) =>
      qb.insertInto('order_request_keys').values({ idempotency_key: requestKey.key, request_hash: requestKey.requestHash, order_id: order.id }),
    )
    .selectNoFrom(written)
    .execute();
}

function violates(error: unknown, code: string, constraint: string): boolean {
  const pgError = error as { code?: string; constraint?: string };
  return pgError.code === code && pgError.constraint === constraint;
}

/** insertAcceptedOrder refused an order of a customer who does not exist. */
export const isUnknownCustomer = (error: unknown) => violates(error, '23503', 'orders_customer_id_fkey');
/** insertAcceptedOrder refused an Idempotency-Key that is already recorded. */
export const isUsedRequestKey = (error: unknown) => violates(error, '23505', 'order_request_keys_pkey');

/**
 * Frees `key` when its record is older than `ttlHours` (the key's life, as for the stored answers):
 * the key names a new request from then on. False when the key is still in force.
 */
export async function releaseExpiredRequestKey(db: OrderDb, key: string, ttlHours: number): Promise<boolean> {
  const deleted = await db
    .deleteFrom('order_request_keys')
    .where('idempotency_key', '=', key)
    .where('created_at', '<=', sql<Date>`now() - make_interval(hours => ${ttlHours})`)
    .executeTakeFirst();
  return deleted.numDeletedRows > 0n;
}

export async function findOrderRequestKey(db: OrderDb, key: string): Promise<OrderRequestKey | undefined> {
  const row = await db.selectFrom('order_request_keys').select(['request_hash', 'order_id']).where('idempotency_key', '=', key).executeTakeFirst();
  return row && { requestHash: row.request_hash, orderId: row.order_id };
}

/**
 * AWAITING_CONFIRMATION -> CONFIRMING, with ORDER_CONFIRMATION_REQUESTED, once the order's saga
 * accepted the customer's confirmation. Only from AWAITING_CONFIRMATION: a saga quick enough to
 * have marked the order PAID (or anything else) already keeps its word. Returns the order's status
 * after the call.
 */
export async function markOrderConfirming(db: OrderDb, id: string): Promise<OrderStatus | undefined> {
  return db.transaction().execute(async (trx) => {
    const moved = await trx
      .updateTable('orders')
      .set({ status: 'CONFIRMING', updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where('status', '=', 'AWAITING_CONFIRMATION')
      .returning('status')
      .executeTakeFirst();
    if (!moved) return (await trx.selectFrom('orders').select('status').where('id', '=', id).executeTakeFirst())?.status;
    await appendOutboxEvent(trx, { eventType: 'ORDER_CONFIRMATION_REQUESTED', aggregateId: id, correlationId: id, payload: { orderId: id } });
    return moved.status;
  });
}

async function itemsOf(db: OrderDb, orderIds: string[]): Promise<Map<string, OrderItemRow[]>> {
  const byOrder = new Map<string, OrderItemRow[]>(orderIds.map((id) => [id, []]));
  if (orderIds.length === 0) return byOrder;
  const rows = await db.selectFrom('order_items').selectAll().where('order_id', 'in', orderIds).orderBy('id').execute();
  for (const row of rows) byOrder.get(row.order_id)?.push(row);
  return byOrder;
}

/** The customer an order belongs to, or undefined when there is no such order. */
export async function findOrderCustomerId(db: OrderDb, id: string): Promise<string | undefined> {
  const row = await db.selectFrom('orders').select('customer_id').where('id', '=', id).executeTakeFirst();
  return row?.customer_id;
}

export async function findOrder(db: OrderDb, id: string): Promise<OrderWithItems | undefined> {
  const order = await db.selectFrom('orders').selectAll().where('id', '=', id).executeTakeFirst();
  if (!order) return undefined;
  const items = await itemsOf(db, [id]);
  return { order, items: items.get(id) ?? [] };
}

/** One page of orders, newest first, optionally of one customer and one status (see ../shared/keyset.ts). */
export async function listOrders(
  db: OrderDb,
  filter: { customerId?: string | undefined; status?: OrderStatus | undefined; limit: number; cursor?: string | undefined },
): Promise<{ orders: OrderWithItems[]; nextCursor: string | null }> {
  let query = db.selectFrom('orders').selectAll().select(keysetCreatedAt);
  if (filter.customerId) query = query.where('customer_id', '=', filter.customerId);
  if (filter.status) query = query.where('status', '=', filter.status);
  const after = afterCursor(filter.cursor, 'newest-first');
  if (after) query = query.where(after);
  const direction = keysetDirection('newest-first');
  const fetched = await query.orderBy('created_at', direction).orderBy('id', direction).limit(filter.limit + 1).execute();
  const { rows, nextCursor } = toPage(fetched, filter.limit);
  const items = await itemsOf(
    db,
    rows.map((row) => row.id),
  );
  return { orders: rows.map(({ keyset_created_at: _key, ...order }) => ({ order, items: items.get(order.id) ?? [] })), nextCursor };
}

/** The orders with these ids and their items (any order of ids; missing ones are left out). */
export async function findOrdersWithItems(db: OrderDb, ids: string[]): Promise<OrderWithItems[]> {
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('orders').selectAll().where('id', 'in', ids).execute();
  const items = await itemsOf(
    db,
    rows.map((row) => row.id),
  );
  return rows.map((order) => ({ order, items: items.get(order.id) ?? [] }));
}

// ---- saga start intents (written with the order by insertAcceptedOrder; drained by workers/saga-starter.ts) ----

export interface ClaimedIntent {
  order_id: string;
  attempts: number;
  correlation_id: string | null;
}

/**
 * Takes up to `limit` due intents for `leaseSeconds`: their next attempt moves past the lease, so a
 * second starter skips them, and a starter that dies mid-batch leaves them due again when the lease
 * ends. SKIP LOCKED keeps two starters' claims from waiting on each other.
 */
export async function claimDueIntents(db: OrderDb, limit: number, leaseSeconds: number): Promise<ClaimedIntent[]> {
  const { rows } = await sql<ClaimedIntent>`
    UPDATE saga_start_intents SET next_attempt_at = now() + make_interval(secs => ${leaseSeconds})
    WHERE order_id IN (
      SELECT order_id FROM saga_start_intents WHERE next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
    RETURNING order_id, attempts, correlation_id`.execute(db);
  return rows;
}

/** The intents whose saga exists now (started by this claim or an earlier one): done. */
export async function deleteIntents(db: OrderDb, orderIds: string[]): Promise<void> {
  if (orderIds.length === 0) return;
  await db.deleteFrom('saga_start_intents').where('order_id', 'in', orderIds).execute();
}

/** A failed start: tried again after `delayMs`. */
export async function postponeIntent(db: OrderDb, orderId: string, attempts: number, error: string, delayMs: number): Promise<void> {
  await db
    .updateTable('saga_start_intents')
    .set({ attempts, last_error: error.slice(0, 2_000), next_attempt_at: sql<Date>`now() + make_interval(secs => ${delayMs / 1000})` })
    .where('order_id', '=', orderId)
    .execute();
}

/** The admission backlog: PENDING orders (their saga not finished), and of those the ones whose saga has not started. */
export async function countSagaBacklog(db: OrderDb): Promise<{ pending: number; notStarted: number }> {
  const { rows } = await sql<{ pending: string; not_started: string }>`
    SELECT (SELECT count(*) FROM orders WHERE status = 'PENDING') AS pending,
           (SELECT count(*) FROM saga_start_intents i JOIN orders o ON o.id = i.order_id WHERE o.status = 'PENDING') AS not_started`.execute(db);
  return { pending: Number(rows[0]?.pending ?? 0), notStarted: Number(rows[0]?.not_started ?? 0) };
}
