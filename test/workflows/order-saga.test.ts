/**
 * The order sagas on the real Temporal server, against the real product and payment services and a
 * real order_db: what each outcome leaves behind in all three databases.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancelCheckoutUpdate,
  confirmCheckoutUpdate,
  FAILURE_TYPES,
  getSagaProgressQuery,
  ORDER_FAILED_FALLBACK,
  RESERVATION_CONFIRM_MARGIN_MS,
  SEARCH_ATTRIBUTES,
  tccPaymentWorkflowId,
} from '../../workflows/order-contract';
import {
  accountOf,
  createCustomer,
  createProduct,
  orderEvents,
  orderRow,
  paymentsOf,
  placeOrder,
  recordedAttempts,
  startCancelOrder,
  startCreateOrder,
  startSagaHarness,
  stockOf,
  stockReservationStatuses,
  TEST_TIMEOUTS,
  waitForOrderStatus,
  type SagaHarness,
} from './saga-harness';
import { recordHistory } from './history-recorder';
import { eventually } from '../helpers/kafka-probe';
import { sql } from 'kysely';
import { createOrderActivities } from '../../activities/order';

const execFileAsync = promisify(execFile);

/** The failure type the client sees when createOrder fails (the decline's, lifted to the top). */
async function failureTypeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => null,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(WorkflowFailedError);
  return ((error as WorkflowFailedError).cause as { type?: string } | undefined)?.type;
}

