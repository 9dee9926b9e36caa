/**
 * The payment branch of the order's TCC transaction, against the payment service. The try is keyed
 * by the order id (the TCC transaction id); compensations go by order id too, so a try whose answer
 * was lost (we never learnt its reservation id) is still cancelled, and a cancel that overtakes its
 * try leaves a barrier that refuses the try.
 */
import { ApplicationFailure } from '@temporalio/common';
import { formatMinor } from '../services/shared/money';
import { FAILURE_TYPES } from '../workflows/order-contract';
import { errorCode, errorMessage, unexpectedResponse, type JsonHttpClient, type JsonResponse } from './http';

export interface PaymentActivitiesDependencies {
  /** Client for PAYMENT_SERVICE_URL, carrying the service token. */
  payments: JsonHttpClient;
}

export interface PaymentHold {
  reservationId: string;
  expiresAt: string;
}

export interface CapturedPayment {
  paymentId: string;
  transactionId: string;
}

/** What undoing the payment branch did. */
export interface PaymentUndoOutcome {
  /** A hold that was released by this or an earlier call ('cancelled'/'expired'), or 'none' when no try ever held money. */
  hold: 'released' | 'none';
  /** The saga refund when money had been captured, else null. */
  refundId: string | null;
}

const path = (action: string, id: string) => `/payments/${action}/${encodeURIComponent(id)}`;

function declined(response: JsonResponse, subject: Record<string, string>): ApplicationFailure | null {
  const message = errorMessage(response);
  switch (errorCode(response)) {
    case 'INSUFFICIENT_FUNDS':
      // The amounts (required, available) are in the body: kept in the saga's history for operators.
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.insufficientFunds, { ...subject, body: response.body });
    case 'ACCOUNT_NOT_FOUND':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.accountNotFound, subject);
    case 'TRY_AFTER_CANCEL':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.tryAfterCancel, subject);
    case 'RESERVATION_EXPIRED':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.reservationExpired, subject);
    case 'RESERVATION_CANCELLED':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.reservationCancelled, subject);
    default:
      return null;
  }
}

export function createPaymentActivities({ payments }: PaymentActivitiesDependencies) {
  return {
    /** TCC try: holds the order's amount on the customer's account. Insufficient funds is a decision. */
    async reservePayment(input: { orderId: string; customerId: string; totalMinor: number; currency: string }): Promise<PaymentHold> {
      const response = await payments.post('/payments/try', {
        orderId: input.orderId,
        customerId: input.customerId,
        amount: formatMinor(input.totalMinor),
        currency: input.currency,
      });
      if (response.status === 200 || response.status === 201) {
        const body = response.body as { reservationId: string; expiresAt: string; status: string };
        // A repeated try answers with the hold as it is now: one that expired or was cancelled holds nothing.
        if (body.status === 'expired') throw ApplicationFailure.nonRetryable(`payment hold of order ${input.orderId} expired`, FAILURE_TYPES.reservationExpired);
        if (body.status === 'cancelled') throw ApplicationFailure.nonRetryable(`payment hold of order ${input.orderId} was cancelled`, FAILURE_TYPES.reservationCancelled);
        return { reservationId: body.reservationId, expiresAt: body.expiresAt };
      }
      throw declined(response, { orderId: input.orderId }) ?? unexpectedResponse(`reserve payment for order ${input.orderId}`, response);
    },

    /** TCC confirm: captures the held amount. Repeating it returns the same payment; an expired hold can never be captured. */
    async capturePayment(input: { reservationId: string; paymentMethod: string }): Promise<CapturedPayment> {
      const response = await payments.post(path('confirm', input.reservationId), { paymentMethod: input.paymentMethod });
      if (response.status === 200 || response.status === 201) {
        const body = response.body as CapturedPayment;
        return { paymentId: body.paymentId, transactionId: body.transactionId };
      }
      throw declined(response, { reservationId: input.reservationId }) ?? unexpectedResponse(`capture payment ${input.reservationId}`, response);
    },

    /**
     * Undoes the payment branch, whatever state it reached: releases a hold (or leaves a barrier
     * that refuses a try still in flight), and refunds what was captured when the hold had been
     * confirmed. Safe to repeat: the payment service makes at most one saga refund per order.
     */
    async voidOrRefundPayment(input: { orderId: string; reason: string }): Promise<PaymentUndoOutcome> {
      const cancelled = await payments.post(path('cancel-by-order', input.orderId));
      if (cancelled.status === 200) {
        const body = cancelled.body as { reservationId: string | null };
        return { hold: body.reservationId === null ? 'none' : 'released', refundId: null };
      }
      if (errorCode(cancelled) !== 'RESERVATION_ALREADY_CONFIRMED') throw unexpectedResponse(`cancel payment of order ${input.orderId}`, cancelled);
      const refunded = await payments.post(path('refund-by-order', input.orderId), { reason: input.reason.slice(0, 500) });
      if (refunded.status === 200 || refunded.status === 201) {
        const body = refunded.body as { refund: { refundId: string } | null };
        return { hold: 'released', refundId: body.refund?.refundId ?? null };
      }
      throw unexpectedResponse(`refund payment of order ${input.orderId}`, refunded);
    },
  };
}

export type PaymentActivities = ReturnType<typeof createPaymentActivities>;
