/**
 * The saga and TCC metrics move when sagas run, on the real Temporal server and the real
 * participants: a saga worker reporting to its own registry (what the worker process serves on
 * WORKER_APP_METRICS_PORT), and the product and payment services' GET /metrics.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelCheckoutUpdate, tccPaymentWorkflowId } from '../../workflows/order-contract';
import { hasSample, sampleSum, scrape } from '../helpers/metrics';
import { createCustomer, createProduct, placeOrder, startCreateOrder, startSagaHarness, TEST_TIMEOUTS, waitForOrderStatus, type SagaHarness } from './saga-harness';

/** The saga counters of one saga type, to compare before and after a run. */
async function sagaCounts(registry: Registry, sagaType: string) {
  const page = await scrape(registry);
  const completed = (outcome: string) => sampleSum(page, 'oms_saga_completed_total', { saga_type: sagaType, outcome });
  return {
    started: sampleSum(page, 'oms_saga_started_total', { saga_type: sagaType }),
    completed: completed('completed'),
    compensated: completed('compensated'),
    compensationFailed: completed('compensation_failed'),
    timed: sampleSum(page, 'oms_saga_duration_seconds_count', { saga_type: sagaType }),
  };
}

/** The TCC counters one participant exposes on its /metrics. */
async function tccCounts(url: string, participant: string) {
  const page = await scrape(url);
  const of = (name: string, labels: Record<string, string> = {}) => sampleSum(page, name, { participant, ...labels });
  return {
    started: of('oms_tcc_started_total'),
    confirmed: of('oms_tcc_completed_total', { outcome: 'confirmed' }),
    cancelled: of('oms_tcc_completed_total', { outcome: 'cancelled' }),
    tries: of('oms_tcc_phase_duration_seconds_count', { phase: 'try' }),
    confirms: of('oms_tcc_phase_duration_seconds_count', { phase: 'confirm' }),
    cancels: of('oms_tcc_phase_duration_seconds_count', { phase: 'cancel' }),
    active: of('oms_tcc_active_reservations'),
    activeExposed: hasSample(page, 'oms_tcc_active_reservations', { participant }),
  };
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => null,
    (error: unknown) => error,
  );
}

describe('saga and TCC metrics', () => {
  let harness: SagaHarness;
  const registry = new Registry();

  beforeAll(async () => {
    harness = await startSagaHarness('saga-metrics', { metricsRegistry: registry });
  });
  afterAll(() => harness?.close());

  it('a paid order counts one started and one completed createOrder and tccPayment, timed, and a confirmed TCC at both participants', async () => {
    const [orderBefore, paymentSagaBefore] = [await sagaCounts(registry, 'createOrder'), await sagaCounts(registry, 'tccPayment')];
    const [stockBefore, moneyBefore] = [await tccCounts(harness.product.url, 'stock'), await tccCounts(harness.payment.url, 'payment')];
    const customerId = await createCustomer(harness);
    const productId = await createProduct(harness, 5, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });

    await (await startCreateOrder(harness, input)).result();

    // Sink calls run on the worker's main thread just after the closing workflow task.
    await expect.poll(async () => (await sagaCounts(registry, 'createOrder')).completed, { timeout: 10_000 }).toBe(orderBefore.completed + 1);
    expect(await sagaCounts(registry, 'createOrder')).toEqual({ ...orderBefore, started: orderBefore.started + 1, completed: orderBefore.completed + 1, timed: orderBefore.timed + 1 });
    expect(await sagaCounts(registry, 'tccPayment')).toEqual({
      ...paymentSagaBefore,
      started: paymentSagaBefore.started + 1,
      completed: paymentSagaBefore.completed + 1,
      timed: paymentSagaBefore.timed + 1,
    });
    for (const [url, participant, before] of [
      [harness.product.url, 'stock', stockBefore],
      [harness.payment.url, 'payment', moneyBefore],
    ] as const) {
      const after = await tccCounts(url, participant);
      expect(after).toMatchObject({ started: before.started + 1, confirmed: before.confirmed + 1, cancelled: before.cancelled, activeExposed: true, active: 0 });
      expect(after.tries).toBeGreaterThan(before.tries);
      expect(after.confirms).toBeGreaterThan(before.confirms);
    }
  });

  it('a declined order counts as compensated, and the participant that held something counts a cancel', async () => {
    const before = await sagaCounts(registry, 'createOrder');
    const moneyBefore = await tccCounts(harness.payment.url, 'payment');
    const customerId = await createCustomer(harness);
    const productId = await createProduct(harness, 1, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 5, unitPriceMinor: 1000 }] });

    expect(await failureOf((await startCreateOrder(harness, input)).result())).toBeInstanceOf(WorkflowFailedError);

    await expect.poll(async () => (await sagaCounts(registry, 'createOrder')).compensated, { timeout: 10_000 }).toBe(before.compensated + 1);
    expect(await sagaCounts(registry, 'createOrder')).toEqual({ ...before, started: before.started + 1, compensated: before.compensated + 1, timed: before.timed + 1 });
    // The money was held in parallel with the refused stock try, then released by the compensation.
    const moneyAfter = await tccCounts(harness.payment.url, 'payment');
    expect(moneyAfter.cancels).toBeGreaterThan(moneyBefore.cancels);
    expect(moneyAfter.confirmed).toBe(moneyBefore.confirmed);
  });

  it('a checkout waiting for its confirmation is an active saga and two active reservations, until it is cancelled', async () => {
    const customerId = await createCustomer(harness);
    const productId = await createProduct(harness, 5, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }], confirmation: 'manual', holdTtlSeconds: 120 });
    const handle = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'AWAITING_CONFIRMATION');

    expect((await tccCounts(harness.product.url, 'stock')).active).toBe(1);
    expect((await tccCounts(harness.payment.url, 'payment')).active).toBe(1);
    // Visibility is eventually consistent; other suites' sagas may be open too, ours is.
    await expect.poll(async () => sampleSum(await scrape(registry), 'oms_saga_active', { saga_type: 'tccPayment' }), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(sampleSum(await scrape(registry), 'oms_saga_active', { saga_type: 'createOrder' })).toBeGreaterThanOrEqual(1);

    await harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId)).executeUpdate(cancelCheckoutUpdate, { args: [{ reason: 'metrics test' }] });
    expect(await failureOf(handle.result())).toBeInstanceOf(WorkflowFailedError);
    expect((await tccCounts(harness.product.url, 'stock')).active).toBe(0);
    expect((await tccCounts(harness.payment.url, 'payment')).active).toBe(0);
  });
});