describe('createOrder and tccPayment', () => {
  let harness: SagaHarness;
  beforeAll(async () => {
    harness = await startSagaHarness('order-saga');
  });
  afterAll(() => harness?.close());

  it('happy path: the order is PAID, its stock deducted and its money captured, once', async () => {
    const customerId = await createCustomer(harness, { balance: '100.00' });
    const productId = await createProduct(harness, 5, '12.50');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 2, unitPriceMinor: 1250 }] });

    const handle = await startCreateOrder(harness, input);
    const result = await handle.result();

    expect(result).toMatchObject({ orderId: input.orderId, status: 'PAID' });
    const order = await orderRow(harness, input.orderId);
    expect(order).toMatchObject({ status: 'PAID', payment_id: result.paymentId, payment_reservation_id: result.paymentReservationId });
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_CONFIRMED', 'ORDER_PAID']);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '75.00', held: '0.00' }));
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(1);

    const progress = await handle.query(getSagaProgressQuery);
    expect(progress).toMatchObject({ state: 'COMPLETED', completedSteps: ['validateCustomer', 'tccPayment', 'markOrderPaid'], compensations: [] });
    const described = await handle.describe();
    expect(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState)).toBe('COMPLETED');
    await recordHistory(harness, handle.workflowId, 'create-order-paid');
    await recordHistory(harness, tccPaymentWorkflowId(input.orderId), 'tcc-payment-auto');
  });

  it('insufficient stock: FAILED with the reason, stock and account unchanged, no hold left', async () => {
    const customerId = await createCustomer(harness, { balance: '100.00' });
    const productId = await createProduct(harness, 1, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 2, unitPriceMinor: 1000 }] });

    const handle = await startCreateOrder(harness, input);
    expect(await failureTypeOf(handle.result())).toBe(FAILURE_TYPES.insufficientStock);

    const order = await orderRow(harness, input.orderId);
    expect(order.status).toBe('FAILED');
    expect(order.failure_reason).toBe(`InsufficientStock: not enough stock for product ${productId}`);
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_FAILED']);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 1, reserved: 0, available: 1 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '100.00', held: '0.00', available: '100.00' }));
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(0);

    const progress = await handle.query(getSagaProgressQuery);
    expect(progress.state).toBe('COMPENSATED');
    expect(progress.failureReason).toMatch(/^InsufficientStock/);
    // Closed: nothing is current any more; the step it gave up at is kept apart.
    expect(progress).toMatchObject({ currentStep: null, failedStep: 'tccPayment', completedSteps: ['validateCustomer', 'markOrderFailed'] });
    expect(progress.compensations.map((c) => [c.step, c.outcome])).toEqual([
      ['voidOrRefundPayment', 'COMPLETED'],
      ['releaseOrRestockStock', 'COMPLETED'],
    ]);
    const child = await harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId)).query(getSagaProgressQuery);
    expect(child).toMatchObject({ state: 'COMPENSATED', currentStep: null, failedStep: 'tryStockAndPayment', completedSteps: [] });
    expect(child.compensations.map((c) => c.step)).toEqual(['voidOrRefundPayment', 'releaseOrRestockStock']);
    await recordHistory(harness, handle.workflowId, 'create-order-insufficient-stock');
  });

  it('insufficient funds: FAILED with the stock hold released', async () => {
    const customerId = await createCustomer(harness, { balance: '5.00' });
    const productId = await createProduct(harness, 4, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });

    const handle = await startCreateOrder(harness, input);
    expect(await failureTypeOf(handle.result())).toBe(FAILURE_TYPES.insufficientFunds);
    await recordHistory(harness, handle.workflowId, 'create-order-insufficient-funds');

    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'FAILED' });
    expect((await orderRow(harness, input.orderId)).failure_reason).toBe('InsufficientFunds: the payment was declined for insufficient funds');
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 4, reserved: 0, available: 4 });
    expect(await stockReservationStatuses(harness, input.orderId)).toEqual(['CANCELLED']);
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '5.00', held: '0.00' }));
  });

  it('inactive customer: FAILED before anything is reserved', async () => {
    const customerId = await createCustomer(harness, { status: 'INACTIVE' });
    const productId = await createProduct(harness, 4);
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });

    const handle = await startCreateOrder(harness, input);
    expect(await failureTypeOf(handle.result())).toBe(FAILURE_TYPES.customerInactive);
    await recordHistory(harness, handle.workflowId, 'create-order-customer-inactive');

    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'FAILED' });
    expect(await stockReservationStatuses(harness, input.orderId)).toEqual([]);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 4, reserved: 0, available: 4 });
    const progress = await handle.query(getSagaProgressQuery);
    // Nothing was registered to undo: the customer check comes before any reservation.
    expect(progress).toMatchObject({ state: 'COMPENSATED', completedSteps: ['markOrderFailed'], compensations: [], failedStep: 'validateCustomer', currentStep: null });
  });

  it('manual checkout confirmed by the update: AWAITING_CONFIRMATION, then PAID', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, confirmation: 'manual', holdTtlSeconds: 60, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });

    const handle = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'AWAITING_CONFIRMATION');
    // Holding: stock reserved and money held, nothing taken yet.
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 1, available: 2 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '10.00' }));
    const tcc = harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId));
    expect((await tcc.query(getSagaProgressQuery)).currentStep).toBe('awaitCheckoutConfirmation');

    expect(await tcc.executeUpdate(confirmCheckoutUpdate)).toEqual({ accepted: true });
    await handle.result();
    // A second decision, the opposite one, changes nothing: the checkout is closed, so Temporal
    // refuses the update, and the order stays PAID with its money captured.
    await expect(tcc.executeUpdate(cancelCheckoutUpdate, { args: [{ reason: 'too late' }] })).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'PAID' });
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_AWAITING_CONFIRMATION', 'ORDER_CONFIRMED', 'ORDER_PAID']);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 2, reserved: 0, available: 2 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '40.00', held: '0.00' }));
    await recordHistory(harness, tcc.workflowId, 'tcc-payment-manual-confirmed');
  });

  it('manual checkout left alone: everything is cancelled when the hold expires, on a durable timer', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, confirmation: 'manual', holdTtlSeconds: 2, lines: [{ productId, quantity: 2, unitPriceMinor: 1000 }] });

    const handle = await startCreateOrder(harness, input);
    expect(await failureTypeOf(handle.result())).toBe(FAILURE_TYPES.checkoutExpired);

    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'FAILED' });
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '0.00' }));
    const history = await harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId)).fetchHistory();
    expect(history.events?.some((event) => event.timerFiredEventAttributes)).toBe(true);
    await recordHistory(harness, tccPaymentWorkflowId(input.orderId), 'tcc-payment-manual-expired');
  });

  it('cancelling a PAID order: CANCELLED, stock restocked, money refunded', async () => {
    const customerId = await createCustomer(harness, { balance: '100.00' });
    const productId = await createProduct(harness, 5, '20.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 2, unitPriceMinor: 2000 }] });
    await (await startCreateOrder(harness, input)).result();
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '60.00' }));

    const cancel = await startCancelOrder(harness, { orderId: input.orderId, reason: 'changed my mind' });
    const result = await cancel.result();

    expect(result).toMatchObject({ status: 'CANCELLED', cancelledFrom: 'PAID', stock: 'RESTOCKED' });
    expect(result.refundId).toEqual(expect.any(String));
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'CANCELLED', cancellation_reason: 'changed my mind' });
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_CONFIRMED', 'ORDER_PAID', 'ORDER_CANCELLATION_REQUESTED', 'ORDER_CANCELLED']);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 5, reserved: 0, available: 5 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '100.00', held: '0.00' }));
    expect((await cancel.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState)).toBe('COMPLETED');
    await recordHistory(harness, cancel.workflowId, 'cancel-order-paid');

    // A second cancel is refused as a decision: the order is CANCELLED. It ends REFUSED: nothing was
    // done, so nothing was compensated.
    const again = await harness.temporal.client.workflow.start('cancelOrder', {
      taskQueue: harness.temporal.taskQueue,
      workflowId: `${cancel.workflowId}-again`,
      args: [{ orderId: input.orderId, reason: 'twice' }],
    });
    expect(await failureTypeOf(again.result())).toBe(FAILURE_TYPES.orderNotCancellable);
    expect((await again.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState)).toBe('REFUSED');
    await recordHistory(harness, again.workflowId, 'cancel-order-refused');
  });

  it('cancelling while a manual checkout holds: createOrder is cancelled, holds released, order CANCELLED', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, confirmation: 'manual', holdTtlSeconds: 120, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    const create = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'AWAITING_CONFIRMATION');

    const cancel = await startCancelOrder(harness, { orderId: input.orderId, reason: 'out of time' });
    expect(await cancel.result()).toMatchObject({ status: 'CANCELLED', cancelledFrom: 'AWAITING_CONFIRMATION', refundId: null });
    await recordHistory(harness, cancel.workflowId, 'cancel-order-awaiting-confirmation');
    await recordHistory(harness, create.workflowId, 'create-order-cancelled-while-holding');
    await recordHistory(harness, tccPaymentWorkflowId(input.orderId), 'tcc-payment-manual-cancelled-by-cancel-order');

    expect((await create.describe()).status.name).toBe('CANCELLED');
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'CANCELLED' });
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '0.00' }));
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(0);
    // The late decision is refused: the checkout is over (its workflow closed), nothing is captured.
    const tcc = harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId));
    await expect(tcc.executeUpdate(confirmCheckoutUpdate)).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(0);
    expect((await tcc.query(getSagaProgressQuery)).state).toBe('COMPENSATED');
  });

  it('an order cancelled while its saga was paying: createOrder restocks and refunds itself, cancelOrder then finds nothing left to undo', async () => {
    const customerId = await createCustomer(harness, { balance: '100.00' });
    const productId = await createProduct(harness, 5, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 2, unitPriceMinor: 1000 }] });
    // cancelOrder's first step has committed (CANCELLING) but its Temporal cancel has not reached
    // createOrder yet: the payment goes through, then markOrderPaid finds the order taken over.
    await createOrderActivities({ db: harness.order.db }).requestOrderCancellation({ orderId: input.orderId, reason: 'changed my mind' });

    const create = await startCreateOrder(harness, input);
    expect(await failureTypeOf(create.result())).toBe(FAILURE_TYPES.orderCancelled);
    await recordHistory(harness, create.workflowId, 'create-order-cancelled-while-paying');

    const progress = await create.query(getSagaProgressQuery);
    expect(progress).toMatchObject({ state: 'COMPENSATED', failedStep: 'markOrderPaid', completedSteps: ['validateCustomer', 'tccPayment', 'markOrderFailed'] });
    // createOrder's own compensations did the work this time: the child had completed.
    expect(progress.compensations).toEqual([
      { step: 'voidOrRefundPayment', outcome: 'COMPLETED' },
      { step: 'releaseOrRestockStock', outcome: 'COMPLETED' },
    ]);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 5, reserved: 0, available: 5 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '100.00', held: '0.00' }));
    // markOrderFailed left the order to cancelOrder.
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'CANCELLING', failure_reason: null });

    const cancel = await startCancelOrder(harness, { orderId: input.orderId, reason: 'changed my mind' });
    expect(await cancel.result()).toMatchObject({ status: 'CANCELLED', cancelledFrom: 'CANCELLING', stock: 'RESTOCKED' });
    await recordHistory(harness, cancel.workflowId, 'cancel-order-already-cancelling');
    // Undoing twice took nothing twice: one capture, one refund, the units back once.
    const [payment] = await paymentsOf(harness, input.orderId);
    expect(await harness.payment.db.selectFrom('refunds').select('amount_minor').where('payment_id', '=', payment!.id).execute()).toEqual([{ amount_minor: 2000 }]);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 5, reserved: 0, available: 5 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '100.00', held: '0.00' }));
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_CANCELLATION_REQUESTED', 'ORDER_CANCELLED']);
  });

  it('a checkout cancelled by the update compensates and fails with CheckoutCancelled', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, confirmation: 'manual', holdTtlSeconds: 120, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    const create = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'AWAITING_CONFIRMATION');

    const tcc = harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId));
    expect(await tcc.executeUpdate(cancelCheckoutUpdate, { args: [{ reason: 'customer declined' }] })).toEqual({ accepted: true });
    expect(await failureTypeOf(create.result())).toBe(FAILURE_TYPES.checkoutCancelled);
    await recordHistory(harness, tcc.workflowId, 'tcc-payment-manual-cancelled-by-customer');
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'FAILED' });
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
  });

  it('50 concurrent orders for 10 units: exactly 10 PAID and 40 FAILED, stock never below zero', async () => {
    const customerId = await createCustomer(harness, { balance: '10000.00' });
    const productId = await createProduct(harness, 10, '1.00');
    const inputs = await Promise.all(Array.from({ length: 50 }, () => placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 100 }] })));

    // What is under test is the stock race, not giving up: 50 sagas at once in one worker on a busy
    // machine can take longer than TEST_TIMEOUTS's 3 tries of 4 s for a step, and a saga that gave
    // up would fail for that instead of for the stock.
    const patient = { ...TEST_TIMEOUTS, activityStartToCloseMs: 30_000, maximumAttempts: 10 };
    const handles = await Promise.all(inputs.map((input) => startCreateOrder(harness, { ...input, timeouts: patient })));
    const outcomes = await Promise.allSettled(handles.map((handle) => handle.result()));

    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(10);
    const statuses = await harness.order.db.selectFrom('orders').select(['status']).where('id', 'in', inputs.map((input) => input.orderId)).execute();
    expect(statuses.filter((row) => row.status === 'PAID')).toHaveLength(10);
    expect(statuses.filter((row) => row.status === 'FAILED')).toHaveLength(40);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 0, reserved: 0, available: 0 });
    const confirmed = await harness.product.db.selectFrom('stock_reservations').select('order_id').where('product_id', '=', productId).where('status', '=', 'CONFIRMED').execute();
    expect(confirmed).toHaveLength(10);
    // 10 captures of 1.00, nothing held for the 40 that failed.
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '9990.00', held: '0.00' }));
    // 192 s on the shared machine with the production topology beside it.
  }, 480_000);
});

