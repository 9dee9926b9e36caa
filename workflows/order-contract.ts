/**
 * The order saga contract: what the order service, the worker and operators share. Workflow ids,
 * inputs, progress, and the query/update/signal definitions. HTTP handlers and workers import this
 * module, never a workflow body. Safe inside the workflow sandbox (it only defines things).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

/**
 * Workflow type names, for starting the sagas by name (client.workflow.start(WORKFLOW_TYPES.createOrder,
 * ...)) without importing a workflow body. Inputs and results are the types below.
 */
export const WORKFLOW_TYPES = { createOrder: 'createOrder', cancelOrder: 'cancelOrder', tccPayment: 'tccPayment' } as const;

/** The createOrder saga of an order: one per order, a duplicate start is rejected. */
export const createOrderWorkflowId = (orderId: string) => `order-${orderId}`;
/** The cancelOrder saga of an order. */
export const cancelOrderWorkflowId = (orderId: string) => `order-${orderId}-cancel`;
/** The tccPayment child of an order's createOrder. */
export const tccPaymentWorkflowId = (orderId: string) => `order-${orderId}-payment`;

export type ConfirmationMode = 'auto' | 'manual';

/**
 * How long the saga's activities may take and how often a transient fault is retried before the
 * saga gives up and compensates. The worker's configuration says (activities/saga-policy.ts); a
 * saga's input may carry its own (tests pass seconds).
 */
export interface SagaTimeouts {
  /** One attempt of one activity (an HTTP call or a transaction); above HTTP_CLIENT_TIMEOUT_MS. */
  activityStartToCloseMs: number;
  /** Attempts of a forward step (try, confirm, order update) before the saga compensates. */
  maximumAttempts: number;
  /**
   * Attempts of a compensation inside tccPayment (the child gives up early: createOrder, its
   * parent, undoes the same things again under compensationRetryHorizonMs) and of cancelOrder's
   * wait for createOrder.
   */
  compensationMaximumAttempts: number;
  /**
   * How long createOrder and cancelOrder keep retrying an undo (capped backoff) before the saga
   * stops in COMPENSATION_FAILED and waits for an operator. Absent in inputs of sagas started
   * before it existed: DEFAULT_SAGA_TIMEOUTS' value applies.
   */
  compensationRetryHorizonMs?: number;
  initialRetryIntervalMs: number;
  maximumRetryIntervalMs: number;
}

export const DEFAULT_SAGA_TIMEOUTS: SagaTimeouts = {
  activityStartToCloseMs: 15_000,
  maximumAttempts: 8,
  compensationMaximumAttempts: 30,
  compensationRetryHorizonMs: 6 * 60 * 60 * 1000,
  initialRetryIntervalMs: 500,
  maximumRetryIntervalMs: 30_000,
};

/**
 * Saga timeouts for the configured HTTP client timeout (an undo makes up to two calls per
 * attempt) and compensation retry horizon.
 */
export function sagaTimeoutsFor(httpClientTimeoutMs: number, compensationRetryHorizonMs = DEFAULT_SAGA_TIMEOUTS.compensationRetryHorizonMs): SagaTimeouts {
  return { ...DEFAULT_SAGA_TIMEOUTS, activityStartToCloseMs: 2 * httpClientTimeoutMs + 5_000, compensationRetryHorizonMs };
}

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
  /**
   * This saga's own timeouts, overriding the worker's; the order service sends none. Sagas started
   * before WORKFLOW_PATCHES.localActivities read DEFAULT_SAGA_TIMEOUTS when absent.
   */
  timeouts?: SagaTimeouts;
}

/** createOrder's input for its tccPayment child: the participants take quantities, not prices. */
export interface TccPaymentInput extends Omit<CreateOrderInput, 'items'> {
  items: { productId: string; quantity: number }[];
  /**
   * The parent's shape ('local' since WORKFLOW_PATCHES.localActivities; absent before it): the
   * child follows its parent instead of asking patched() itself, which would cost it a marker
   * and an upsert of TemporalChangeVersion per saga.
   */
  shape?: 'local' | 'remote';
}

export interface TccPaymentResult {
  paymentId: string;
  paymentReservationId: string;
  transactionId: string;
}

