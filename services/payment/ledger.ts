/**
 * Every change to payment_db: opening accounts, the TCC try/confirm/cancel of payment holds, the
 * expiry of holds nobody settled, and refunds. Each change runs in one transaction that also writes
 * its barrier row (TCC operations) and the outbox event of what changed (a cancel that finds no
 * try writes none). A try refused for want of money changes nothing; its PAYMENT_FAILED event is
 * written afterwards in a transaction of its own.
 *
 * Lock order, everywhere: reservation row, then account row (tries take only the account row;
 * refunds take the payment row, then the account row). Holds are taken with a conditional UPDATE,
 * never read-modify-write.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { PaymentDatabase } from '../../db/payment/schema';
import { ApiError, ConflictError, NotFoundError } from '../shared/errors';
import { formatMinor } from '../../lib/money';
import { appendOutboxEvent } from '../../lib/outbox';
import {
  type Currency,
  CurrencyMismatchError,
  InsufficientFundsError,
  refundExceedsPayment,
  reservationAlreadyConfirmed,
  reservationCancelled,
  reservationExpired,
  reservationMismatch,
  reservationView,
  tryAfterCancel,
} from './domain';
import * as repo from './repository';
import type { TccEffect, TccEffected } from '../shared/tcc-metrics';
import type { AccountRow, PaymentRow, RefundRow, ReservationRow } from './repository';

type Db = Kysely<PaymentDatabase>;
type Trx = Transaction<PaymentDatabase>;

// ---- accounts -------------------------------------------------------------------------------

export async function openAccount(db: Db, input: { customerId: string; balanceMinor: number; currency: string }): Promise<AccountRow> {
  return db.transaction().execute(async (trx) => {
    const account = await repo.insertAccount(trx, input);
    if (!account) throw new ConflictError('ACCOUNT_ALREADY_EXISTS', `customer ${input.customerId} already has an account`, { customerId: input.customerId });
    await appendOutboxEvent(trx, {
      eventType: 'ACCOUNT_OPENED',
      aggregateId: account.customer_id,
      payload: { customerId: account.customer_id, balance: formatMinor(account.balance_minor), currency: account.currency as Currency },
      correlationId: account.customer_id,
    });
    return account;
  });
}

export async function getAccount(db: Db, customerId: string): Promise<AccountRow> {
  const account = await repo.findAccount(db, customerId);
  if (!account) throw new NotFoundError('account', customerId);
  return account;
}

// ---- try ------------------------------------------------------------------------------------

export interface TryInput {
  orderId: string;
  customerId: string;
  amountMinor: number;
  currency: string;
}

/**
 * TCC try: holds the amount on the customer's account for `ttlSeconds`. Idempotent per order: a
 * repeated try returns the order's reservation as it now is (effect noop). Refused with
 * TRY_AFTER_CANCEL when the order's cancel got here first.
 *
 * Not enough available money: the try's transaction rolls back (nothing held, no barrier, so a
 * later retry may succeed) and PAYMENT_FAILED is then written in a transaction of its own: the
 * refusal is a decision the order saga and auditors care about, though no state changed.
 */
export async function tryReservePayment(db: Db, input: TryInput, ttlSeconds: number): Promise<{ reservation: ReservationRow } & TccEffected> {
  try {
    return await db.transaction().execute(async (trx) => {
      // The barrier row is the first write: a concurrent try or cancel for this order waits on it.
      const { first, reservation } = await repo.holdInOneStatement(trx, { ...input, ttlSeconds });
      if (!first) return repeatedTry(trx, input);
      if (!reservation) throw await refusal(trx, input);
      // The event carries what the API shows of the hold, less its (always 'reserved') status.
      const { status: _status, ...payload } = reservationView(reservation);
      await appendOutboxEvent(trx, { eventType: 'PAYMENT_RESERVED', aggregateId: reservation.order_id, payload, correlationId: reservation.order_id });
      return { reservation, effect: 'applied' as const };
    });
  } catch (error) {
    if (error instanceof InsufficientFundsError) {
      await db.transaction().execute((trx) =>
        appendOutboxEvent(trx, {
          eventType: 'PAYMENT_FAILED',
          aggregateId: input.orderId,
          payload: { orderId: input.orderId, reservationId: null, reason: error.message, errorCode: error.code },
          correlationId: input.orderId,
        }),
      );
    }
    throw error;
  }
}

