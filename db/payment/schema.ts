/** payment_db: customer accounts, TCC payment holds, captured payments and refunds. Money in integer minor units. */
import type { ColumnType, Generated } from 'kysely';
import type { NullableTimestamp, ParticipantTables, Timestamp } from '../../lib/shared-tables';

export interface CustomerAccountsTable {
  customer_id: string;
  currency: string;
  /** Money in the account, held amounts included; captured payments have left it. */
  balance_minor: number;
  /** balance_minor when the account was opened; set by the database on insert. */
  initial_balance_minor: ColumnType<number, never, never>;
  /** Sum of RESERVED holds; available = balance_minor - held_minor. */
  held_minor: Generated<number>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type PaymentReservationStatus = 'RESERVED' | 'CONFIRMED' | 'CANCELLED' | 'EXPIRED';

export interface PaymentReservationsTable {
  id: Generated<string>;
  order_id: string;
  customer_id: string;
  amount_minor: number;
  currency: string;
  status: Generated<PaymentReservationStatus>;
  created_at: Timestamp;
  expires_at: Timestamp;
  confirmed_at: NullableTimestamp;
  cancelled_at: NullableTimestamp;
  transaction_id: string | null;
}

export type PaymentStatus = 'COMPLETED' | 'PARTIALLY_REFUNDED' | 'REFUNDED';

export interface PaymentsTable {
  id: Generated<string>;
  reservation_id: string;
  order_id: string;
  customer_id: string;
  amount_minor: number;
  refunded_minor: Generated<number>;
  currency: string;
  payment_method: string;
  transaction_id: string;
  status: Generated<PaymentStatus>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface RefundsTable {
  id: Generated<string>;
  payment_id: string;
  amount_minor: number;
  reason: string | null;
  /** API: POST /payments/:paymentId/refunds; ORDER: the order saga's refund, at most one per payment. */
  source: Generated<RefundSource>;
  /** The Idempotency-Key of the API request that made it, so a retry finds it (unique per payment). */
  idempotency_key: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

export type RefundSource = 'API' | 'ORDER';

export interface PaymentDatabase extends ParticipantTables {
  customer_accounts: CustomerAccountsTable;
  payment_reservations: PaymentReservationsTable;
  payments: PaymentsTable;
  refunds: RefundsTable;
}