describe('saga metrics when a compensation gives up', () => {
  let harness: SagaHarness;
  const registry = new Registry();

  beforeAll(async () => {
    // The worker sees the payment service at a closed port: tries and their undos both fail.
    harness = await startSagaHarness('saga-metrics-comp-failed', { metricsRegistry: registry, workerPaymentUrl: 'http://127.0.0.1:1' });
  });
  afterAll(() => harness?.close());

  it('a createOrder waiting in COMPENSATION_FAILED is an active saga in that state; tccPayment closes as compensation_failed', async () => {
    const customerId = await createCustomer(harness);
    const productId = await createProduct(harness, 5, '10.00');
    const placed = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    const input = { ...placed, timeouts: { ...TEST_TIMEOUTS, maximumAttempts: 1, compensationMaximumAttempts: 2, compensationRetryHorizonMs: 3_000 } };
    const handle = await startCreateOrder(harness, input);

    // tccPayment gives up on its undo after two attempts and closes; its parent waits for an operator.
    await expect.poll(async () => (await sagaCounts(registry, 'tccPayment')).compensationFailed, { timeout: 30_000 }).toBe(1);
    expect(await sagaCounts(registry, 'tccPayment')).toEqual({ started: 1, completed: 0, compensated: 0, compensationFailed: 1, timed: 1 });
    await waitForOrderStatus(harness, input.orderId, 'COMPENSATION_FAILED');
    await expect
      .poll(async () => sampleSum(await scrape(registry), 'oms_saga_active', { saga_type: 'createOrder', state: 'COMPENSATION_FAILED' }), { timeout: 10_000 })
      .toBeGreaterThanOrEqual(1);
    expect(await sagaCounts(registry, 'createOrder')).toEqual({ started: 1, completed: 0, compensated: 0, compensationFailed: 0, timed: 0 });

    // Cancelled while it waits, it closes in COMPENSATION_FAILED.
    await handle.cancel();
    expect(await failureOf(handle.result())).toBeInstanceOf(WorkflowFailedError);
    await expect.poll(async () => (await sagaCounts(registry, 'createOrder')).compensationFailed, { timeout: 10_000 }).toBe(1);
    expect(await sagaCounts(registry, 'createOrder')).toEqual({ started: 1, completed: 0, compensated: 0, compensationFailed: 1, timed: 1 });
  });
});