describe('a confirm that can never succeed', () => {
  let harness: SagaHarness;
  // The payment hold is made to expire early behind the saga's back (its sweeper runs every 200 ms),
  // so the capture finds its hold expired after the stock was confirmed.
  beforeAll(async () => {
    harness = await startSagaHarness('order-saga-expiry', { paymentOverrides: { RESERVATION_SWEEP_INTERVAL_MS: '200' } });
  });
  afterAll(() => harness?.close());

  it('the confirmed stock is restocked, the expired hold stays released, nothing is captured', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, confirmation: 'manual', holdTtlSeconds: 60, lines: [{ productId, quantity: 2, unitPriceMinor: 1000 }] });
    const create = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'AWAITING_CONFIRMATION');
    await harness.payment.db.updateTable('payment_reservations').set({ expires_at: new Date(Date.now() - 1_000) }).where('order_id', '=', input.orderId).execute();
    await eventually(async () => {
      const hold = await harness.payment.db.selectFrom('payment_reservations').select('status').where('order_id', '=', input.orderId).executeTakeFirstOrThrow();
      return hold.status === 'EXPIRED' ? hold : undefined;
    }, 10_000, 'the payment hold to be expired by the sweeper');

    const tcc = harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId));
    expect(await tcc.executeUpdate(confirmCheckoutUpdate)).toEqual({ accepted: true });
    expect(await failureTypeOf(create.result())).toBe(FAILURE_TYPES.reservationExpired);
    await recordHistory(harness, tcc.workflowId, 'tcc-payment-capture-hold-expired');

    const progress = await tcc.query(getSagaProgressQuery);
    expect(progress).toMatchObject({ completedSteps: ['tryStockAndPayment', 'awaitCheckoutConfirmation', 'confirmStock'], failedStep: 'capturePayment', currentStep: null });
    expect(progress.compensations).toEqual([
      { step: 'voidOrRefundPayment', outcome: 'COMPLETED' },
      { step: 'releaseOrRestockStock', outcome: 'COMPLETED' },
    ]);
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'FAILED' });
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '0.00' }));
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(0);
  });
});

