/** product_db: catalogue, stock and TCC stock reservations. Money in integer minor units. */
import type { ColumnType, Generated } from 'kysely';
import type { NullableTimestamp, ParticipantTables, Timestamp } from '../../lib/shared-tables';

export interface ProductsTable {
  id: Generated<string>;
  sku: string;
  name: string;
  description: string | null;
  price_minor: number;
  currency: string;
  /** Units on hand, reserved ones included; confirmed (sold) units have left it. */
  stock_quantity: number;
  /** stock_quantity when the product was created; set by the database on insert. */
  initial_stock_quantity: ColumnType<number, never, never>;
  /** Units held by RESERVED reservations; available = stock_quantity - reserved_quantity. */
  reserved_quantity: Generated<number>;
  /** 1 when created, one more at each price change; carried on the product's catalogue events. */
  version: Generated<number>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type StockReservationStatus = 'RESERVED' | 'CONFIRMED' | 'CANCELLED' | 'EXPIRED';

export interface StockReservationsTable {
  id: Generated<string>;
  order_id: string;
  product_id: string;
  quantity: number;
  status: Generated<StockReservationStatus>;
  created_at: Timestamp;
  expires_at: Timestamp;
  confirmed_at: NullableTimestamp;
  cancelled_at: NullableTimestamp;
  /** Set when a cancelled paid order returned these confirmed units to stock (once). */
  restocked_at: NullableTimestamp;
}

export interface ProductDatabase extends ParticipantTables {
  products: ProductsTable;
  stock_reservations: StockReservationsTable;
}
