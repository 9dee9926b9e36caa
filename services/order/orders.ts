/**
 * Placing, confirming and cancelling orders: the decisions the order API makes before it hands an
 * order to its saga. Status changes after creation are the saga's (activities/order.ts), but for
 * CONFIRMING, which records the customer's confirmation once the saga accepted it.
 *
 * Every order is someone's: a customer sees and acts on their own orders only, and another
 * customer's order is ORDER_NOT_FOUND exactly as a missing one, so ids reveal nothing; an operator
 * sees and acts on all of them.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  cancelOrderWorkflowId,
  createOrderWorkflowId,
  customerFailureReason,
  tccPaymentWorkflowId,
  type CreateOrderInput,
} from '../../workflows/order-contract';
import { ApiError, ConflictError, ForbiddenError, NotFoundError } from '../shared/errors';
import { mayActForCustomer } from '../shared/http/auth';
import type { Principal } from '../shared/http/principal';
import { formatMinor, MAX_AMOUNT_MINOR } from '../../lib/money';
import { outboxEventRow } from '../../lib/outbox';
import { ORDER_ERROR_CODES, type CreateOrderBody, type OrderResponse, type SagaResponse, type SagaRunResponse } from './schemas';
import type { OrderSagas, SagaSnapshot } from './order-sagas';
import type { ProductCatalog } from './product-catalog';
import {
  countOpenCheckouts,
  findCustomer,
  findOrder,
  findOrderCustomerId,
  findOrderRequestKey,
  insertAcceptedOrder,
  isUnknownCustomer,
  isUsedRequestKey,
  lockCustomer,
  markOrderConfirming,
  releaseExpiredRequestKey,
  type OrderDb,
  type OrderTrx,
  type OrderWithItems,
} from './repository';

export interface OrderDomainDependencies {
  db: OrderDb;
  catalog: ProductCatalog;
  sagas: OrderSagas;
  /** How long an Idempotency-Key keeps naming the order it created (IDEMPOTENCY_TTL_HOURS). */
  idempotencyTtlHours: number;
  /** Manual checkouts one customer may have open at once (MAX_OPEN_CHECKOUTS_PER_CUSTOMER). */
  maxOpenCheckouts: number;
  log: Pick<Logger, 'warn' | 'info'>;
}

/** The createOrder input of a stored order, as the saga starter starts it. */
export function createOrderInputOf({ order, items }: OrderWithItems, holdTtlSeconds: number): CreateOrderInput {
  return {
    orderId: order.id,
    customerId: order.customer_id,
    items: items.map((item) => ({ productId: item.product_id, quantity: item.quantity, unitPriceMinor: item.unit_price_minor })),
    totalMinor: order.total_minor,
    currency: order.currency,
    paymentMethod: order.payment_method,
    confirmation: order.confirmation_mode,
    holdTtlSeconds,
  };
}

export function toOrderResponse({ order, items }: OrderWithItems): OrderResponse {
  return {
    id: order.id,
    customerId: order.customer_id,
    status: order.status,
    items: items.map((item) => ({
      productId: item.product_id,
      sku: item.sku,
      productName: item.product_name,
      quantity: item.quantity,
      unitPrice: formatMinor(item.unit_price_minor),
      lineTotal: formatMinor(item.line_total_minor),
      priceVersion: item.price_version,
    })),
    totalAmount: formatMinor(order.total_minor),
    currency: order.currency as OrderResponse['currency'],
    paymentMethod: order.payment_method,
    confirmation: order.confirmation_mode,
    failureReason: order.failure_reason,
    cancellationReason: order.cancellation_reason,
    paymentId: order.payment_id,
    paymentReservationId: order.payment_reservation_id,
    workflowId: order.workflow_id,
    createdAt: order.created_at.toISOString(),
    updatedAt: order.updated_at.toISOString(),
  };
}

/**
 * A manual checkout holds stock and money until it is confirmed, cancelled or its hold expires, so
 * without a bound one customer could hold a shop's whole stock. Runs in the order's transaction
 * with the customer's row locked: concurrent checkouts of one customer are counted one at a time,
 * and exactly the bound gets through.
 */