/** Why a first try took no hold (the transaction then rolls back, barrier row included). */
async function refusal(trx: Trx, input: TryInput): Promise<ApiError> {
  const account = await repo.findAccount(trx, input.customerId);
  if (!account) return new NotFoundError('account', input.customerId);
  if (account.currency !== input.currency) return new CurrencyMismatchError(account.currency, input.currency);
  return new InsufficientFundsError(input.amountMinor, account.balance_minor - account.held_minor);
}

async function repeatedTry(trx: Trx, input: TryInput): Promise<{ reservation: ReservationRow } & TccEffected> {
  if ((await repo.tryBarrierReason(trx, input.orderId)) === 'cancel') throw tryAfterCancel(input.orderId);
  const existing = await repo.findReservationByOrder(trx, input.orderId);
  // A TRY barrier written by a try is committed together with its reservation.
  if (!existing) throw new Error(`order ${input.orderId}: TRY barrier without a payment reservation`);
  if (existing.customer_id !== input.customerId || existing.amount_minor !== input.amountMinor || existing.currency !== input.currency) {
    throw reservationMismatch(input.orderId, existing);
  }
  return { reservation: existing, effect: 'noop' };
}

// ---- confirm --------------------------------------------------------------------------------

/**
 * TCC confirm: captures the held amount (balance and held both drop) and records the payment.
 * Confirm after confirm returns the same payment (effect noop). A hold whose TTL has passed is
 * expired here and now, in its own committed change, and the confirm is refused.
 */
export async function confirmReservation(db: Db, reservationId: string, paymentMethod: string): Promise<{ payment: PaymentRow } & TccEffected> {
  const outcome = await db.transaction().execute(async (trx) => {
    const transactionId = `TXN-${randomUUID()}`;
    const payment = await repo.captureInOneStatement(trx, reservationId, { paymentMethod, transactionId });
    if (payment) {
      await appendOutboxEvent(trx, {
        eventType: 'PAYMENT_COMPLETED',
        aggregateId: payment.order_id,
        payload: {
          paymentId: payment.id,
          reservationId: payment.reservation_id,
          orderId: payment.order_id,
          amount: formatMinor(payment.amount_minor),
          currency: payment.currency as Currency,
          transactionId,
          paymentMethod,
        },
        correlationId: payment.order_id,
      });
      return { kind: 'confirmed' as const, payment, effect: 'applied' as const };
    }
    // Nothing captured: the reservation is unknown, no longer RESERVED, or past its TTL.
    const reservation = await repo.lockReservation(trx, { id: reservationId });
    if (!reservation) throw new NotFoundError('reservation', reservationId);
    switch (reservation.status) {
      case 'CONFIRMED': {
        const confirmed = await repo.findPaymentByReservation(trx, reservation.id);
        if (!confirmed) throw new Error(`reservation ${reservation.id} is CONFIRMED without a payment`);
        return { kind: 'confirmed' as const, payment: confirmed, effect: 'noop' as const };
      }
      case 'CANCELLED':
        throw reservationCancelled(reservation.id);
      case 'EXPIRED':
        throw reservationExpired(reservation.id);
      case 'RESERVED':
        if (!reservation.is_past_expiry) throw new Error(`reservation ${reservation.id} is RESERVED within its TTL, yet was not captured`);
        await expireHeldReservation(trx, reservation);
        return { kind: 'expired' as const };
    }
  });
  // Thrown after the commit, so the expiry stands while the confirm is refused.
  if (outcome.kind === 'expired') throw reservationExpired(reservationId);
  return outcome;
}

// ---- cancel ---------------------------------------------------------------------------------

export interface CancelOutcome {
  orderId: string;
  /** null when the cancel arrived before any try: only the barrier was written. */
  reservationId: string | null;
  /** 'expired': the hold had already expired, so there was nothing left to release. */
  status: 'cancelled' | 'expired';
  /** applied: this call released the hold; barrier: it came before any try; noop: a repeat, or the hold had expired. */
  effect: TccEffect;
}