describe('a checkout hold longer than the participants keep their reservations', () => {
  let harness: SagaHarness;
  // The order service would hold for 60 s; the payment service keeps a hold 4 s (another process's setting).
  beforeAll(async () => {
    harness = await startSagaHarness('order-saga-hold-ttl', { paymentOverrides: { RESERVATION_TTL_SECONDS: '4', RESERVATION_SWEEP_INTERVAL_MS: '3600000' } });
  });
  afterAll(() => harness?.close());

  it('ends the hold before the earliest reservation expires, so a late confirm is refused and nothing is confirmed against an expired hold', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, confirmation: 'manual', holdTtlSeconds: 60, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    const create = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'AWAITING_CONFIRMATION');

    // The deadline the customer is told (ORDER_AWAITING_CONFIRMATION) is the saga's own, before the payment hold's expiry.
    const awaiting = await harness.order.db
      .selectFrom('outbox_events')
      .select('payload')
      .where('aggregate_id', '=', input.orderId)
      .where('event_type', '=', 'ORDER_AWAITING_CONFIRMATION')
      .executeTakeFirstOrThrow();
    const { holdExpiresAt } = (awaiting.payload as { payload: { holdExpiresAt: string } }).payload;
    const hold = await harness.payment.db.selectFrom('payment_reservations').select('expires_at').where('order_id', '=', input.orderId).executeTakeFirstOrThrow();
    expect(Date.parse(holdExpiresAt)).toBeLessThanOrEqual(hold.expires_at.getTime() - RESERVATION_CONFIRM_MARGIN_MS);

    // Nobody confirms: the checkout expires on the reservation's clock, not after the 60 s hold TTL.
    expect(await failureTypeOf(create.result())).toBe(FAILURE_TYPES.checkoutExpired);
    const tcc = harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId));
    await recordHistory(harness, tcc.workflowId, 'tcc-payment-hold-within-reservations');
    // A confirm after the deadline finds the checkout over.
    await expect(tcc.executeUpdate(confirmCheckoutUpdate)).rejects.toThrow(/already completed/);
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'FAILED' });
    // Released by the saga (the sweeper is off): nothing reached confirm, nothing was captured.
    expect(await stockReservationStatuses(harness, input.orderId)).toEqual(['CANCELLED']);
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '0.00' }));
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(0);
  });
});