/** What createOrder returns when the order is PAID. */
export interface CreateOrderResult extends TccPaymentResult {
  orderId: string;
  status: 'PAID';
}

export interface CancelOrderInput {
  orderId: string;
  reason: string;
  /** As CreateOrderInput's: this saga's own, overriding the worker's; the order service sends none. */
  timeouts?: SagaTimeouts;
}

export interface CancelOrderResult {
  orderId: string;
  status: 'CANCELLED';
  /** The order's status when the cancellation was requested. */
  cancelledFrom: 'PENDING' | 'AWAITING_CONFIRMATION' | 'CONFIRMING' | 'PAID' | 'COMPENSATION_FAILED' | 'CANCELLING';
  stock: 'RELEASED' | 'RESTOCKED' | 'NOTHING_HELD';
  refundId: string | null;
}

/**
 * Saga states kept in the SagaState search attribute, so operators can list sagas by state.
 * COMPENSATION_FAILED: an undo kept failing past its retry horizon; the saga is still open, the
 * order needs attention, and retryCompensationSignal runs what is left again. REFUSED: the saga's
 * first step declined the request (a cancel of an order that can no longer be cancelled), so
 * nothing was done and nothing needed undoing.
 */
export const SAGA_STATES = ['RUNNING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED', 'COMPENSATION_FAILED', 'FAILED', 'REFUSED'] as const;
export type SagaState = (typeof SAGA_STATES)[number];

/** Search attributes (Keyword) registered on the server; set at start and kept current by the sagas. */
export const SEARCH_ATTRIBUTES = {
  orderId: defineSearchAttributeKey('OrderId', SearchAttributeType.KEYWORD),
  customerId: defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD),
  sagaState: defineSearchAttributeKey('SagaState', SearchAttributeType.KEYWORD),
} as const;

/**
 * Where a saga keeps the correlation id of the request that started it (lib/correlation.ts):
 * in its memo (the Web UI and `temporal workflow describe` show it), passed on to each child
 * workflow's memo and to each activity as a Temporal header (workflows/correlation-interceptor.ts).
 */
export const CORRELATION_ID_MEMO = 'correlationId';
export const CORRELATION_ID_HEADER = 'correlation-id';

export interface CompensationRecord {
  step: string;
  outcome: 'COMPLETED' | 'FAILED';
  error?: string;
}

/** What GET /orders/:id/saga shows, answered by the running (or closed) workflow. */
export interface SagaProgress {
  state: SagaState;
  /** The forward step running, or while COMPENSATING the compensation running; null between steps and once closed. */
  currentStep: string | null;
  completedSteps: string[];
  compensations: CompensationRecord[];
  /** The step the saga gave up at (its failure is failureReason); null while nothing failed. */
  failedStep: string | null;
  failureReason: string | null;
}

export const getSagaProgressQuery = defineQuery<SagaProgress>('getSagaProgress');

/** Manual checkout: the customer confirms (capture) or cancels (release) the held reservations. */
export const confirmCheckoutUpdate = defineUpdate<{ accepted: boolean }>('confirmCheckout');
export const cancelCheckoutUpdate = defineUpdate<{ accepted: boolean }, [{ reason: string }]>('cancelCheckout');

/** An operator's "try the undo again" for a saga in COMPENSATION_FAILED (`./oms saga retry`). */
export const retryCompensationSignal = defineSignal('retryCompensation');

/**
 * patched() ids of changes to running workflows (docs/versioning.md). A patch id is never reused
 * and stays until no execution that predates it can still be running or replayed.
 */
export const WORKFLOW_PATCHES = {
  /** createOrder stops in COMPENSATION_FAILED and waits for an operator instead of marking the order FAILED. */
  compensationFailedState: 'create-order-compensation-failed-state',
  /**
   * createOrder, tccPayment and cancelOrder call their short steps as local activities, take their
   * timeouts from the worker, and upsert SagaState only when it changes (SagaShape in saga.ts).
   */
  localActivities: 'saga-local-activities',
  /** tccPayment's manual hold ends before the earliest reservation the participants gave it expires. */
  holdWithinReservations: 'tcc-payment-hold-within-reservations',
  /** A cancelOrder whose order is not cancellable ends REFUSED, not COMPENSATED (nothing was undone). */
  refusedCancelState: 'cancel-order-refused-state',
} as const;

