/**
 * order_db access for the order service's HTTP side: customers, and orders as placed. Status
 * changes after creation belong to the saga's activities (activities/order.ts), not to this module.
 */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { CustomerStatus, OrderDatabase, OrderItemsTable, OrderStatus, OrdersTable, CustomersTable } from '../../db/order/schema';
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

export async function insertCustomer(
  trx: OrderTrx,
  customer: { name: string; email: string; status: CustomerStatus },
): Promise<CustomerRow> {
  return trx.insertInto('customers').values(customer).returningAll().executeTakeFirstOrThrow();
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
    .where('status', 'in', ['PENDING', 'AWAITING_CONFIRMATION'])
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
  items: { productId: string; sku: string; productName: string; quantity: number; unitPriceMinor: number; lineTotalMinor: number }[];
}

/** Inserts the order (PENDING) and its items; the caller's transaction also carries ORDER_CREATED. */
export async function insertOrder(trx: OrderTrx, order: NewOrder): Promise<OrderWithItems> {
  const row = await trx
    .insertInto('orders')
    .values({
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
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  const items = await trx
    .insertInto('order_items')
    .values(
      order.items.map((item) => ({
        order_id: order.id,
        product_id: item.productId,
        sku: item.sku,
        product_name: item.productName,
        quantity: item.quantity,
        unit_price_minor: item.unitPriceMinor,
        line_total_minor: item.lineTotalMinor,
      })),
    )
    .returningAll()
    .execute();
  return { order: row, items };
}

async function itemsOf(db: OrderDb, orderIds: string[]): Promise<Map<string, OrderItemRow[]>> {
  const byOrder = new Map<string, OrderItemRow[]>(orderIds.map((id) => [id, []]));
  if (orderIds.length === 0) return byOrder;
  const rows = await db.selectFrom('order_items').selectAll().where('order_id', 'in', orderIds).orderBy('id').execute();
  for (const row of rows) byOrder.get(row.order_id)?.push(row);
  return byOrder;
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

/**
 * PENDING orders placed more than `minAgeSeconds` ago: the candidates whose createOrder saga may
 * never have started (the process died between the commit and the start). Oldest first.
 */
export async function findPendingOrdersOlderThan(db: OrderDb, minAgeSeconds: number, limit: number): Promise<OrderWithItems[]> {
  const rows = await db
    .selectFrom('orders')
    .selectAll()
    .where('status', '=', 'PENDING')
    .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${minAgeSeconds})`)
    .orderBy('created_at')
    .limit(limit)
    .execute();
  const items = await itemsOf(
    db,
    rows.map((row) => row.id),
  );
  return rows.map((order) => ({ order, items: items.get(order.id) ?? [] }));
}
