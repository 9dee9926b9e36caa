/**
 * order_db access for the order service's HTTP side: customers, and orders as placed. Status
 * changes after creation belong to the saga's activities (activities/order.ts), not to this module.
 */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { CustomerStatus, OrderDatabase, OrderItemsTable, OrderStatus, OrdersTable, CustomersTable } from '../../db/order/schema';

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

export async function listOrders(
  db: OrderDb,
  filter: { customerId?: string | undefined; status?: OrderStatus | undefined; limit: number; offset: number },
): Promise<{ orders: OrderWithItems[]; total: number }> {
  let query = db.selectFrom('orders');
  if (filter.customerId) query = query.where('customer_id', '=', filter.customerId);
  if (filter.status) query = query.where('status', '=', filter.status);
  const [rows, count] = await Promise.all([
    query.selectAll().orderBy('created_at', 'desc').orderBy('id').limit(filter.limit).offset(filter.offset).execute(),
    query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  const items = await itemsOf(
    db,
    rows.map((row) => row.id),
  );
  return { orders: rows.map((order) => ({ order, items: items.get(order.id) ?? [] })), total: Number(count.total) };
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