async function refuseBeyondOpenCheckouts(trx: OrderTrx, customerId: string, maxOpenCheckouts: number): Promise<void> {
  await lockCustomer(trx, customerId);
  const open = await countOpenCheckouts(trx, customerId);
  if (open >= maxOpenCheckouts) {
    throw new ConflictError(
      ORDER_ERROR_CODES.tooManyOpenCheckouts,
      `the customer already has ${open} open manual checkouts (at most ${maxOpenCheckouts}); confirm or cancel one first`,
      { open, limit: maxOpenCheckouts },
    );
  }
}

async function requireOrder(db: OrderDb, id: string, viewer: Principal): Promise<OrderWithItems> {
  const found = await findOrder(db, id);
  if (!found || !mayActForCustomer(viewer, found.order.customer_id)) throw new NotFoundError('order', id);
  return found;
}

/** For routes that read only the order's id (its timeline): the same rule as every other order route. */
export async function requireVisibleOrder(db: OrderDb, id: string, viewer: Principal): Promise<void> {
  const customerId = await findOrderCustomerId(db, id);
  if (customerId === undefined || !mayActForCustomer(viewer, customerId)) throw new NotFoundError('order', id);
}

/** Whose order a POST /orders places: a customer orders for themselves; an operator names the customer. */
export function orderingCustomerId(principal: Principal, requested: string | undefined): string {
  if (principal.kind === 'customer') {
    if (requested !== undefined && requested !== principal.customerId) {
      throw new ForbiddenError('a customer places orders only for themselves: leave out customerId or send your own');
    }
    return principal.customerId;
  }
  if (principal.kind !== 'operator') throw new ForbiddenError('only customers and operators place orders');
  if (requested === undefined) {
    throw new ApiError(400, 'VALIDATION_ERROR', 'invalid request body', {
      issues: [{ path: '/customerId', message: 'required when an operator places an order' }],
    });
  }
  return requested;
}

/** The customer filter of GET /orders: a customer lists only their own orders. */
export function listedCustomerId(principal: Principal, requested: string | undefined): string | undefined {
  if (principal.kind !== 'customer') return requested;
  if (requested !== undefined && requested !== principal.customerId) throw new ForbiddenError('a customer may list only their own orders');
  return principal.customerId;
}

/** What POST /orders answers: 202 with the order as accepted (a replay under its Idempotency-Key answers the same). */
export interface OrderAccepted {
  id: string;
  status: 'PENDING';
  workflowId: string;
}

/** The Idempotency-Key of a POST /orders as the idempotency plugin scoped it to the caller, with the request's fingerprint. */
export interface OrderRequestIdempotency {
  storeKey: string;
  requestHash: string;
}

