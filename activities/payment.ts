/**
 * The payment branch of the order's TCC transaction, against the payment service. The try is keyed
 * by the order id (the TCC transaction id); compensations go by order id too, so a try whose answer
 * was lost (we never learnt its reservation id) is still cancelled, and a cancel that overtakes its
 * try leaves a barrier that refuses the try.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { formatMinor } from '../lib/money';
import { FAILURE_TYPES } from '../workflows/order-contract';
import type { JsonHttpClient } from './http';
import { COMMON_DECLINES, createTccParticipantClient } from './tcc-participant';

export interface PaymentActivitiesDependencies {
  /** Client for PAYMENT_SERVICE_URL, carrying the service token. */
  payments: JsonHttpClient;
}

/** What the saga reads of the payment service's answers: our schemas, not the payment service's. */
const heldAnswer = z.object({ reservationId: z.string(), expiresAt: z.string(), status: z.string() });
const capturedAnswer = z.object({ paymentId: z.string(), transactionId: z.string() });
const cancelledAnswer = z.object({ reservationId: z.string().nullable() });
const refundedAnswer = z.object({ refund: z.object({ refundId: z.string() }).nullable() });

export interface PaymentHold {
  reservationId: string;
  expiresAt: string;
}

export type CapturedPayment = z.infer<typeof capturedAnswer>;

/** What undoing the payment branch did. */
export interface PaymentUndoOutcome {
  /** A hold that was released by this or an earlier call ('cancelled'/'expired'), or 'none' when no try ever held money. */
  hold: 'released' | 'none';
  /** The saga refund when money had been captured, else null. */
  refundId: string | null;
}

const path = (action: string, id: string) => `/payments/${action}/${encodeURIComponent(id)}`;

export function createPaymentActivities({ payments }: PaymentActivitiesDependencies) {
  const participant = createTccParticipantClient(payments, {
    ...COMMON_DECLINES,
    INSUFFICIENT_FUNDS: { type: FAILURE_TYPES.insufficientFunds, keepBody: true },
    ACCOUNT_NOT_FOUND: { type: FAILURE_TYPES.accountNotFound },
  });
  return {
    /** TCC try: holds the order's amount on the customer's account. Insufficient funds is a decision. */
    async reservePayment(input: { orderId: string; customerId: string; totalMinor: number; currency: string }): Promise<PaymentHold> {
      const { orderId } = input;
      const hold = await participant.call({
        what: `reserve payment for order ${orderId}`,
        path: '/payments/try',
        body: { orderId, customerId: input.customerId, amount: formatMinor(input.totalMinor), currency: input.currency },
        answer: heldAnswer,
        subject: { orderId },
      });
      // A repeated try answers with the hold as it is now: one that expired or was cancelled holds nothing.
      if (hold.status === 'expired') throw ApplicationFailure.nonRetryable(`payment hold of order ${orderId} expired`, FAILURE_TYPES.reservationExpired);
      if (hold.status === 'cancelled') throw ApplicationFailure.nonRetryable(`payment hold of order ${orderId} was cancelled`, FAILURE_TYPES.reservationCancelled);
      return { reservationId: hold.reservationId, expiresAt: hold.expiresAt };
    },

    /** TCC confirm: captures the held amount. Repeating it returns the same payment; an expired hold can never be captured. */
    async capturePayment(input: { reservationId: string; paymentMethod: string }): Promise<CapturedPayment> {
      const { reservationId } = input;
      return participant.call({
        what: `capture payment ${reservationId}`,
        path: path('confirm', reservationId),
        body: { paymentMethod: input.paymentMethod },
        answer: capturedAnswer,
        subject: { reservationId },
      });
    },

    /**
     * Undoes the payment branch, whatever state it reached: releases a hold (or leaves a barrier
     * that refuses a try still in flight), and refunds what was captured when the hold had been
     * confirmed. Safe to repeat: the payment service makes at most one saga refund per order.
     */
    async voidOrRefundPayment(input: { orderId: string; reason: string }): Promise<PaymentUndoOutcome> {
      const { orderId } = input;
      const cancelled = await participant.cancel({ what: `cancel payment of order ${orderId}`, path: path('cancel-by-order', orderId), answer: cancelledAnswer, subject: { orderId } });
      if (!cancelled.confirmed) return { hold: cancelled.answer.reservationId === null ? 'none' : 'released', refundId: null };
      const { refund } = await participant.call({
        what: `refund payment of order ${orderId}`,
        path: path('refund-by-order', orderId),
        body: { reason: input.reason.slice(0, 500) },
        answer: refundedAnswer,
        subject: { orderId },
      });
      return { hold: 'released', refundId: refund?.refundId ?? null };
    },
  };
}

export type PaymentActivities = ReturnType<typeof createPaymentActivities>;
