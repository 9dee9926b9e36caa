/**
 * The stock branch of the order's TCC transaction, against the product service. The order id is
 * the TCC transaction id: every try/confirm/cancel/restock carries it, and the product service's
 * barrier rows make each call idempotent and a cancel-before-try safe.
 */
import { z } from 'zod';
import { FAILURE_TYPES } from '../workflows/order-contract';
import type { JsonHttpClient } from './http';
import { COMMON_DECLINES, createTccParticipantClient } from './tcc-participant';

export interface StockActivitiesDependencies {
  /** Client for PRODUCT_SERVICE_URL, carrying the service token. */
  products: JsonHttpClient;
}

/** What the saga reads of the product service's answers: our schemas, not the product service's. */
const stockReservationLineSchema = z.object({
  reservationId: z.string(),
  productId: z.string(),
  quantity: z.number().int(),
  expiresAt: z.string(),
});
export type StockReservationLine = z.infer<typeof stockReservationLineSchema>;
const reservedAnswer = z.object({ reservations: z.array(stockReservationLineSchema) });
const confirmedAnswer = z.unknown();
const cancelledAnswer = z.object({ releasedItems: z.array(z.unknown()) });
const restockedAnswer = z.unknown();

/** What undoing the stock branch did: nothing was held, a hold was released, or sold units came back. */
export type StockUndoOutcome = 'NOTHING_HELD' | 'RELEASED' | 'RESTOCKED';

const path = (action: string, orderId: string) => `/stock/${action}/${encodeURIComponent(orderId)}`;

export function createStockActivities({ products }: StockActivitiesDependencies) {
  const participant = createTccParticipantClient(products, {
    ...COMMON_DECLINES,
    INSUFFICIENT_STOCK: { type: FAILURE_TYPES.insufficientStock, keepBody: true },
    PRODUCT_NOT_FOUND: { type: FAILURE_TYPES.productNotFound },
  });
  return {
    /** TCC try: holds the units of every line, all or nothing. Insufficient stock is a decision. */
    async reserveStock(input: { orderId: string; items: { productId: string; quantity: number }[] }): Promise<StockReservationLine[]> {
      const { orderId, items } = input;
      const { reservations } = await participant.call({
        what: `reserve stock for order ${orderId}`,
        path: '/stock/try',
        body: { orderId, items },
        answer: reservedAnswer,
        subject: { orderId },
      });
      return reservations;
    },

    /** TCC confirm: the held units leave stock. Repeating it is a no-op; an expired hold can never be confirmed. */
    async confirmStock(orderId: string): Promise<void> {
      await participant.call({ what: `confirm stock of order ${orderId}`, path: path('confirm', orderId), answer: confirmedAnswer, subject: { orderId } });
    },

    /**
     * Undoes the stock branch, whatever state it reached: releases a hold (or, when the try never
     * arrived, leaves a barrier so it never will), and returns units to stock when the hold was
     * already confirmed. Safe to repeat: the product service releases and restocks at most once.
     */
    async releaseOrRestockStock(orderId: string): Promise<StockUndoOutcome> {
      const cancelled = await participant.cancel({ what: `release stock of order ${orderId}`, path: path('cancel', orderId), answer: cancelledAnswer, subject: { orderId } });
      if (!cancelled.confirmed) return cancelled.answer.releasedItems.length > 0 ? 'RELEASED' : 'NOTHING_HELD';
      await participant.call({ what: `restock order ${orderId}`, path: path('restock', orderId), answer: restockedAnswer, subject: { orderId } });
      return 'RESTOCKED';
    },
  };
}

export type StockActivities = ReturnType<typeof createStockActivities>;