/**
 * How long before the earliest reservation's expiry a manual checkout's hold ends: time for the
 * confirm to reach both participants (and for their clocks to differ from Temporal's) before the
 * reservation sweepers may release what the customer is confirming.
 */
export const RESERVATION_CONFIRM_MARGIN_MS = 2_000;

/** Non-retryable ApplicationFailure types: business declines, never retried. */
export const FAILURE_TYPES = {
  insufficientStock: 'InsufficientStock',
  insufficientFunds: 'InsufficientFunds',
  customerInactive: 'CustomerInactive',
  customerNotFound: 'CustomerNotFound',
  reservationExpired: 'ReservationExpired',
  reservationCancelled: 'ReservationCancelled',
  /** A try arrived after its transaction was cancelled (the barrier refused it). */
  tryAfterCancel: 'TryAfterCancel',
  productNotFound: 'ProductNotFound',
  accountNotFound: 'AccountNotFound',
  /** A participant refused a request as malformed or unauthorised: retrying cannot help. */
  participantRejected: 'ParticipantRejected',
  orderNotFound: 'OrderNotFound',
  /** The order was cancelled while its createOrder saga was running. */
  orderCancelled: 'OrderCancelled',
  checkoutExpired: 'CheckoutExpired',
  checkoutCancelled: 'CheckoutCancelled',
  orderNotCancellable: 'OrderNotCancellable',
} as const;

/**
 * What a customer may read about a failed order (failureReason, ORDER_FAILED): per decision type, a
 * stable "Type: text" saying what happened, never a participant's own words (balances, stock
 * levels, hosts). The full reason stays in the saga's history and the worker's log for operators.
 */
const CUSTOMER_FAILURE_TEXTS: Partial<Record<string, string>> = {
  [FAILURE_TYPES.insufficientStock]: 'not enough stock for the ordered products',
  [FAILURE_TYPES.insufficientFunds]: 'the payment was declined for insufficient funds',
  [FAILURE_TYPES.customerInactive]: 'the customer account is inactive',
  [FAILURE_TYPES.customerNotFound]: 'the customer account does not exist',
  [FAILURE_TYPES.productNotFound]: 'a product of the order no longer exists',
  [FAILURE_TYPES.accountNotFound]: 'the customer has no payment account',
  [FAILURE_TYPES.reservationExpired]: 'the reservation expired before the order was completed',
  [FAILURE_TYPES.reservationCancelled]: 'the reservation was cancelled before the order was completed',
  [FAILURE_TYPES.tryAfterCancel]: 'the order was cancelled while it was being placed',
  [FAILURE_TYPES.orderCancelled]: 'the order was cancelled while it was being placed',
  [FAILURE_TYPES.checkoutExpired]: 'the checkout was not confirmed in time',
  [FAILURE_TYPES.checkoutCancelled]: 'the checkout was cancelled',
};
/** Decisions about particular products: the text names those of the order's own products the reason names. */
const PRODUCT_FAILURE_TEXTS: Partial<Record<string, (productIds: string) => string>> = {
  [FAILURE_TYPES.insufficientStock]: (productIds) => `not enough stock for product ${productIds}`,
  [FAILURE_TYPES.productNotFound]: (productIds) => `product ${productIds} is no longer available`,
};
/** Anything that is not a decision (a participant down past every retry, a defect). */
export const ORDER_FAILED_FALLBACK = 'OrderFailed: the order could not be completed; quote the order id to support';

/**
 * The customer's failure reason for an operator's one ("Type: message", see describeFailure in
 * saga.ts). `orderProductIds` are the order's own products: only those are ever named.
 */
export function customerFailureReason(reason: string, orderProductIds: readonly string[]): string {
  const type = /^([A-Z][A-Za-z]+): /.exec(reason)?.[1];
  const text = type === undefined ? undefined : CUSTOMER_FAILURE_TEXTS[type];
  if (type === undefined || text === undefined) return ORDER_FAILED_FALLBACK;
  const named = orderProductIds.filter((productId) => reason.includes(productId));
  const perProduct = PRODUCT_FAILURE_TEXTS[type];
  return `${type}: ${perProduct !== undefined && named.length > 0 ? perProduct(named.join(', ')) : text}`;
}
