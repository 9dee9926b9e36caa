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
import type { TccPhase } from '../../lib/shared-tables';
import { PREPARED } from '../../db/connection';
import { insertBarrier as insertTccBarrier, insertBarrierStatement, tryBarrierWriter, type TccBranch } from '../shared/tcc-barrier';

type Db = Kysely<PaymentDatabase> | Transaction<PaymentDatabase>;
type Trx = Transaction<PaymentDatabase>;

export type AccountRow = Selectable<CustomerAccountsTable>;
export type ReservationRow = Selectable<PaymentReservationsTable>;
export type PaymentRow = Selectable<PaymentsTable>;
export type RefundRow = Selectable<RefundsTable>;

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

export async function releaseHeldFunds(trx: Trx, customerId: string, amountMinor: number): Promise<void> {
  await trx
    .updateTable('customer_accounts')
    .set((eb) => ({ held_minor: eb('held_minor', '-', amountMinor), updated_at: sql`now()` }))
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

/** Ends a RESERVED hold without a capture (a confirm marks it in captureInOneStatement). */
export async function markReservation(trx: Trx, id: string, change: { status: 'CANCELLED' | 'EXPIRED' }): Promise<void> {
  await trx
    .updateTable('payment_reservations')
    .set({ status: change.status, cancelled_at: sql`now()` })
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

// ---- TCC barrier and the two hot statements ----

/** The branch id this participant uses in tcc_barriers; the transaction id is the order id. */
export const PAYMENT_BRANCH = 'payment' satisfies TccBranch;

export const insertBarrier = (trx: Trx, orderId: string, operation: TccPhase, reason: TccPhase) => insertTccBarrier(trx, PAYMENT_BRANCH, orderId, operation, reason);
/** Who wrote the order's TRY row (a try, or a cancel that came first); read after the barrier insert waited for its writer. */
export const tryBarrierReason = (trx: Trx, orderId: string) => tryBarrierWriter(trx, PAYMENT_BRANCH, orderId, { lock: false });

/**
 * A try's writes in one statement: the TRY barrier row (written, or the statement does nothing
 * more), then the hold, taken with a conditional UPDATE only if the account has the currency and
 * the money available (concurrent tries on one account serialise on its row, and each re-checks
 * the condition against the committed balance, so no two hold the same money), then the
 * reservation, only if the hold was taken. `first` is false when the
 * barrier row was already there (nothing was written); `first` without a reservation means no hold
 * was possible: only the barrier row was written, and the caller rolls back.
 */
export async function holdInOneStatement(
  trx: Trx,
  reservation: { orderId: string; customerId: string; amountMinor: number; currency: string; ttlSeconds: number },
): Promise<{ first: boolean; reservation: ReservationRow | undefined }> {
  const { orderId, customerId, amountMinor, currency, ttlSeconds } = reservation;
  const { rows } = await sql<{ first: boolean } & { [K in keyof ReservationRow]: ReservationRow[K] | null }>`${PREPARED}
    WITH barrier AS (${insertBarrierStatement(PAYMENT_BRANCH, orderId, 'try', 'try')}),
    held AS (
      UPDATE customer_accounts SET held_minor = held_minor + ${amountMinor}, updated_at = now()
      WHERE customer_id = ${customerId} AND currency = ${currency} AND balance_minor - held_minor >= ${amountMinor} AND EXISTS (SELECT FROM barrier)
      RETURNING customer_id),
    reserved AS (
      INSERT INTO payment_reservations (order_id, customer_id, amount_minor, currency, created_at, expires_at)
      SELECT ${orderId}, customer_id, ${amountMinor}, ${currency}, now(), now() + make_interval(secs => ${ttlSeconds}) FROM held
      RETURNING *)
    SELECT EXISTS (SELECT FROM barrier) AS first, reserved.* FROM (SELECT) AS one LEFT JOIN reserved ON true`.execute(trx);
  const [{ first, ...row }] = rows as [(typeof rows)[number]];
  return { first, reservation: row.id === null ? undefined : (row as ReservationRow) };
}

/**
 * A confirm's writes in one statement, in the lock order above: the reservation row, and only when
 * it is RESERVED and within its TTL, the CONFIRM barrier row, the capture from the account, the
 * payment and the reservation marked CONFIRMED. `payment` is undefined when nothing was written
 * (the caller decides why from the locked reservation).
 */
export async function captureInOneStatement(trx: Trx, reservationId: string, { paymentMethod, transactionId }: { paymentMethod: string; transactionId: string }): Promise<PaymentRow | undefined> {
  const { rows } = await sql<PaymentRow>`${PREPARED}
    WITH reservation AS MATERIALIZED (
      SELECT * FROM payment_reservations WHERE id = ${reservationId} AND status = 'RESERVED' AND expires_at > now() FOR UPDATE),
    barrier AS (${insertBarrierStatement(PAYMENT_BRANCH, sql`(SELECT order_id FROM reservation)`, 'confirm', 'confirm', sql<boolean>`EXISTS (SELECT FROM reservation)`)}),
    captured AS (
      UPDATE customer_accounts a SET balance_minor = a.balance_minor - r.amount_minor, held_minor = a.held_minor - r.amount_minor, updated_at = now()
      FROM reservation r WHERE a.customer_id = r.customer_id
      RETURNING a.customer_id),
    payment AS (
      INSERT INTO payments (reservation_id, order_id, customer_id, amount_minor, currency, payment_method, transaction_id, created_at, updated_at)
      SELECT r.id, r.order_id, r.customer_id, r.amount_minor, r.currency, ${paymentMethod}, ${transactionId}, now(), now()
      FROM reservation r WHERE EXISTS (SELECT FROM captured)
      RETURNING *),
    marked AS (
      UPDATE payment_reservations SET status = 'CONFIRMED', confirmed_at = now(), transaction_id = ${transactionId}
      WHERE id IN (SELECT reservation_id FROM payment))
    SELECT * FROM payment`.execute(trx);
  return rows[0];
}