describe('a capture whose answer is lost, then the payment service down for longer than the compensation horizon', () => {
  let harness: SagaHarness;
  beforeAll(async () => {
    harness = await startSagaHarness('order-saga-down', { faultyPayments: true });
  });
  afterAll(() => harness?.close());

  it('the order is COMPENSATION_FAILED, never FAILED, while its money is captured; an operator retry refunds it and only then is it FAILED', async () => {
    const proxy = harness.paymentProxy!;
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    input.timeouts = { ...input.timeouts!, maximumAttempts: 3, compensationMaximumAttempts: 2, compensationRetryHorizonMs: 3_000, maximumRetryIntervalMs: 500 };
    // The capture commits but its answer is lost; from then on the payment service is unreachable.
    let captured = false;
    proxy.setRule(({ path }) => {
      if (captured) return 'refuse';
      if (path.startsWith('/payments/confirm/')) {
        captured = true;
        return 'lose-answer';
      }
      return 'pass';
    });

    const handle = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'COMPENSATION_FAILED');
    const stuck = await orderRow(harness, input.orderId);
    // The customer reads no internal error text (a lost answer, a refused connection); the saga's progress keeps it.
    expect(stuck.failure_reason).toBe(ORDER_FAILED_FALLBACK);
    // What the order's status warns about: the money is still captured. The stock went back.
    expect(await paymentsOf(harness, input.orderId)).toEqual([expect.objectContaining({ amount_minor: 1000, refunded_minor: 0 })]);
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '40.00', held: '0.00' }));
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_COMPENSATION_FAILED']);
    // The saga stays open, findable by state, waiting for an operator.
    const description = await handle.describe();
    expect(description.status.name).toBe('RUNNING');
    expect(description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState)).toBe('COMPENSATION_FAILED');
    expect(await handle.query(getSagaProgressQuery)).toMatchObject({ state: 'COMPENSATION_FAILED', failedStep: 'tccPayment' });
    // The capture was tried up to its bound (3 attempts), then the saga moved on to compensating.
    const tccHistory = await harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId)).fetchHistory();
    expect(Math.max(...recordedAttempts(tccHistory.events ?? [], 'capturePayment'))).toBe(3);

    // The cause is fixed; the operator retries the saga as the runbook says.
    proxy.setRule(() => 'pass');
    // Asynchronously: the saga's worker runs in this process and must go on meanwhile.
    const retried = await execFileAsync('npx', ['--no-install', 'tsx', 'infra/ops/saga.ts', 'retry', input.orderId], { encoding: 'utf8', env: { ...process.env, OMS_OPERATOR: 'test-operator' } });
    expect(retried.stdout).toContain('"operator":"test-operator"');

    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    await recordHistory(harness, handle.workflowId, 'create-order-compensation-failed-then-retried');
    await recordHistory(harness, tccPaymentWorkflowId(input.orderId), 'tcc-payment-capture-answer-lost');
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'FAILED' });
    const [payment] = await paymentsOf(harness, input.orderId);
    expect(payment).toMatchObject({ refunded_minor: 1000, status: 'REFUNDED' });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '0.00' }));
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_COMPENSATION_FAILED', 'ORDER_FAILED']);
    const progress = await handle.query(getSagaProgressQuery);
    expect(progress.state).toBe('COMPENSATED');
    expect(progress.compensations.map((c) => [c.step, c.outcome])).toEqual([
      ['voidOrRefundPayment', 'FAILED'],
      ['releaseOrRestockStock', 'COMPLETED'],
      ['voidOrRefundPayment', 'COMPLETED'],
    ]);
    // The customer reads no internal error text; the saga's progress (for operators) keeps it.
    expect((await orderRow(harness, input.orderId)).failure_reason).toBe(ORDER_FAILED_FALLBACK);
    expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState)).toBe('COMPENSATED');
  });
});

