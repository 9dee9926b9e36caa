/**
 * The payment participant's refusals (each a stable API code) and how its rows look in the API:
 * amounts as exact decimal strings, statuses in lower case.
 */
import type { z } from 'zod';
import { formatMinor, type currencyCode } from '../../lib/money';
import { ApiError, ConflictError } from '../shared/errors';
import type { AccountRow, PaymentRow, RefundRow, ReservationRow } from './repository';

/**
 * The message travels further than the service's callers (PAYMENT_FAILED's reason, the order
 * timeline), so it names no amounts; the amounts are in the details, for the TCC caller only.
 */
export class InsufficientFundsError extends ApiError {
  constructor(requiredMinor: number, availableMinor: number) {
    super(402, 'INSUFFICIENT_FUNDS', 'not enough available funds for this payment', {
      required: formatMinor(requiredMinor),
      available: formatMinor(availableMinor),
    });
  }
}

export class CurrencyMismatchError extends ApiError {
  constructor(accountCurrency: string, requested: string) {
    super(422, 'CURRENCY_MISMATCH', `the account holds ${accountCurrency}, the request is in ${requested}`, { accountCurrency, requested });
  }
}

export const tryAfterCancel = (orderId: string) =>
  new ConflictError('TRY_AFTER_CANCEL', `order ${orderId} was cancelled before its try arrived; nothing is held`, { orderId });

export const reservationCancelled = (reservationId: string) =>
  new ConflictError('RESERVATION_CANCELLED', `reservation ${reservationId} was cancelled`, { reservationId });

export const reservationExpired = (reservationId: string) =>
  new ConflictError('RESERVATION_EXPIRED', `reservation ${reservationId} expired; its funds were released`, { reservationId });

export const reservationAlreadyConfirmed = (reservationId: string) =>
  new ConflictError('RESERVATION_ALREADY_CONFIRMED', `reservation ${reservationId} was confirmed; refund the payment instead`, { reservationId });

export const reservationMismatch = (orderId: string, existing: ReservationRow) =>
  new ConflictError('RESERVATION_MISMATCH', `order ${orderId} already has a reservation with other terms`, {
    orderId,
    reservationId: existing.id,
    customerId: existing.customer_id,
    amount: formatMinor(existing.amount_minor),
    currency: existing.currency,
  });

export const refundExceedsPayment = (paymentId: string, requestedMinor: number, refundableMinor: number) =>
  new ConflictError('REFUND_EXCEEDS_PAYMENT', `payment ${paymentId} has ${formatMinor(refundableMinor)} left to refund`, {
    paymentId,
    requested: formatMinor(requestedMinor),
    refundable: formatMinor(refundableMinor),
  });

/** Rows only ever hold currencies the API accepted (its schemas refuse any other). */
export type Currency = z.infer<typeof currencyCode>;

export type ReservationStatusName = 'reserved' | 'confirmed' | 'cancelled' | 'expired';

export function accountView(account: AccountRow) {
  return {
    customerId: account.customer_id,
    currency: account.currency as Currency,
    balance: formatMinor(account.balance_minor),
    held: formatMinor(account.held_minor),
    available: formatMinor(account.balance_minor - account.held_minor),
  };
}

export function reservationView(reservation: ReservationRow) {
  return {
    reservationId: reservation.id,
    orderId: reservation.order_id,
    customerId: reservation.customer_id,
    amount: formatMinor(reservation.amount_minor),
    currency: reservation.currency as Currency,
    expiresAt: reservation.expires_at.toISOString(),
    status: reservation.status.toLowerCase() as ReservationStatusName,
  };
}

export function confirmationView(payment: PaymentRow) {
  return {
    paymentId: payment.id,
    reservationId: payment.reservation_id,
    orderId: payment.order_id,
    transactionId: payment.transaction_id,
    amount: formatMinor(payment.amount_minor),
    currency: payment.currency as Currency,
    status: 'confirmed' as const,
  };
}

export function refundView(refund: RefundRow) {
  return {
    refundId: refund.id,
    paymentId: refund.payment_id,
    amount: formatMinor(refund.amount_minor),
    reason: refund.reason,
    source: refund.source,
    createdAt: refund.created_at.toISOString(),
  };
}

export function paymentView(payment: PaymentRow, refunds: RefundRow[]) {
  return {
    paymentId: payment.id,
    reservationId: payment.reservation_id,
    orderId: payment.order_id,
    customerId: payment.customer_id,
    amount: formatMinor(payment.amount_minor),
    refundedAmount: formatMinor(payment.refunded_minor),
    currency: payment.currency as Currency,
    paymentMethod: payment.payment_method,
    transactionId: payment.transaction_id,
    status: payment.status,
    createdAt: payment.created_at.toISOString(),
    refunds: refunds.filter((refund) => refund.payment_id === payment.id).map(refundView),
  };
}
