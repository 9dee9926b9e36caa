/**
 * The stock branch of the order's TCC transaction, against the product service. The order id is
 * the TCC transaction id: every try/confirm/cancel/restock carries it, and the product service's
 * barrier rows make each call idempotent and a cancel-before-try safe.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE_TYPES } from '../workflows/order-contract';
import { errorCode, errorMessage, unexpectedResponse, type JsonHttpClient, type JsonResponse } from './http';

export interface StockActivitiesDependencies {
  /** Client for PRODUCT_SERVICE_URL, carrying the service token. */
  products: JsonHttpClient;
}

export interface StockReservationLine {
  reservationId: string;
  productId: string;
  quantity: number;
  expiresAt: string;
}

/** What undoing the stock branch did: nothing was held, a hold was released, or sold units came back. */
export type StockUndoOutcome = 'NOTHING_HELD' | 'RELEASED' | 'RESTOCKED';

const path = (action: string, orderId: string) => `/stock/${action}/${encodeURIComponent(orderId)}`;

function declined(response: JsonResponse, orderId: string): ApplicationFailure | null {
  const message = errorMessage(response);
  switch (errorCode(response)) {
    case 'INSUFFICIENT_STOCK':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.insufficientStock, { orderId, body: response.body });
    case 'PRODUCT_NOT_FOUND':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.productNotFound, { orderId });
    case 'TRY_AFTER_CANCEL':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.tryAfterCancel, { orderId });
    case 'RESERVATION_EXPIRED':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.reservationExpired, { orderId });
    case 'RESERVATION_CANCELLED':
      return ApplicationFailure.nonRetryable(message, FAILURE_TYPES.reservationCancelled, { orderId });
    default:
      return null;
  }
}

export function createStockActivities({ products }: StockActivitiesDependencies) {
  return {
    /** TCC try: holds the units of every line, all or nothing. Insufficient stock is a decision. */
    async reserveStock(input: { orderId: string; items: { productId: string; quantity: number }[] }): Promise<StockReservationLine[]> {
      const response = await products.post('/stock/try', { orderId: input.orderId, items: input.items });
      if (response.status === 200 || response.status === 201) {
        const body = response.body as { status: string; reservations: StockReservationLine[] };
        return body.reservations;
      }
      throw declined(response, input.orderId) ?? unexpectedResponse(`reserve stock for order ${input.orderId}`, response);
    },

    /** TCC confirm: the held units leave stock. Repeating it is a no-op; an expired hold can never be confirmed. */
    async confirmStock(orderId: string): Promise<void> {
      const response = await products.post(path('confirm', orderId));
      if (response.status === 200) return;
      throw declined(response, orderId) ?? unexpectedResponse(`confirm stock of order ${orderId}`, response);
    },

    /**
     * Undoes the stock branch, whatever state it reached: releases a hold (or, when the try never
     * arrived, leaves a barrier so it never will), and returns units to stock when the hold was
     * already confirmed. Safe to repeat: the product service releases and restocks at most once.
     */
    async releaseOrRestockStock(orderId: string): Promise<StockUndoOutcome> {
      const cancelled = await products.post(path('cancel', orderId));
      if (cancelled.status === 200) {
        const body = cancelled.body as { releasedItems: unknown[] };
        return body.releasedItems.length > 0 ? 'RELEASED' : 'NOTHING_HELD';
      }
      if (errorCode(cancelled) !== 'RESERVATION_ALREADY_CONFIRMED') throw unexpectedResponse(`release stock of order ${orderId}`, cancelled);
      const restocked = await products.post(path('restock', orderId));
      if (restocked.status === 200) return 'RESTOCKED';
      throw unexpectedResponse(`restock order ${orderId}`, restocked);
    },
  };
}

export type StockActivities = ReturnType<typeof createStockActivities>;