describe('a cancel arriving while a createOrder step is in flight', () => {
  let harness: SagaHarness;
  beforeAll(async () => {
    harness = await startSagaHarness('order-saga-cancel-mid-step', { faultyProducts: true });
  });
  afterAll(() => harness?.close());

  it('during validateCustomer: createOrder is cancelled before anything was reserved, the order CANCELLED from PENDING', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    const callsBefore = harness.productProxy!.log.length;
    // validateCustomer reads the customer; a table lock held by this test keeps that read waiting.
    let releaseLock!: () => void;
    const lockReleased = new Promise<void>((resolve) => (releaseLock = resolve));
    let lockHeld!: () => void;
    const lockTaken = new Promise<void>((resolve) => (lockHeld = resolve));
    const holder = harness.order.db.transaction().execute(async (trx) => {
      await sql`lock table customers in access exclusive mode`.execute(trx);
      lockHeld();
      await lockReleased;
    });
    try {
      await lockTaken;
      const create = await startCreateOrder(harness, input);
      await eventually(
        async () => {
          const { rows } = await sql<{ waiting: number }>`
            select count(*)::int as waiting from pg_locks where relation = 'customers'::regclass and not granted`.execute(harness.order.db);
          return rows[0]!.waiting > 0 ? true : undefined;
        },
        10_000,
        'validateCustomer waiting on the customers table',
      );

      const cancel = await startCancelOrder(harness, { orderId: input.orderId, reason: 'too slow' });
      expect(await cancel.result()).toMatchObject({ status: 'CANCELLED', cancelledFrom: 'PENDING', refundId: null });
      expect((await create.describe()).status.name).toBe('CANCELLED');
      // Nothing was done that needs undoing; markOrderFailed found the order CANCELLING and left it to cancelOrder.
      expect(await create.query(getSagaProgressQuery)).toMatchObject({ state: 'COMPENSATED', completedSteps: ['markOrderFailed'], compensations: [] });
      await recordHistory(harness, create.workflowId, 'create-order-cancelled-while-validating');
      await recordHistory(harness, cancel.workflowId, 'cancel-order-while-validating');
    } finally {
      releaseLock();
      await holder;
    }
    // No child ran: nothing was tried; cancelOrder's release found nothing to release.
    expect(harness.productProxy!.log.slice(callsBefore).map(({ path }) => path)).toEqual([`/stock/cancel/${input.orderId}`]);
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'CANCELLED' });
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '0.00' }));
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_CANCELLATION_REQUESTED', 'ORDER_CANCELLED']);
  });

  it('during the try step: both branches cancelled, the late stock try refused by the barrier, nothing held', async () => {
    const proxy = harness.productProxy!;
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 3);
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    // The stock try reaches the product service only after its caller's timeout, and after the cancel.
    proxy.setRule(({ path }) => (path === '/stock/try' ? 'late' : 'pass'));
    try {
      const create = await startCreateOrder(harness, input);
      await eventually(() => (proxy.log.some(({ path }) => path === '/stock/try') ? true : undefined), 10_000, 'the stock try in flight');

      const cancel = await startCancelOrder(harness, { orderId: input.orderId, reason: 'too slow' });
      expect(await cancel.result()).toMatchObject({ status: 'CANCELLED', cancelledFrom: 'PENDING', refundId: null });
      expect((await create.describe()).status.name).toBe('CANCELLED');
      const tcc = harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId));
      expect((await tcc.query(getSagaProgressQuery)).state).toBe('COMPENSATED');
      await recordHistory(harness, create.workflowId, 'create-order-cancelled-while-trying');
      await recordHistory(harness, tccPaymentWorkflowId(input.orderId), 'tcc-payment-cancelled-while-trying');
      await recordHistory(harness, cancel.workflowId, 'cancel-order-while-trying');

      // The delayed try lands now, after the cancel: the barrier must refuse it.
      await proxy.settled();
    } finally {
      proxy.setRule(() => 'pass');
    }
    expect(proxy.log.filter(({ path }) => path === '/stock/try').length).toBeGreaterThan(0);
    expect(await stockReservationStatuses(harness, input.orderId)).not.toContain('RESERVED');
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'CANCELLED' });
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '50.00', held: '0.00' }));
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(0);
  });
});
