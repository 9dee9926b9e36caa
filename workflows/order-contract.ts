/**
 * The order saga contract: what the order service, the worker and operators share. Workflow ids,
 * inputs, progress, and the query/update/signal definitions. HTTP handlers and workers import this
 * module, never a workflow body. Safe inside the workflow sandbox (it only defines things).
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';

/** The createOrder saga of an order: one per order, a duplicate start is rejected. */
export const createOrderWorkflowId = (orderId: string) => `order-${orderId}`;
/** The cancelOrder saga of an order. */
export const cancelOrderWorkflowId = (orderId: string) => `order-${orderId}-cancel`;
/** The tccPayment child of an order's createOrder. */
export const tccPaymentWorkflowId = (orderId: string) => `order-${orderId}-payment`;

export type ConfirmationMode = 'auto' | 'manual';

export interface OrderLine {
  productId: string;
  quantity: number;
  /** Quoted by the product service when the order was placed; minor units. */
  unitPriceMinor: number;
}

export interface CreateOrderInput {
  orderId: string;
  customerId: string;
  items: OrderLine[];
  totalMinor: number;
  currency: string;
  paymentMethod: string;
  confirmation: ConfirmationMode;
  /** Manual checkout: how long reservations are held waiting for confirm; then everything is cancelled. */
  holdTtlSeconds: number;
}

export interface TccPaymentInput {
  orderId: string;
  customerId: string;
  items: { productId: string; quantity: number }[];
  totalMinor: number;
  currency: string;
  paymentMethod: string;
  confirmation: ConfirmationMode;
  holdTtlSeconds: number;
}

export interface TccPaymentResult {
  paymentId: string;
  paymentReservationId: string;
  transactionId: string;
}

export interface CancelOrderInput {
  orderId: string;
  reason: string;
}

/** Saga states kept in the SagaState search attribute, so operators can list sagas by state. */
export type SagaState = 'RUNNING' | 'COMPENSATING' | 'COMPLETED' | 'COMPENSATED' | 'FAILED';

export interface CompensationRecord {
  step: string;
  outcome: 'COMPLETED' | 'FAILED';
  error?: string;
}

/** What GET /orders/:id/saga shows, answered by the running (or closed) workflow. */
export interface SagaProgress {
  state: SagaState;
  currentStep: string | null;
  completedSteps: string[];
  compensations: CompensationRecord[];
  failureReason: string | null;
}

export const getSagaProgressQuery = defineQuery<SagaProgress>('getSagaProgress');

/** Manual checkout: the customer confirms (capture) or cancels (release) the held reservations. */
export const confirmCheckoutUpdate = defineUpdate<{ accepted: boolean }>('confirmCheckout');
export const cancelCheckoutUpdate = defineUpdate<{ accepted: boolean }, [{ reason: string }]>('cancelCheckout');

/** Non-retryable ApplicationFailure types: business declines, never retried. */
export const FAILURE_TYPES = {
  insufficientStock: 'InsufficientStock',
  insufficientFunds: 'InsufficientFunds',
  customerInactive: 'CustomerInactive',
  customerNotFound: 'CustomerNotFound',
  reservationExpired: 'ReservationExpired',
  checkoutExpired: 'CheckoutExpired',
  checkoutCancelled: 'CheckoutCancelled',
  orderNotCancellable: 'OrderNotCancellable',
} as const;
