/**
 * Placing, confirming and cancelling orders: the decisions the order API makes before it hands an
 * order to its saga. Status changes after creation are the saga's (activities/order.ts).
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
import { ApiError, ConflictError, NotFoundError } from '../shared/errors';
import { formatMinor, moneyInput } from '../shared/money';
import { appendOutboxEvent } from '../shared/outbox';
import { ORDER_ERROR_CODES, type CreateOrderBody, type OrderResponse, type SagaResponse, type SagaRunResponse } from './contract';
import type { OrderSagas, SagaSnapshot } from './order-sagas';
import type { ProductCatalog } from './product-catalog';
import { countOpenCheckouts, findCustomer, findOrder, insertOrder, lockCustomer, type OrderDb, type OrderTrx, type OrderWithItems } from './repository';

export interface OrderDomainDependencies {
  db: OrderDb;
  catalog: ProductCatalog;
  sagas: OrderSagas;
  holdTtlSeconds: number;
  /** Manual checkouts one customer may have open at once (MAX_OPEN_CHECKOUTS_PER_CUSTOMER). */
  maxOpenCheckouts: number;
  log: Pick<Logger, 'warn' | 'info'>;
}

/** The createOrder input of a stored order: the same whether the API or the reconciler starts the saga. */
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

async function requireOrder(db: OrderDb, id: string): Promise<OrderWithItems> {
  const found = await findOrder(db, id);
  if (!found) throw new NotFoundError('order', id);
  return found;
}

/**
 * Prices the order from the product service, writes it with ORDER_CREATED in one transaction, then
 * starts its createOrder saga. If the start fails (Temporal down, process killed) the order is
 * still accepted: the reconciler (reconciler.ts) starts the missing saga under the same id.
 */
export async function placeOrder(deps: OrderDomainDependencies, body: CreateOrderBody): Promise<{ id: string; status: 'PENDING'; workflowId: string }> {
  const customer = await findCustomer(deps.db, body.customerId);
  if (!customer) {
    throw new ApiError(422, ORDER_ERROR_CODES.unknownCustomer, `customer ${body.customerId} does not exist`, { customerId: body.customerId });
  }
  // An INACTIVE customer is accepted here on purpose: the saga's customer validation fails the order
  // with a recorded reason, which is what the order's history should show.

  const products = await deps.catalog.quote(body.items.map((item) => item.productId));
  const currencies = new Set([...products.values()].map((product) => product.currency));
  if (currencies.size > 1) {
    throw new ApiError(422, ORDER_ERROR_CODES.mixedCurrencies, 'all products of one order must be priced in the same currency', {
      currencies: Object.fromEntries([...products.values()].map((product) => [product.id, product.currency])),
    });
  }
  const currency = [...products.values()][0]!.currency;

  const lines = body.items.map((item) => {
    const product = products.get(item.productId)!;
    // Exact decimal string to integer minor units; never through a float.
    const unitPriceMinor = moneyInput.parse(product.price);
    return { productId: product.id, sku: product.sku, productName: product.name, quantity: item.quantity, unitPriceMinor, lineTotalMinor: unitPriceMinor * item.quantity };
  });
  const totalMinor = lines.reduce((sum, line) => sum + line.lineTotalMinor, 0);
  if (!Number.isSafeInteger(totalMinor)) {
    throw new ApiError(422, ORDER_ERROR_CODES.orderTotalTooLarge, 'the order total is too large');
  }

  const orderId = randomUUID();
  const workflowId = createOrderWorkflowId(orderId);
  const stored = await deps.db.transaction().execute(async (trx) => {
    if (body.confirmation === 'manual') await refuseBeyondOpenCheckouts(trx, customer.id, deps.maxOpenCheckouts);
    const inserted = await insertOrder(trx, {
      id: orderId,
      customerId: customer.id,
      totalMinor,
      currency,
      paymentMethod: body.paymentMethod,
      confirmation: body.confirmation,
      workflowId,
      items: lines,
    });
    await appendOutboxEvent(trx, {
      eventType: 'ORDER_CREATED',
      aggregateId: orderId,
      correlationId: orderId,
      payload: {
        orderId,
        customerId: customer.id,
        items: lines.map((line) => ({ productId: line.productId, productName: line.productName, quantity: line.quantity, unitPrice: formatMinor(line.unitPriceMinor) })),
        totalAmount: formatMinor(totalMinor),
        currency,
      },
    });
    return inserted;
  });

  try {
    await deps.sagas.startCreateOrder(createOrderInputOf(stored, deps.holdTtlSeconds));
  } catch (error) {
    deps.log.warn({ err: error, orderId, workflowId }, 'createOrder saga not started; the reconciler will start it');
  }
  return { id: orderId, status: 'PENDING', workflowId };
}

export async function getOrder(db: OrderDb, id: string): Promise<OrderResponse> {
  return toOrderResponse(await requireOrder(db, id));
}

/** Manual checkout: only an order holding its reservations (AWAITING_CONFIRMATION) can be confirmed. */
export async function confirmOrder(deps: OrderDomainDependencies, id: string): Promise<OrderResponse> {
  const { order } = await requireOrder(deps.db, id);
  const refuse = (reason: string, status: string) =>
    new ConflictError(ORDER_ERROR_CODES.orderNotAwaitingConfirmation, `order ${id} cannot be confirmed: ${reason}`, { status });
  if (order.status !== 'AWAITING_CONFIRMATION') throw refuse(`it is ${order.status}`, order.status);
  const outcome = await deps.sagas.confirmCheckout(id);
  if (outcome.kind === 'saga-not-found') throw refuse('its saga has ended', order.status);
  if (outcome.kind === 'refused') throw refuse(outcome.reason, order.status);
  return getOrder(deps.db, id);
}

// CANCELLING stays cancellable: a cancel whose saga failed halfway is asked for again (a new
// cancelOrder run); one still running answers with its workflow id.
const NOT_CANCELLABLE = new Set(['FAILED', 'CANCELLED']);

/** Starts the order's cancelOrder saga; the saga itself decides what must be undone. */
export async function cancelOrder(
  deps: OrderDomainDependencies,
  id: string,
  reason: string,
): Promise<{ id: string; status: OrderResponse['status']; workflowId: string }> {
  const { order } = await requireOrder(deps.db, id);
  if (NOT_CANCELLABLE.has(order.status)) {
    throw new ConflictError(ORDER_ERROR_CODES.orderNotCancellable, `order ${id} cannot be cancelled: it is ${order.status}`, { status: order.status });
  }
  const workflowId = await deps.sagas.startCancelOrder({ orderId: id, customerId: order.customer_id, reason });
  return { id, status: order.status, workflowId };
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
export async function getOrderSaga(deps: Pick<OrderDomainDependencies, 'db' | 'sagas'>, id: string): Promise<SagaResponse> {
  const { order, items } = await requireOrder(deps.db, id);
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
