/** order_db: customers, orders and their items, and the order event timeline. Money in integer minor units. */
import type { Generated, JSONColumnType } from 'kysely';
import type { ConsumerTables, SharedTables, Timestamp } from '../shared-tables';

export type CustomerStatus = 'ACTIVE' | 'INACTIVE';

export interface CustomersTable {
  id: Generated<string>;
  name: string;
  email: string;
  status: Generated<CustomerStatus>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type OrderStatus = 'PENDING' | 'AWAITING_CONFIRMATION' | 'PAID' | 'FAILED' | 'COMPENSATION_FAILED' | 'CANCELLING' | 'CANCELLED';
export type ConfirmationMode = 'auto' | 'manual';

export interface OrdersTable {
  id: string;
  customer_id: string;
  status: Generated<OrderStatus>;
  total_minor: number;
  currency: string;
  payment_method: string;
  confirmation_mode: ConfirmationMode;
  workflow_id: string;
  failure_reason: string | null;
  payment_reservation_id: string | null;
  payment_id: string | null;
  cancellation_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface OrderItemsTable {
  id: Generated<number>;
  order_id: string;
  product_id: string;
  sku: string;
  product_name: string;
  quantity: number;
  /** Price the product service quoted when the order was placed, never the client's. */
  unit_price_minor: number;
  line_total_minor: number;
}

/** What the order service learned from the event topics: the order's timeline, one row per event. */
export interface OrderEventsTable {
  id: Generated<number>;
  order_id: string;
  event_id: string;
  event_type: string;
  topic: string;
  payload: JSONColumnType<Record<string, unknown>>;
  occurred_at: Timestamp;
  received_at: Timestamp;
}

export interface OrderDatabase extends SharedTables, ConsumerTables {
  customers: CustomersTable;
  orders: OrdersTable;
  order_items: OrderItemsTable;
  order_events: OrderEventsTable;
}
