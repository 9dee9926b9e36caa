/** order_db: customers, orders and their items, and the order event timeline. Money in integer minor units. */
import type { Generated, JSONColumnType } from 'kysely';
import type { ConsumerTables, SharedTables, Timestamp } from '../../lib/shared-tables';

export type CustomerStatus = 'ACTIVE' | 'INACTIVE';

export interface CustomersTable {
  id: Generated<string>;
  name: string;
  email: string;
  status: Generated<CustomerStatus>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type OrderStatus = 'PENDING' | 'AWAITING_CONFIRMATION' | 'CONFIRMING' | 'PAID' | 'FAILED' | 'COMPENSATION_FAILED' | 'CANCELLING' | 'CANCELLED';
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
  /** The catalogue version of that price (catalogue_products.version); null on lines priced before the read model. */
  price_version: number | null;
}

/** An order whose createOrder saga is still to be started (workers/saga-starter.ts); deleted once it is. */
export interface SagaStartIntentsTable {
  order_id: string;
  attempts: Generated<number>;
  next_attempt_at: Timestamp;
  last_error: string | null;
  created_at: Timestamp;
  /** The request's correlation id, which the saga is started with (lib/correlation.ts). */
  correlation_id: string | null;
}

/** The order service's read model of the product catalogue, fed by PRODUCT_CREATED / PRODUCT_PRICE_CHANGED. */
export interface CatalogueProductsTable {
  product_id: string;
  sku: string;
  name: string;
  price_minor: number;
  currency: string;
  version: number;
  updated_at: Timestamp;
}

/** The Idempotency-Key of a POST /orders, written in the transaction of the order it created. */
export interface OrderRequestKeysTable {
  idempotency_key: string;
  request_hash: string;
  order_id: string;
  created_at: Timestamp;
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
  correlation_id: string | null;
}

export interface OrderDatabase extends SharedTables, ConsumerTables {
  customers: CustomersTable;
  orders: OrdersTable;
  order_items: OrderItemsTable;
  order_events: OrderEventsTable;
  saga_start_intents: SagaStartIntentsTable;
  catalogue_products: CatalogueProductsTable;
  order_request_keys: OrderRequestKeysTable;
}