/**
 * TCC cancel by reservation id, or by order id for a caller that never saw the try's answer.
 * Cancel after cancel returns the same answer; cancel after confirm is refused. A cancel by order
 * that finds no try writes the TRY barrier itself (reason CANCEL) plus its CANCEL row, so the try,
 * should it still arrive, is refused and nothing ends up held. That barrier-only cancel writes no
 * outbox event: no reservation exists and no money moved.
 */
export async function cancelReservation(db: Db, by: { reservationId: string } | { orderId: string }): Promise<CancelOutcome> {
  return db.transaction().execute(async (trx) => {
    if ('orderId' in by) {
      // Waits for an in-flight try of this order (it holds the TRY row), then sees its outcome.
      if (await repo.insertBarrier(trx, by.orderId, 'try', 'cancel')) {
        await repo.insertBarrier(trx, by.orderId, 'cancel', 'cancel');
        return { orderId: by.orderId, reservationId: null, status: 'cancelled', effect: 'barrier' };
      }
      if ((await repo.tryBarrierReason(trx, by.orderId)) === 'cancel') return { orderId: by.orderId, reservationId: null, status: 'cancelled', effect: 'noop' };
    }
    const reservation = await repo.lockReservation(trx, 'orderId' in by ? { orderId: by.orderId } : { id: by.reservationId });
    if (!reservation) {
      if ('orderId' in by) throw new Error(`order ${by.orderId}: TRY barrier without a payment reservation`);
      throw new NotFoundError('reservation', by.reservationId);
    }
    const unchanged = (status: CancelOutcome['status']): CancelOutcome => ({ orderId: reservation.order_id, reservationId: reservation.id, status, effect: 'noop' });
    switch (reservation.status) {
      case 'CANCELLED':
        return unchanged('cancelled');
      case 'EXPIRED':
        return unchanged('expired');
      case 'CONFIRMED':
        throw reservationAlreadyConfirmed(reservation.id);
      case 'RESERVED':
        break;
    }
    await repo.insertBarrier(trx, reservation.order_id, 'cancel', 'cancel');
    await repo.releaseHeldFunds(trx, reservation.customer_id, reservation.amount_minor);
    await repo.markReservation(trx, reservation.id, { status: 'CANCELLED' });
    await appendPaymentCancelled(trx, reservation, 'CANCELLED');
    return { orderId: reservation.order_id, reservationId: reservation.id, status: 'cancelled', effect: 'applied' };
  });
}

// ---- expiry ---------------------------------------------------------------------------------

async function appendPaymentCancelled(trx: Trx, reservation: ReservationRow, reason: 'CANCELLED' | 'EXPIRED'): Promise<void> {
  await appendOutboxEvent(trx, {
    eventType: 'PAYMENT_CANCELLED',
    aggregateId: reservation.order_id,
    payload: {
      reservationId: reservation.id,
      orderId: reservation.order_id,
      amount: formatMinor(reservation.amount_minor),
      currency: reservation.currency as Currency,
      reason,
    },
    correlationId: reservation.order_id,
  });
}

/** Frees a locked RESERVED hold whose TTL has passed and marks it EXPIRED. */
async function expireHeldReservation(trx: Trx, reservation: ReservationRow): Promise<void> {
  await repo.releaseHeldFunds(trx, reservation.customer_id, reservation.amount_minor);
  await repo.markReservation(trx, reservation.id, { status: 'EXPIRED' });
  await appendPaymentCancelled(trx, reservation, 'EXPIRED');
}

/**
 * Expires every overdue hold, `batchSize` per transaction, and returns how many. SKIP LOCKED leaves
 * holds being confirmed or cancelled right now (and other sweepers' batches) alone; accounts are
 * updated in customer order so two sweepers never deadlock on them.
 */
export async function expirePaymentReservations(db: Db, batchSize = 100): Promise<number> {
  let expired = 0;
  for (;;) {
    const released = await db.transaction().execute(async (trx) => {
      const overdue = await repo.lockExpiredReservations(trx, batchSize);
      overdue.sort((a, b) => (a.customer_id < b.customer_id ? -1 : a.customer_id > b.customer_id ? 1 : 0));
      for (const reservation of overdue) await expireHeldReservation(trx, reservation);
      return overdue.length;
    });
    expired += released;
    if (released < batchSize) return expired;
  }
}

