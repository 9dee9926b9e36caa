/**
 * Smoke run of `./oms bench accept` (test/bench/accept-scenario.ts): a second of sustained POST
 * /orders against real services, to show the scenario sets itself up, signs in, is answered 202 and
 * reports. No timing is asserted: docs/benchmarks.md holds the numbers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAcceptScenario } from '../bench/accept-scenario';
import { customerToken, operatorToken } from '../helpers/auth';
import { startTestOrderService, type TestOrderService } from '../helpers/order-service';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { startTestProductService, type TestProductService } from '../helpers/product-service';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

describe('accept benchmark scenario (smoke)', () => {
  let temporal: TestTemporal;
  let product: TestProductService;
  let payment: TestPaymentService;
  let order: TestOrderService;

  beforeAll(async () => {
    temporal = await connectTestTemporal('accept-bench');
    [product, payment] = await Promise.all([startTestProductService(), startTestPaymentService()]);
    // No saga worker polls the queue: the sagas this starts wait, and only the accept path is measured.
    order = await startTestOrderService({ productUrl: product.url, temporal, taskQueue: temporal.taskQueue, sagaStarter: false });
  });
  afterAll(async () => {
    await order?.close();
    await Promise.all([product?.close(), payment?.close()]);
    await temporal?.close();
  });

  it('runs for its duration over several customers, every order accepted, and reports rate and percentiles', async () => {
    const connections = 2;
    const result = await runAcceptScenario({
      orderUrl: order.url,
      productUrl: product.url,
      paymentUrl: payment.url,
      operatorAuthorization: `Bearer ${await operatorToken()}`,
      customerToken: (customerId) => customerToken(customerId),
      durationSeconds: 1,
      connections,
      customers: 10,
    });
    expect(result.accepted).toBeGreaterThan(0);
    expect(result.refused).toEqual({});
    expect(result.acceptedPerSecond).toBeGreaterThan(0);
    expect(result.latencyMs.p50).toBeLessThanOrEqual(result.latencyMs.p95);
    expect(result.latencyMs.p95).toBeLessThanOrEqual(result.latencyMs.p99);
    const orders = await order.db.selectFrom('orders').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    // Every 202 counted has its order; a request still in flight when the run ended (at most one per
    // connection) may have written its order without its answer being counted.
    expect(Number(orders.n)).toBeGreaterThanOrEqual(result.accepted);
    expect(Number(orders.n)).toBeLessThanOrEqual(result.accepted + connections);
  });
});
