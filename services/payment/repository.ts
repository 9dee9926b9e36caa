/**
 * payment_db access. Functions that lock rows or must share the business change's transaction take
 * a Transaction; plain reads take either. Money is integer minor units throughout.
 */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type {
  CustomerAccountsTable,
  PaymentDatabase,
  PaymentReservationsTable,
  PaymentsTable,
  RefundSource,
  RefundsTable,
} from '../../db/payment/schema';
import type { TccPhase } from '../../db/shared-tables';

type Db = Kysely<PaymentDatabase> | Transaction<PaymentDatabase>;
type Trx = Transaction<PaymentDatabase>;

export type AccountRow = Selectable<CustomerAccountsTable>;
export type ReservationRow = Selectable<PaymentReservationsTable>;
export type PaymentRow = Selectable<PaymentsTable>;
export type RefundRow = Selectable<RefundsTable>;

/** The branch id this participant uses in tcc_barriers; the transaction id is the order id. */
export const PAYMENT_BRANCH = 'payment';

// ---- accounts -------------------------------------------------------------------------------

/** Inserts the account unless it exists; undefined when it did. */
export async function insertAccount(trx: Trx, account: { customerId: string; currency: string; balanceMinor: number }): Promise<AccountRow | undefined> {
  return trx
    .insertInto('customer_accounts')
    .values({ customer_id: account.customerId, currency: account.currency, balance_minor: account.balanceMinor, created_at: sql`now()`, updated_at: sql`now()` })
    .onConflict((oc) => oc.column('customer_id').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function findAccount(db: Db, customerId: string): Promise<AccountRow | undefined> {
  return db.selectFrom('customer_accounts').selectAll().where('customer_id', '=', customerId).executeTakeFirst();
}

/**
 * Holds `amountMinor` only if that much is available, in one conditional UPDATE: concurrent tries
 * against one account serialise on its row and each re-checks the condition against the committed
 * balance, so no two can hold the same money. undefined when not enough is available.
 */
export async function holdFunds(trx: Trx, customerId: string, amountMinor: number): Promise<AccountRow | undefined> {
  return trx
    .updateTable('customer_accounts')
    .set((eb) => ({ held_minor: eb('held_minor', '+', amountMinor), updated_at: sql`now()` }))
    .where('customer_id', '=', customerId)
    .where(sql<boolean>`balance_minor - held_minor >= ${amountMinor}`)
    .returningAll()
    .executeTakeFirst();
}

export async function releaseHeldFunds(trx: Trx, customerId: string, amountMinor: number): Promise<void> {
  await trx
    .updateTable('customer_accounts')
    .set((eb) => ({ held_minor: eb('held_minor', '-', amountMinor), updated_at: sql`now()` }))
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow();
}

/** The held money leaves the account: balance and held both drop by the amount. */
export async function captureHeldFunds(trx: Trx, customerId: string, amountMinor: number): Promise<void> {
  await trx
    .updateTable('customer_accounts')
    .set((eb) => ({ balance_minor: eb('balance_minor', '-', amountMinor), held_minor: eb('held_minor', '-', amountMinor), updated_at: sql`now()` }))
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow();
}

export async function creditBalance(trx: Trx, customerId: string, amountMinor: number): Promise<void> {
  await trx
    .updateTable('customer_accounts')
    .set((eb) => ({ balance_minor: eb('balance_minor', '+', amountMinor), updated_at: sql`now()` }))
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow();
}

// ---- reservations ---------------------------------------------------------------------------

export async function insertReservation(
  trx: Trx,
  reservation: { orderId: string; customerId: string; amountMinor: number; currency: string; ttlSeconds: number },
): Promise<ReservationRow> {
  return trx
    .insertInto('payment_reservations')
    .values({
      order_id: reservation.orderId,
      customer_id: reservation.customerId,
      amount_minor: reservation.amountMinor,
      currency: reservation.currency,
      created_at: sql`now()`,
      // Database time, so the expiry the sweeper and confirm compare against is one clock.
      expires_at: sql`now() + make_interval(secs => ${reservation.ttlSeconds})`,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Payment holds RESERVED: the payment participant's open TCC transactions. */
export async function countReservedReservations(db: Db): Promise<number> {
  const row = await db
    .selectFrom('payment_reservations')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('status', '=', 'RESERVED')
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function findReservationByOrder(db: Db, orderId: string): Promise<ReservationRow | undefined> {
  return db.selectFrom('payment_reservations').selectAll().where('order_id', '=', orderId).executeTakeFirst();
}

export type LockedReservation = ReservationRow & { is_past_expiry: boolean };

/** Locks the reservation row for a confirm or cancel; also says whether its TTL has passed (database clock). */
export async function lockReservation(trx: Trx, by: { id: string } | { orderId: string }): Promise<LockedReservation | undefined> {
  let query = trx.selectFrom('payment_reservations').selectAll().select(sql<boolean>`expires_at <= now()`.as('is_past_expiry'));
  query = 'id' in by ? query.where('id', '=', by.id) : query.where('order_id', '=', by.orderId);
  return query.forUpdate().executeTakeFirst();
}

export async function markReservation(
  trx: Trx,
  id: string,
  change: { status: 'CONFIRMED'; transactionId: string } | { status: 'CANCELLED' | 'EXPIRED' },
): Promise<void> {
  await trx
    .updateTable('payment_reservations')
    .set(
      change.status === 'CONFIRMED'
        ? { status: 'CONFIRMED', confirmed_at: sql`now()`, transaction_id: change.transactionId }
        : { status: change.status, cancelled_at: sql`now()` },
    )
    .where('id', '=', id)
    .where('status', '=', 'RESERVED')
    .executeTakeFirstOrThrow();
}

/** Claims up to `limit` overdue holds; rows another transaction is confirming or cancelling are skipped, not waited for. */
export async function lockExpiredReservations(trx: Trx, limit: number): Promise<ReservationRow[]> {
  return trx
    .selectFrom('payment_reservations')
    .selectAll()
    .where('status', '=', 'RESERVED')
    .where('expires_at', '<=', sql<Date>`now()`)
    .orderBy('expires_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
}

// ---- payments and refunds -------------------------------------------------------------------

export async function insertPayment(
  trx: Trx,
  payment: { reservation: ReservationRow; paymentMethod: string; transactionId: string },
): Promise<PaymentRow> {
  const { reservation } = payment;
  return trx
    .insertInto('payments')
    .values({
      reservation_id: reservation.id,
      order_id: reservation.order_id,
      customer_id: reservation.customer_id,
      amount_minor: reservation.amount_minor,
      currency: reservation.currency,
      payment_method: payment.paymentMethod,
      transaction_id: payment.transactionId,
      created_at: sql`now()`,
      updated_at: sql`now()`,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findPaymentByReservation(db: Db, reservationId: string): Promise<PaymentRow | undefined> {
  return db.selectFrom('payments').selectAll().where('reservation_id', '=', reservationId).executeTakeFirst();
}

export async function findPayment(db: Db, paymentId: string): Promise<PaymentRow | undefined> {
  return db.selectFrom('payments').selectAll().where('id', '=', paymentId).executeTakeFirst();
}

export async function lockPayment(trx: Trx, by: { id: string } | { orderId: string }): Promise<PaymentRow | undefined> {
  const query = trx.selectFrom('payments').selectAll();
  return ('id' in by ? query.where('id', '=', by.id) : query.where('order_id', '=', by.orderId)).forUpdate().executeTakeFirst();
}

export async function listPayments(db: Db, filter: { orderId?: string; customerId?: string; limit: number }): Promise<PaymentRow[]> {
  let query = db.selectFrom('payments').selectAll();
  if (filter.orderId !== undefined) query = query.where('order_id', '=', filter.orderId);
  if (filter.customerId !== undefined) query = query.where('customer_id', '=', filter.customerId);
  return query.orderBy('created_at', 'desc').orderBy('id').limit(filter.limit).execute();
}

export async function listRefunds(db: Db, paymentIds: string[]): Promise<RefundRow[]> {
  if (paymentIds.length === 0) return [];
  return db.selectFrom('refunds').selectAll().where('payment_id', 'in', paymentIds).orderBy('created_at').orderBy('id').execute();
}

export async function findOrderRefund(db: Db, paymentId: string): Promise<RefundRow | undefined> {
  return db.selectFrom('refunds').selectAll().where('payment_id', '=', paymentId).where('source', '=', 'ORDER').executeTakeFirst();
}

/** The refund of this payment made under an Idempotency-Key, if any. */
export async function findRefundByIdempotencyKey(db: Db, paymentId: string, idempotencyKey: string): Promise<RefundRow | undefined> {
  return db.selectFrom('refunds').selectAll().where('payment_id', '=', paymentId).where('idempotency_key', '=', idempotencyKey).executeTakeFirst();
}

/** Records a refund against a locked payment and moves its refunded total and status on. */
export async function insertRefund(
  trx: Trx,
  payment: PaymentRow,
  refund: { amountMinor: number; reason: string | null; source: RefundSource; idempotencyKey?: string | null },
): Promise<{ refund: RefundRow; payment: PaymentRow }> {
  const inserted = await trx
    .insertInto('refunds')
    .values({
      payment_id: payment.id,
      amount_minor: refund.amountMinor,
      reason: refund.reason,
      source: refund.source,
      idempotency_key: refund.idempotencyKey ?? null,
      created_at: sql`now()`,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  const refunded = payment.refunded_minor + refund.amountMinor;
  const updated = await trx
    .updateTable('payments')
    .set({ refunded_minor: refunded, status: refunded === payment.amount_minor ? 'REFUNDED' : 'PARTIALLY_REFUNDED', updated_at: sql`now()` })
    .where('id', '=', payment.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return { refund: inserted, payment: updated };
}

// ---- TCC barrier ----------------------------------------------------------------------------

/**
 * Writes one barrier row (dtm's branch barrier) in the caller's transaction. Returns false when
 * the row was already there. A concurrent writer of the same row blocks here until the other
 * transaction ends, which is what serialises a try against a cancel for the same order.
 */
export async function insertBarrier(trx: Trx, orderId: string, operation: TccPhase, reason: TccPhase): Promise<boolean> {
  const inserted = await trx
    .insertInto('tcc_barriers')
    .values({ transaction_id: orderId, branch_id: PAYMENT_BRANCH, operation, reason, created_at: sql`now()` })
    .onConflict((oc) => oc.columns(['transaction_id', 'branch_id', 'operation']).doNothing())
    .returning('operation')
    .executeTakeFirst();
  return inserted !== undefined;
}

export async function findBarrier(db: Db, orderId: string, operation: TccPhase): Promise<{ reason: TccPhase } | undefined> {
  return db
    .selectFrom('tcc_barriers')
    .select('reason')
    .where('transaction_id', '=', orderId)
    .where('branch_id', '=', PAYMENT_BRANCH)
    .where('operation', '=', operation)
    .executeTakeFirst();
}