/** The order an Idempotency-Key already created, answered as it was the first time; a different request under the key is refused. */
async function answerForUsedKey(db: OrderDb, key: OrderRequestIdempotency): Promise<OrderAccepted | undefined> {
  const recorded = await findOrderRequestKey(db, key.storeKey);
  // Expired and released between our insert and this read: the caller tries again.
  if (!recorded) return undefined;
  if (recorded.requestHash !== key.requestHash) {
    throw new ApiError(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
  }
  return { id: recorded.orderId, status: 'PENDING', workflowId: createOrderWorkflowId(recorded.orderId) };
}

function unknownCustomer(customerId: string): ApiError {
  return new ApiError(422, ORDER_ERROR_CODES.unknownCustomer, `customer ${customerId} does not exist`, { customerId });
}

/** The products of the order, priced; an unknown customer is reported before anything about the products. */
async function quoteFor(deps: OrderDomainDependencies, customerId: string, productIds: string[]) {
  try {
    return await deps.catalog.quote(productIds);
  } catch (error) {
    // Only on this path is the customer looked up: an order that gets written finds an unknown customer by its foreign key.
    if (!(await findCustomer(deps.db, customerId))) throw unknownCustomer(customerId);
    throw error;
  }
}

/**
 * Accepts an order: priced from the catalogue read model, then the order, its ORDER_CREATED event,
 * its saga start intent and its Idempotency-Key (when sent) written by one statement
 * (insertAcceptedOrder). The answer goes out after that commit; the worker's saga starter
 * (workers/saga-starter.ts) starts the createOrder saga, so neither Temporal's speed nor its
 * availability reaches this request. Two round trips to PostgreSQL in all (the price query and the
 * write); a manual checkout adds its open-checkout bound in a transaction around the write.
 */
export async function placeOrder(
  deps: OrderDomainDependencies,
  body: CreateOrderBody & { customerId: string },
  idempotency?: OrderRequestIdempotency,
): Promise<OrderAccepted> {
  const products = await quoteFor(deps, body.customerId, body.items.map((item) => item.productId));
  // An INACTIVE customer is accepted here on purpose: the saga's customer validation fails the order
  // with a recorded reason, which is what the order's history should show.

  const currencies = new Set([...products.values()].map((product) => product.currency));
  if (currencies.size > 1) {
    throw new ApiError(422, ORDER_ERROR_CODES.mixedCurrencies, 'all products of one order must be priced in the same currency', {
      currencies: Object.fromEntries([...products.values()].map((product) => [product.id, product.currency])),
    });
  }
  const currency = [...products.values()][0]!.currency;

  const lines = body.items.map((item) => {
    const product = products.get(item.productId)!;
    return {
      productId: product.id,
      sku: product.sku,
      productName: product.name,
      quantity: item.quantity,
      unitPriceMinor: product.priceMinor,
      lineTotalMinor: product.priceMinor * item.quantity,
      priceVersion: product.version,
    };
  });
  const totalMinor = lines.reduce((sum, line) => sum + line.lineTotalMinor, 0);
  // Refused at the door: the payment service would refuse it anyway, after the saga had reserved the stock.
  if (totalMinor > MAX_AMOUNT_MINOR) {
    throw new ApiError(422, ORDER_ERROR_CODES.orderTotalTooLarge, `the order total is above the most a payment may be (${formatMinor(MAX_AMOUNT_MINOR)})`, {
      limit: formatMinor(MAX_AMOUNT_MINOR),
    });
  }

  const orderId = randomUUID();
  const workflowId = createOrderWorkflowId(orderId);
  const { row: event } = outboxEventRow({
    eventType: 'ORDER_CREATED',
    aggregateId: orderId,
    correlationId: orderId,
    payload: {
      orderId,
      customerId: body.customerId,
      items: lines.map((line) => ({ productId: line.productId, productName: line.productName, quantity: line.quantity, unitPrice: formatMinor(line.unitPriceMinor) })),
      totalAmount: formatMinor(totalMinor),
      currency,
    },
  });
  const accepted = {
    order: { id: orderId, customerId: body.customerId, totalMinor, currency, paymentMethod: body.paymentMethod, confirmation: body.confirmation, workflowId, items: lines },
    event,
    requestKey: idempotency && { key: idempotency.storeKey, requestHash: idempotency.requestHash },
  };
  // Twice at most: a key found expired is released and the order written again under it.
  for (let attempt = 1; ; attempt += 1) {
    try {
      if (body.confirmation === 'manual') {
        await deps.db.transaction().execute(async (trx) => {
          await refuseBeyondOpenCheckouts(trx, body.customerId, deps.maxOpenCheckouts);
          await insertAcceptedOrder(trx, accepted);
        });
      } else {
        await insertAcceptedOrder(deps.db, accepted);
      }
      return { id: orderId, status: 'PENDING', workflowId };
    } catch (error) {
      if (isUnknownCustomer(error)) throw unknownCustomer(body.customerId);
      if (!idempotency || !isUsedRequestKey(error) || attempt > 2) throw error;
      const answer = await answerForUsedKey(deps.db, idempotency);
      if (answer) {
        if (!(await releaseExpiredRequestKey(deps.db, idempotency.storeKey, deps.idempotencyTtlHours))) return answer;
      }
    }
  }
}

export async function getOrder(db: OrderDb, id: string, viewer: Principal): Promise<OrderResponse> {
  return toOrderResponse(await requireOrder(db, id, viewer));
}

/**
 * Manual checkout: only an order holding its reservations (AWAITING_CONFIRMATION) can be confirmed.
 * Once its saga accepts the confirmation the order is CONFIRMING (its stock confirmed and payment
 * captured next), and that, or wherever the saga has taken it since, is the answer.
 */
export async function confirmOrder(deps: OrderDomainDependencies, id: string, viewer: Principal): Promise<{ id: string; status: OrderResponse['status']; workflowId: string }> {
  const { order } = await requireOrder(deps.db, id, viewer);
  const refuse = (reason: string, status: string) =>
    new ConflictError(ORDER_ERROR_CODES.orderNotAwaitingConfirmation, `order ${id} cannot be confirmed: ${reason}`, { status });
  if (order.status !== 'AWAITING_CONFIRMATION') throw refuse(`it is ${order.status}`, order.status);
  const outcome = await deps.sagas.confirmCheckout(id);
  if (outcome.kind === 'saga-not-found') throw refuse('its saga has ended', order.status);
  if (outcome.kind === 'refused') throw refuse(outcome.reason, order.status);
  const status = await markOrderConfirming(deps.db, id);
  return { id, status: status ?? order.status, workflowId: order.workflow_id };
}

// CANCELLING stays cancellable: a cancel whose saga failed halfway is asked for again (a new
// cancelOrder run); one still running answers with its workflow id.
const NOT_CANCELLABLE = new Set(['FAILED', 'CANCELLED']);

/** Starts the order's cancelOrder saga; the saga itself decides what must be undone. */
export async function requestOrderCancellation(
  deps: OrderDomainDependencies,
  id: string,
  viewer: Principal,
  reason: string,
): Promise<{ id: string; status: OrderResponse['status']; workflowId: string }> {
  const { order } = await requireOrder(deps.db, id, viewer);
  if (NOT_CANCELLABLE.has(order.status)) {
    throw new ConflictError(ORDER_ERROR_CODES.orderNotCancellable, `order ${id} cannot be cancelled: it is ${order.status}`, { status: order.status });
  }
  const workflowId = await deps.sagas.startCancelOrder({ orderId: id, customerId: order.customer_id, reason });
  // The saga's first step moves the order to CANCELLING (it may not have run yet): that is what the order is now.
  return { id, status: 'CANCELLING', workflowId };
}

/**
 * One saga run as the API shows it. Anyone who can read the order can read this, so failures are
 * the customer's texts (customerFailureReason) and a failed compensation says only that it
 * failed; the saga's own words are for operators (`./oms saga describe`, the Web UI).
 */
function toSagaRun(snapshot: SagaSnapshot, orderProductIds: readonly string[]): SagaRunResponse {
  const { description, progress } = snapshot;
  return {
    workflowId: description.workflowId,
    runId: description.runId,
    workflowType: description.type,
    status: description.status.name,
    sagaState: snapshot.sagaState,
    currentStep: progress?.currentStep ?? null,
    completedSteps: progress?.completedSteps ?? [],
    compensations: (progress?.compensations ?? []).map(({ step, outcome }) => ({ step, outcome })),
    failureReason: progress?.failureReason ? customerFailureReason(progress.failureReason, orderProductIds) : null,
    progressAvailable: progress !== undefined,
    startTime: description.startTime.toISOString(),
    closeTime: description.closeTime?.toISOString() ?? null,
    webUiUrl: snapshot.webUiUrl,
  };
}

/** The order's sagas' live state, from Temporal: createOrder, its tccPayment child, and cancelOrder if asked for. */
export async function getOrderSaga(deps: Pick<OrderDomainDependencies, 'db' | 'sagas'>, id: string, viewer: Principal): Promise<SagaResponse> {
  const { order, items } = await requireOrder(deps.db, id, viewer);
  const productIds = items.map((item) => item.product_id);
  const [main, payment, cancellation] = await Promise.all([
    deps.sagas.snapshot(order.workflow_id),
    deps.sagas.snapshot(tccPaymentWorkflowId(id)),
    deps.sagas.snapshot(cancelOrderWorkflowId(id)),
  ]);
  if (!main) {
    throw new ApiError(404, ORDER_ERROR_CODES.sagaNotFound, `the saga of order ${id} has not started yet`, { workflowId: order.workflow_id });
  }
  const run = toSagaRun(main, productIds);
  return {
    ...run,
    failureReason: run.failureReason ?? order.failure_reason,
    payment: payment ? toSagaRun(payment, productIds) : null,
    cancellation: cancellation ? toSagaRun(cancellation, productIds) : null,
  };
}