// ---- payments and refunds -------------------------------------------------------------------

export async function getPayment(db: Db, paymentId: string): Promise<{ payment: PaymentRow; refunds: RefundRow[] }> {
  const payment = await repo.findPayment(db, paymentId);
  if (!payment) throw new NotFoundError('payment', paymentId);
  return { payment, refunds: await repo.listRefunds(db, [payment.id]) };
}

export async function listPayments(db: Db, filter: { orderId?: string; customerId?: string; limit: number }) {
  const payments = await repo.listPayments(db, filter);
  return { payments, refunds: await repo.listRefunds(db, payments.map((payment) => payment.id)) };
}

async function recordRefund(trx: Trx, payment: PaymentRow, refund: { amountMinor: number; reason: string | null; source: 'API' | 'ORDER'; idempotencyKey?: string | null }) {
  const recorded = await repo.insertRefund(trx, payment, refund);
  await repo.creditBalance(trx, payment.customer_id, refund.amountMinor);
  await appendOutboxEvent(trx, {
    eventType: 'PAYMENT_REFUNDED',
    aggregateId: payment.order_id,
    payload: {
      refundId: recorded.refund.id,
      paymentId: payment.id,
      orderId: payment.order_id,
      amount: formatMinor(refund.amountMinor),
      currency: payment.currency as Currency,
      reason: refund.reason,
    },
    correlationId: payment.order_id,
  });
  return recorded;
}

/**
 * Refunds `amountMinor` (or everything not yet refunded) to the customer's balance. With an
 * Idempotency-Key, a refund already made under that key is returned (effect noop) instead of
 * paying again: the key's stored answer is written only after this commits, so it alone cannot
 * stop a retry whose first attempt committed but never recorded its answer.
 */
export async function refundPayment(
  db: Db,
  paymentId: string,
  input: { amountMinor?: number; reason: string | null; idempotencyKey?: string | null },
): Promise<{ payment: PaymentRow; refund: RefundRow } & TccEffected> {
  return db.transaction().execute(async (trx) => {
    const payment = await repo.lockPayment(trx, { id: paymentId });
    if (!payment) throw new NotFoundError('payment', paymentId);
    if (input.idempotencyKey) {
      const earlier = await repo.findRefundByIdempotencyKey(trx, payment.id, input.idempotencyKey);
      if (earlier) {
        if (input.amountMinor !== undefined && input.amountMinor !== earlier.amount_minor) {
          throw new ApiError(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
        }
        return { payment, refund: earlier, effect: 'noop' };
      }
    }
    const refundable = payment.amount_minor - payment.refunded_minor;
    const amountMinor = input.amountMinor ?? refundable;
    if (amountMinor === 0 || amountMinor > refundable) throw refundExceedsPayment(payment.id, amountMinor, refundable);
    const recorded = await recordRefund(trx, payment, { amountMinor, reason: input.reason, source: 'API', idempotencyKey: input.idempotencyKey });
    return { ...recorded, effect: 'applied' as const };
  });
}

/**
 * The order saga's refund: returns whatever of the order's payment is not yet refunded, exactly
 * once per payment however often it is called (the payment row lock serialises callers, and a
 * unique index allows one ORDER refund per payment). refund is null when earlier refunds had
 * already returned everything.
 */
export async function refundOrder(db: Db, orderId: string, reason: string | null): Promise<{ payment: PaymentRow; refund: RefundRow | null } & TccEffected> {
  return db.transaction().execute(async (trx) => {
    const payment = await repo.lockPayment(trx, { orderId });
    if (!payment) throw new ApiError(404, 'PAYMENT_NOT_FOUND', `order ${orderId} has no captured payment`, { orderId });
    const existing = await repo.findOrderRefund(trx, payment.id);
    if (existing) return { payment, refund: existing, effect: 'noop' };
    const refundable = payment.amount_minor - payment.refunded_minor;
    if (refundable === 0) return { payment, refund: null, effect: 'noop' };
    const recorded = await recordRefund(trx, payment, { amountMinor: refundable, reason, source: 'ORDER' });
    return { ...recorded, effect: 'applied' as const };
  });
}
